"""Logging: one JSON object a line (for Fly's log shipping) or readable text in a
terminal, each record carrying the request id and job id it happened under."""

from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


class _Context(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.job_id = job_id.get()
        return True


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = [f"{k}={v}" for k in ("request_id", "job_id") if (v := getattr(record, k, None))]
        return f"{line} [{' '.join(tags)}]" if tags else line


def configure(level: str, fmt: str) -> None:
    """fmt: json, text, or auto (text when stderr is a terminal)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler()
    handler.addFilter(_Context())
    if use_json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(job_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(_Text("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Python's warnings (e.g. a library's deprecation) would go to stderr as plain text
    # lines in the middle of a JSON stream; uvicorn and huey already log to the root.
    logging.captureWarnings(True)
