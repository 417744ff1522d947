"""Decide where a video is cut into parts: at natural pauses, under the length limit.

For each cut we look in a window before the limit for the best pause in the speech
(long and quiet, later preferred a little; with a transcript, a pause that ends a
sentence first), then further back (a 45 s part beats a cut word), then for a scene
change, then for the quietest gap between two words, and only then cut at the limit
itself. A cut never leaves a remainder shorter than the minimum part, so there is no
2-second tail. Cut times are frame timestamps kept as exact fractions, so a part starts
on a real frame and part durations add up to the source.
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
from vidprod.media.speech import Word

# Parts end this much before the limit, so rounding to the output frame grid can never
# push one over it.
LIMIT_MARGIN = Fraction(1, 10)


@dataclass(frozen=True)
class CutRules:
    limit: Fraction = Fraction(60)
    min_part: Fraction = Fraction(5)  # no part (and so no tail) shorter than this
    window: Fraction = Fraction(8)  # how far before the limit to look for a pause
    # How far before the limit to look for a pause when the window has none (a cut in
    # the middle of speech is worse than a shorter part).
    reach: Fraction = Fraction(20)
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
    reason: str  # why the part ends where it does: pause, scene, word_gap, limit or end
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
    words: Sequence[Word] | None = None,
) -> list[PlannedPart]:
    """`words` (the transcript, if any) tells sentence ends and the gaps between words."""
    timeline = scan.timeline
    pauses = find_pauses(scan.loudness, rules.min_pause) if scan.loudness else []
    sentence_ends = [w.end for w in words or () if w.ends_sentence]
    start, end = timeline.start, timeline.end
    limit = rules.limit - LIMIT_MARGIN
    min_part = min(rules.min_part, limit / 2)
    window = min(rules.window, limit / 4)  # short limits: stay near the limit
    reach = max(window, min(rules.reach, limit / 3))
    parts: list[PlannedPart] = []
    cur = start
    while end - cur > limit:
        hi = min(cur + limit, end - min_part)
        lo = max(cur + min_part, hi - window)
        cut, reason, detail = _best_pause(timeline, pauses, lo, hi, sentence_ends)
        far = max(cur + min_part, hi - reach)
        if cut is None and far < lo:
            cut, reason, detail = _best_pause(timeline, pauses, far, lo, sentence_ends)
        if cut is None and scene_finder is not None:
            scene = scene_finder(lo, hi)
            if scene is not None and not _inside_a_word(words, scene):
                cut, reason, detail = scene, "scene", "picture changes"
        if cut is None:
            cut, reason, detail = _quietest_gap(timeline, scan.loudness, words, lo, hi)
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


# A pause right after a sentence's last word outranks any pause inside a sentence.
SENTENCE_BONUS = 10.0
SENTENCE_END_SLACK = 0.3  # seconds between a word's recorded end and the pause's start


def _best_pause(
    timeline: Timeline, pauses: Sequence[Pause], lo: Fraction, hi: Fraction,
    sentence_ends: Sequence[float] = (),
) -> tuple[Fraction | None, str, str]:  # fmt: skip
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
        if _ends_a_sentence(pause, sentence_ends):
            score += SENTENCE_BONUS
        if best is None or score > best[0]:
            best = (score, cut, pause)
    if best is None:
        return None, "", ""
    pause = best[2]
    after = " after a sentence" if _ends_a_sentence(pause, sentence_ends) else ""
    return best[1], "pause", f"{pause.length * 1000:.0f} ms pause at {pause.start:.2f} s{after}"


def _ends_a_sentence(pause: Pause, sentence_ends: Sequence[float]) -> bool:
    i = bisect.bisect_left(sentence_ends, pause.start - SENTENCE_END_SLACK)
    return i < len(sentence_ends) and sentence_ends[i] <= pause.end


def _inside_a_word(words: Sequence[Word] | None, t: Fraction) -> bool:
    return any(w.start < float(t) < w.end for w in words or ())


# Without a transcript, a gap between words is a dip this far below the window's median
# level, at least DIP_SECONDS long (shorter and shallower than a pause).
DIP_DB = 6.0
DIP_SECONDS = 0.05


def _quietest_gap(
    timeline: Timeline, loudness: Loudness | None, words: Sequence[Word] | None, lo: Fraction, hi: Fraction
) -> tuple[Fraction | None, str, str]:
    """The quietest moment between two words in [lo, hi]: with a transcript, between
    words it has; without one, the deepest dip in the sound."""
    lo_f, hi_f = float(lo), float(hi)

    def level(a: float, b: float) -> float:
        if loudness is None or not len(loudness.db):
            return 0.0
        i = max(0, int((a - loudness.start) / loudness.hop))
        j = min(len(loudness.db), max(i + 1, int(np.ceil((b - loudness.start) / loudness.hop))))
        return float(loudness.db[i:j].mean()) if i < j else 0.0

    if words:
        gaps = [
            (a.end, b.start) for a, b in zip(words, words[1:])
            if lo_f <= (a.end + b.start) / 2 <= hi_f and b.start >= a.end
        ]  # fmt: skip
        # Quietest first, then the widest: Whisper often gives touching words (no gap).
        ranked = sorted(gaps, key=lambda g: (level(g[0] - 0.03, g[1] + 0.03), -(g[1] - g[0])))
        for a, b in ranked:
            cut = _frame_near(timeline.frame_times, Fraction((a + b) / 2), lo, hi)
            if cut is not None:
                return cut, "word_gap", f"between words at {a:.2f} s"
        return None, "", ""
    if loudness is None:
        return None, "", ""
    hops = max(1, int(round(DIP_SECONDS / loudness.hop)))
    first = max(0, int((lo_f - loudness.start) / loudness.hop))
    stop = min(len(loudness.db), int((hi_f - loudness.start) / loudness.hop))
    if stop - first < hops * 2:
        return None, "", ""
    stretch = loudness.db[first:stop]
    means = np.convolve(stretch, np.ones(hops) / hops, mode="valid")
    deepest = int(np.argmin(means))
    if np.median(stretch) - means[deepest] < DIP_DB:
        return None, "", ""
    t = loudness.time_of(first + deepest) + hops * loudness.hop / 2
    cut = _frame_near(timeline.frame_times, Fraction(t), lo, hi)
    return (cut, "word_gap", f"quietest moment at {t:.2f} s") if cut is not None else (None, "", "")


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
    # Every pause in the speech as the frame a cut there falls on: where a creator may
    # move a cut to, or add one (plans made before this was kept have none).
    pauses: tuple[Fraction, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": str(self.rate), "parts": [p.to_json() for p in self.parts],
            "pauses": [str(t) for t in self.pauses], "pause_seconds": [round(float(t), 6) for t in self.pauses],
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls([PlannedPart.from_json(p) for p in data["parts"]], Fraction(data.get("rate", "30")),
                   tuple(Fraction(t) for t in data.get("pauses", ())))  # fmt: skip

    def cuts(self) -> list[Fraction]:
        return [p.end for p in self.parts[:-1]]


def plan_file(path: Path, rules: CutRules, words: Sequence[Word] | None = None,
              limits: InputLimits | None = None) -> Plan:  # fmt: skip
    """Scan the source once and plan its cuts, with the scene-change fallback."""
    scan = scan_source(path, limits)
    parts = plan_cuts(scan, rules, lambda lo, hi: find_scene_change(path, lo, hi), words)
    return Plan(parts, scan.timeline.output_rate(), pause_times(scan, rules))


def pause_times(scan: SourceScan, rules: CutRules) -> tuple[Fraction, ...]:
    """The frame in the middle of every pause (never the first frame)."""
    times = scan.timeline.frame_times
    if len(times) < 2 or scan.loudness is None:
        return ()
    found = set()
    for pause in find_pauses(scan.loudness, rules.min_pause):
        cut = _frame_near(times, Fraction((pause.start + pause.end) / 2), times[1], times[-1])
        if cut is not None:
            found.add(cut)
    return tuple(sorted(found))


# Parts moved by hand stay within what some platform takes: Reels run 3 s to 15 min
# (Shorts end at 3 min, TikTok at the account's maximum; each post is checked again).
HAND_MIN_PART = Fraction(3)
HAND_MAX_PART = Fraction(15 * 60)


class CutError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def recut(plan: Plan, cuts: Sequence[Fraction]) -> Plan:
    """The plan with the creator's cuts: each at one of the plan's pauses or where a
    cut already is. A part whose start and end stay keeps its index-free identity (the
    caller keeps its file); the others are new."""
    start, end = plan.parts[0].start, plan.parts[-1].end
    ends = {p.end: p for p in plan.parts[:-1]}
    allowed = set(plan.pauses) | set(ends)
    chosen = sorted(set(cuts))
    problems = [f"{float(t):.2f} s is not one of this video's pauses" for t in chosen if t not in allowed]
    bounds = [start, *chosen, end]
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        if b - a < HAND_MIN_PART:
            problems.append(f"part {i + 1} would last {float(b - a):.1f} s; a part lasts at least {HAND_MIN_PART} s")
        elif b - a > HAND_MAX_PART:
            problems.append(f"part {i + 1} would last {float(b - a) / 60:.1f} min; a part lasts at most 15 min")
    if problems:
        raise CutError(problems)
    parts = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        if b == end:
            reason, detail = "end", ""
        elif b in ends:
            reason, detail = ends[b].reason, ends[b].detail
        else:
            reason, detail = "pause", "moved here by hand"
        parts.append(PlannedPart(i, a, b, reason, detail))
    return Plan(parts, plan.rate, plan.pauses)
