"""Decide where a video is cut into parts.

Cut times are frame timestamps kept as exact fractions of a second, so a part starts on
a real frame and summed part durations equal the source. This module plans plain cuts
spread evenly under the limit; cutting at natural pauses builds on it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from vidprod.media.probe import InvalidMedia


@dataclass(frozen=True)
class PlannedPart:
    index: int
    start: Fraction  # seconds on the source's clock
    end: Fraction
    reason: str  # why the part ends where it does

    @property
    def duration(self) -> Fraction:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": str(self.start),
            "end": str(self.end),
            "start_seconds": round(float(self.start), 6),
            "end_seconds": round(float(self.end), 6),
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlannedPart:
        return cls(data["index"], Fraction(data["start"]), Fraction(data["end"]), data["reason"])


@dataclass(frozen=True)
class Timeline:
    """Presentation times of every video frame, and when the last one stops showing."""

    frame_times: list[Fraction]
    end: Fraction


def read_timeline(path: Path) -> Timeline:
    """Demux (not decode) the video track to learn every frame's time; works on VFR.

    Being a full pass over the file, it is also where damage that appeared after the
    upload is caught: a cut-short packet or frames missing from the end."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        tb = video.time_base
        times: list[Fraction] = []
        end = Fraction(0)
        for packet in container.demux(video):
            if packet.pts is None or packet.size == 0:
                continue
            if packet.is_corrupt:
                raise InvalidMedia(f"The video is damaged at {float(packet.pts * tb):.1f} s.")
            t = packet.pts * tb
            times.append(t)
            end = max(end, (packet.pts + (packet.duration or 0)) * tb)
        declared = video.duration * tb if video.duration else None
    if not times:
        raise InvalidMedia("The video track holds no pictures.")
    times.sort()
    if end <= times[-1]:
        # No packet duration: assume the last frame shows as long as the one before.
        step = times[-1] - times[-2] if len(times) > 1 else Fraction(1, 30)
        end = times[-1] + step
    if declared is not None and len(times) > 1 and end < declared - 2 * (times[-1] - times[-2]):
        raise InvalidMedia(
            f"The video stops at {float(end):.1f} s although it says it lasts "
            f"{float(declared):.1f} s: the file is damaged or incomplete."
        )
    return Timeline(times, end)


def plan_even_cuts(timeline: Timeline, limit_seconds: int) -> list[PlannedPart]:
    """Split into the fewest parts that fit the limit, as equal in length as frames allow."""
    times = timeline.frame_times
    start, end = times[0], timeline.end
    limit = Fraction(limit_seconds)
    count = max(1, math.ceil((end - start) / limit))
    cuts = [start]
    for k in range(1, count):
        cuts.append(_frame_at_or_before(times, start + (end - start) * k / count))
    cuts.append(end)
    parts = [
        PlannedPart(i, cuts[i], cuts[i + 1], "limit" if i < count - 1 else "end")
        for i in range(count)
    ]
    if any(p.duration > limit for p in parts):
        # Frame rounding pushed a part over: fall back to cutting right at the limit.
        return _plan_at_limit(times, end, limit)
    return parts


def _plan_at_limit(times: Sequence[Fraction], end: Fraction, limit: Fraction) -> list[PlannedPart]:
    cuts = [times[0]]
    while end - cuts[-1] > limit:
        cuts.append(_frame_at_or_before(times, cuts[-1] + limit))
    cuts.append(end)
    last = len(cuts) - 2
    return [
        PlannedPart(i, cuts[i], cuts[i + 1], "limit" if i < last else "end")
        for i in range(len(cuts) - 1)
    ]


def _frame_at_or_before(times: Sequence[Fraction], t: Fraction) -> Fraction:
    i = bisect.bisect_right(times, t) - 1
    return times[max(i, 1)]  # never the first frame: a part needs at least one frame
