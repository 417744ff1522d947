"""Decide where a video is cut into parts: at natural pauses, under the length limit.

For each cut we look in a window before the limit for the best pause in the speech
(long and quiet, later preferred a little), then for a scene change, and only then cut
at the limit itself. A cut never leaves a remainder shorter than the minimum part, so
there is no 2-second tail. Cut times are frame timestamps kept as exact fractions, so a
part starts on a real frame and part durations add up to the source.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidprod.media.probe import InputLimits, InvalidMedia
from vidprod.media.scan import Loudness, SourceScan, Timeline, scan_source
from vidprod.media.scenes import find_scene_change

# Parts end this much before the limit, so rounding to the output frame grid can never
# push one over it.
LIMIT_MARGIN = Fraction(1, 10)


@dataclass(frozen=True)
class CutRules:
    limit: Fraction = Fraction(60)
    min_part: Fraction = Fraction(5)  # no part (and so no tail) shorter than this
    window: Fraction = Fraction(8)  # how far before the limit to look for a pause
    min_pause: float = 0.15  # seconds of quiet that count as a pause


@dataclass(frozen=True)
class Pause:
    start: float
    end: float
    depth_db: float  # how far below the quiet threshold it sits, on average

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class PlannedPart:
    index: int
    start: Fraction  # seconds on the source's clock
    end: Fraction
    reason: str  # why the part ends where it does: pause, scene, limit or end
    detail: str = ""

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
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlannedPart:
        return cls(
            data["index"],
            Fraction(data["start"]),
            Fraction(data["end"]),
            data["reason"],
            data.get("detail", ""),
        )


SceneFinder = Callable[[Fraction, Fraction], Fraction | None]


# A pause is at least this far below the speech around it (syllable dips are shallower
# or shorter than min_pause; the gaps between words are shorter).
PAUSE_DROP_DB = 15.0


def find_pauses(loudness: Loudness, min_pause: float = 0.15) -> list[Pause]:
    """Stretches of at least `min_pause` clearly quieter than the speech around them.

    The reference is local (the 80th percentile of each second, the loudest such level
    within ±3 s), not global: it follows a voice that gets louder or softer and works
    however rarely the speaker pauses. Steady sound (music, noise) has no pauses."""
    db = loudness.db
    hops_per_block = max(1, int(round(1 / loudness.hop)))
    blocks = int(np.ceil(len(db) / hops_per_block))
    if blocks == 0:
        return []
    level = np.array([
        np.percentile(db[i * hops_per_block : (i + 1) * hops_per_block], 80)
        for i in range(blocks)
    ])  # fmt: skip
    padded = np.pad(level, 3, mode="edge")
    speech = np.max(np.lib.stride_tricks.sliding_window_view(padded, 7), axis=1)
    reference = np.repeat(speech, hops_per_block)[: len(db)]
    drop = reference - db
    quiet = np.concatenate([[False], drop >= PAUSE_DROP_DB, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    pauses = []
    for first, stop in zip(edges[::2], edges[1::2]):
        if (stop - first) * loudness.hop >= min_pause:
            depth = float(drop[first:stop].mean() - PAUSE_DROP_DB)
            pauses.append(Pause(loudness.time_of(first), loudness.time_of(stop), depth))
    return pauses


def plan_cuts(
    scan: SourceScan,
    rules: CutRules,
    scene_finder: SceneFinder | None = None,
) -> list[PlannedPart]:
    timeline = scan.timeline
    pauses = find_pauses(scan.loudness, rules.min_pause) if scan.loudness else []
    start, end = timeline.start, timeline.end
    limit = rules.limit - LIMIT_MARGIN
    min_part = min(rules.min_part, limit / 2)
    window = min(rules.window, limit / 4)  # short limits: stay near the limit
    parts: list[PlannedPart] = []
    cur = start
    while end - cur > limit:
        hi = min(cur + limit, end - min_part)
        lo = max(cur + min_part, hi - window)
        cut, reason, detail = _best_pause(timeline, pauses, lo, hi)
        if cut is None and scene_finder is not None:
            scene = scene_finder(lo, hi)
            if scene is not None:
                cut, reason, detail = scene, "scene", "picture changes"
        if cut is None:
            cut, reason, detail = _frame_at_or_before(timeline.frame_times, hi), "limit", ""
        if cut <= cur:  # a frame gap longer than the window: cut at the next frame
            cut = timeline.frame_times[bisect.bisect_right(timeline.frame_times, cur)]
        if cut - cur > rules.limit:  # only a gap longer than a part: no cut can keep the limit
            raise InvalidMedia(
                f"The video has no picture from {float(cur):.1f} s to {float(cut):.1f} s, longer "
                f"than a part may last ({float(rules.limit):g} s), so it cannot be cut into parts."
            )
        parts.append(PlannedPart(len(parts), cur, cut, reason, detail))
        cur = cut
    parts.append(PlannedPart(len(parts), cur, end, "end"))
    return parts


def _best_pause(
    timeline: Timeline, pauses: Sequence[Pause], lo: Fraction, hi: Fraction
) -> tuple[Fraction | None, str, str]:
    best: tuple[float, Fraction, Pause] | None = None
    lo_f, hi_f = float(lo), float(hi)
    for pause in pauses:
        a, b = max(pause.start, lo_f), min(pause.end, hi_f)
        if b - a < 0.1:
            continue
        cut = _frame_near(timeline.frame_times, Fraction((a + b) / 2), lo, hi)
        if cut is None:
            continue
        lateness = (float(cut) - lo_f) / max(hi_f - lo_f, 1e-9)
        score = min(b - a, 1.5) * (1 + max(pause.depth_db, 0) / 20) + 0.15 * lateness
        if best is None or score > best[0]:
            best = (score, cut, pause)
    if best is None:
        return None, "", ""
    pause = best[2]
    return best[1], "pause", f"{pause.length * 1000:.0f} ms pause at {pause.start:.2f} s"


def _frame_near(
    times: Sequence[Fraction], t: Fraction, lo: Fraction, hi: Fraction
) -> Fraction | None:
    i = bisect.bisect_left(times, t)
    candidates = [times[j] for j in (i - 1, i) if 0 < j < len(times) and lo <= times[j] <= hi]
    return min(candidates, key=lambda c: abs(c - t)) if candidates else None


def _frame_at_or_before(times: Sequence[Fraction], t: Fraction) -> Fraction:
    i = bisect.bisect_right(times, t) - 1
    return times[max(i, 1)]  # never the first frame: a part needs at least one frame


@dataclass(frozen=True)
class Plan:
    parts: list[PlannedPart]
    rate: Fraction  # output frames per second

    def to_json(self) -> dict[str, Any]:
        return {"rate": str(self.rate), "parts": [p.to_json() for p in self.parts]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls([PlannedPart.from_json(p) for p in data["parts"]], Fraction(data.get("rate", "30")))


def plan_file(path: Path, rules: CutRules, limits: InputLimits | None = None) -> Plan:
    """Scan the source once and plan its cuts, with the scene-change fallback."""
    scan = scan_source(path, limits)
    parts = plan_cuts(scan, rules, lambda lo, hi: find_scene_change(path, lo, hi))
    return Plan(parts, scan.timeline.output_rate())
