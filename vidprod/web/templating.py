"""Jinja2 for the pages: where templates and static files live, the filters they use,
and static URLs that change whenever a file does (so browsers may cache them for good)."""

from __future__ import annotations

import hashlib
import math
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment
from litestar.datastructures import CacheControlHeader
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

_PACKAGE = Path(__file__).resolve().parents[1]


def _shipped(name: str) -> Path:
    """templates/ and static/ sit at the top of the repository; an installed wheel (the
    Docker image) carries them inside the package (pyproject's force-include)."""
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _PACKAGE.parent / name


TEMPLATES_DIR = _shipped("templates")
STATIC_DIR = _shipped("static")

PLATFORM_NAMES = {"tiktok": "TikTok", "instagram": "Instagram Reels", "youtube": "YouTube Shorts"}

# What each state means to a creator, for badges and screen readers.
STATE_WORDS = {
    "queued": "Waiting to start", "processing": "Working on it", "done": "Ready",
    "failed": "Failed", "cancelled": "Cancelled",
    "scheduled": "Scheduled", "publishing": "Uploading", "waiting": "Waiting for the account",
    "published": "Published", "dead": "Gave up", "connected": "Connected",
    "reconnect_needed": "Reconnect needed", "disconnected": "Disconnected",
    "pending": "Pending", "succeeded": "Delivered",
}  # fmt: skip

STAGE_WORDS = {
    None: "", "transcribing": "Listening for the words", "planning": "Finding the natural pauses", "rendering": "Making the parts",
}


@cache
def _file_version(path: Path, mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def static_url(name: str) -> str:
    path = STATIC_DIR / name
    return f"/static/{name}?v={_file_version(path, path.stat().st_mtime_ns)}"


def human_bytes(size: float | None) -> str:
    if size is None:
        return ""
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def clock_time(seconds: float | None) -> str:
    """0:05.3 / 1:02.0 — positions inside a video."""
    if seconds is None:
        return ""
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    rest = math.floor(seconds % 60)
    return f"{int(seconds // 60)} min" + (f" {rest} s" if rest else "")


def iso_time(value: str | float | None) -> str:
    """An ISO 8601 UTC string for <time datetime>; pages turn it into local time."""
    if value is None or value == "":
        return ""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def short_time(value: str | float | None) -> str:
    """A readable UTC fallback shown until the page's script localises it."""
    text = iso_time(value)
    return text.replace("T", " ")[:16] + " UTC" if text else ""


def configure(env: Environment) -> None:
    env.globals.update(static_url=static_url, platform_names=PLATFORM_NAMES, now=time.time)
    env.filters.update(
        human_bytes=human_bytes, clock_time=clock_time, duration=duration, iso_time=iso_time,
        short_time=short_time, state_words=lambda s: STATE_WORDS.get(s, s or ""),
        stage_words=lambda s: STAGE_WORDS.get(s, s or ""),
    )  # fmt: skip
    env.trim_blocks = True
    env.lstrip_blocks = True


def template_config() -> TemplateConfig:
    return TemplateConfig(directory=TEMPLATES_DIR, engine=JinjaTemplateEngine, engine_callback=_on_engine)


def _on_engine(engine: JinjaTemplateEngine) -> None:
    configure(engine.engine)


def static_router() -> Any:
    # Every URL carries the file's hash (static_url), so a year of caching is safe.
    return create_static_files_router(
        path="/static", directories=[STATIC_DIR], opt={"public": True},
        cache_control=CacheControlHeader(max_age=31536000, public=True),
    )  # fmt: skip
