"""Serve the fake platforms (vidprod.sandbox) over real HTTP for tests."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from tests.server import free_port
from vidprod.sandbox import FakePlatforms, create_fake_app


class _ExpectedCuts(logging.Filter):
    """cut_next ends answers half-way on purpose; uvicorn reports each as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


@contextmanager
def running_fake(fake: FakePlatforms, timeout: float = 10.0) -> Iterator[str]:
    """`create_fake_app(fake)` under uvicorn in a daemon thread on a free 127.0.0.1
    port; yields the base URL once it answers, stops the server on exit."""
    port = free_port()
    config = uvicorn.Config(
        create_fake_app(fake),
        host="127.0.0.1",
        port=port,
        log_config=None,  # leave the test process's logging as it is
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ExpectedCuts) for f in errors.filters):
        errors.addFilter(_ExpectedCuts())
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"fake-platforms-{port}", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake platforms' server did not start")
        time.sleep(0.01)
    httpx.get(f"{base}/", timeout=2)  # answers (404): the socket is accepting
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=5)
