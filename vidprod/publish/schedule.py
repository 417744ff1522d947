"""When each part goes out, what its caption says, and how long to wait after a failure.
Pure functions: the domain service stores what they decide."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PLACEHOLDERS = {"title", "part", "parts"}
BACKOFF_BASE_SECONDS = 30.0
BACKOFF_CAP_SECONDS = 3600.0
MAX_SPREAD_PARTS = 1000


class ScheduleError(ValueError):
    """The request cannot be turned into times or captions; the message says why."""


def render_template(template: str, *, title: str, part: int, parts: int) -> str:
    """`{title} ({part}/{parts}) #shorts` → `My trip (2/5) #shorts`. Only the three names
    are allowed; `{{` and `}}` stand for braces."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ScheduleError(f"the template {template!r} is malformed: {exc}") from None
    unknown = names - PLACEHOLDERS
    if unknown:
        raise ScheduleError(
            f"the template uses {', '.join('{' + n + '}' for n in sorted(unknown))};"
            " only {title}, {part} and {parts} are known"
        )
    return template.format(title=title, part=part, parts=parts)


def with_hashtags(caption: str, hashtags: list[str]) -> str:
    """Append each hashtag the caption does not already carry."""
    words = {word.lower() for word in caption.split()}
    extra = []
    for tag in hashtags:
        tag = "#" + tag.strip().lstrip("#")
        if len(tag) > 1 and tag.lower() not in words:
            extra.append(tag)
            words.add(tag.lower())
    return " ".join([caption.rstrip(), *extra]).strip()


def due_times(schedule: dict[str, Any], count: int, now: float) -> list[float]:
    """Unix times for `count` parts.

    {"mode": "now"}; {"mode": "at", "times": [ISO 8601 with offset, one per part]};
    {"mode": "spread", "start": "2026-11-23T18:00", "timezone": "Europe/Berlin",
     "every_hours": 24}: local wall-clock times, so "18:00 every day" stays 18:00
    across a daylight-saving change."""
    mode = schedule.get("mode", "now")
    if mode == "now":
        return [now] * count
    if mode == "at":
        times = schedule.get("times")
        if not isinstance(times, list) or len(times) != count:
            raise ScheduleError(f"'times' must list one ISO 8601 time for each of the {count} part(s)")
        return [parse_instant(text) for text in times]
    if mode == "spread":
        zone = _zone(schedule.get("timezone", "UTC"))
        try:
            every = float(schedule.get("every_hours", 24))
        except (TypeError, ValueError):
            raise ScheduleError("'every_hours' must be a number of hours") from None
        if not 0 < every <= 24 * 365:
            raise ScheduleError("'every_hours' must be more than 0 and at most a year")
        start = _parse_local(schedule.get("start"), zone)
        return [
            _local_to_unix(start + timedelta(hours=every * index), zone) for index in range(count)
        ]
    raise ScheduleError("'mode' must be now, at or spread")


def backoff_seconds(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Full jitter (uniform up to an exponential ceiling), never sooner than Retry-After."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1))
    return max(rng.uniform(0, ceiling), retry_after or 0.0)


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}; use a name like Europe/Berlin") from None


def parse_instant(text: Any) -> float:
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        raise ScheduleError(f"{text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ScheduleError(f"{text!r} needs a UTC offset (e.g. +01:00 or Z)")
    return when.timestamp()


def _parse_local(text: Any, zone: ZoneInfo) -> datetime:
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        raise ScheduleError(f"'start' {text!r} is not an ISO 8601 time like 2026-11-23T18:00") from None
    if when.tzinfo is not None:
        when = when.astimezone(zone)
    return when.replace(tzinfo=None)


def _local_to_unix(wall: datetime, zone: ZoneInfo) -> float:
    # A wall time skipped by a spring-forward gap lands an hour later, as a clock would.
    aware = wall.replace(tzinfo=zone)
    round_trip = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != wall:
        aware = (wall + timedelta(hours=1)).replace(tzinfo=zone)
    return aware.timestamp()
