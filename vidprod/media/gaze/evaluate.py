"""The evaluation harness behind `vidprod gaze-eval DIR -o OUT`: run the corrector on
each clip, measure what it did from the pixels (metrics.py), write a JSON summary and
a contact sheet per clip.

Frames go in as yuv420p, as the render hands them to its hook (clips are decoded and
converted; display rotation is not applied here).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from vidprod.media.gaze.control import ENGAGE_BELOW, RELEASE_ABOVE, SACCADE
from vidprod.media.gaze.corrector import GazeCorrector, GazeSettings, with_look_ahead
from vidprod.media.gaze.geometry import eye_frames, eye_readings
from vidprod.media.gaze.metrics import (
    changed_outside,
    edge_gain,
    eye_region_mask,
    flicker,
    iris_radius_ratio,
    shift_ratio,
    texture_shift_fit,
)
from vidprod.media.gaze.sheets import SheetRow, write_sheet
from vidprod.media.gaze.stills import Box, crop_planes, planes_to_rgb
from vidprod.media.planes import plane_views
from vidprod.media.render import Normalize

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".m4v"}
MIN_MEASURED_SHIFT_PX = 0.5  # smaller moves make the texture ratio mostly noise
# Within this, or within 3 standard errors of the texture measurement when its iris
# texture is weak, the applied shift is what the iris moved by (measured - applied on
# the fixtures: RMS 0.002 px, max 0.006 px).
CONFIRMED_PX = 0.02
BAR_EYE_PX = 40  # texture-shift bar applies to eyes at least this wide
# ... and to measures of it precise to this share of the ask (one standard error): an
# iris whose texture is mostly glints or blur measures to ±0.3 (hdtf_RD_Radio2 frame
# 165, two glints: 0.84 ± 0.29), which cannot tell 0.9 from 1
TEXTURE_PRECISION = 0.1
PRECISE_SHARE = 0.75  # of those measures that must be that precise
# The bars a clip is flagged for missing (misses()).
IRIS_RATIO_BAR = (0.95, 1.05)
TEXTURE_BAR = 0.9
# A ghost rim reads over 1.1; raising the lid uncovers more of the iris, whose edge adds
# a few per cent of gradient energy (1.04 on the reading astronaut) with no artifact.
EDGE_GAIN_BAR = 1.05
READER_SHARE = 0.5  # a reader has at least this share of frames corrected
LENS_LOOKER_SHARE = 0.05  # a lens-looker at most this share changed


@dataclass
class FrameResult:
    index: int
    identical: bool
    reason: str | None
    shift_px: float  # the applied iris move (mean of both eyes), negative up
    degrees: float  # the rotation it stands for, positive up
    outside: int  # changed samples outside the eye regions
    eye_width: float | None = None
    texture: list[float | None] = field(default_factory=list)  # per eye ratio
    texture_error: list[float] = field(default_factory=list)  # per eye, its standard error over the move asked
    iris_ratio: list[float | None] = field(default_factory=list)
    flicker_in: float | None = None
    flicker_out: float | None = None
    speed: float = 0.0  # landmark motion, px/frame
    iris_in: np.ndarray | None = None  # mean raw-landmark iris centre of both eyes
    gaze_in: np.ndarray | None = None  # mean raw eye-in-head offset (h, v), eye widths
    moved: np.ndarray | None = None  # mean displacement the edit gave the irises
    render_error: list[float] = field(default_factory=list)  # |measured - applied| px per eye
    edges: float | None = None  # eye regions' gradient energy, output over input


def clip_frames(path: Path) -> Iterator[av.VideoFrame]:
    """Every frame of a clip upright (display rotation applied as the render applies it:
    PyAV never does, and a sideways face has no landmarks), even-sized, as yuv420p.
    Colours stay as decoded: the metrics compare the hook's input with its output."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        upright: Normalize | None = None
        for i, frame in enumerate(container.decode(stream)):
            if upright is None:
                upright = Normalize(frame, stream.time_base, colour=False)
            out = upright.apply(frame).reformat(format="yuv420p")
            out.pts, out.time_base = i, stream.average_rate and 1 / stream.average_rate or None
            if out.time_base is None:
                out.pts = None
            yield out


class _Picks:
    """The sheet's rows: the worst frame by each metric and a few notable ones, kept
    while the clip streams past."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[float, SheetRow]] = {}

    def offer(self, key: str, score: float, make: Any) -> None:
        if key not in self.rows or score > self.rows[key][0]:
            self.rows[key] = (score, make())

    def sorted(self) -> list[SheetRow]:
        return [row for _, row in self.rows.values()]


def evaluate_frames(frames: Iterable[av.VideoFrame], corrector: GazeCorrector, *,
                    name: str = "clip", sheet: Path | None = None) -> dict[str, Any]:  # fmt: skip
    results: list[FrameResult] = []
    picks = _Picks()
    previous: tuple[np.ndarray, np.ndarray] | None = None
    last_points: np.ndarray | None = None
    for frame in with_look_ahead(frames, corrector):
        before = tuple(p.copy() for p in plane_views(frame))
        out = corrector(frame)
        after = plane_views(out)
        index = corrector.frames_seen - 1
        identical = all(np.array_equal(a, b) for a, b in zip(before, after))
        points = corrector.last_points
        edits = corrector.last_edits
        reason = corrector.last_reason
        region = eye_region_mask(points, before[0].shape) if points is not None else np.zeros(before[0].shape, bool)
        applied = corrector.applied[-1] if edits and corrector.applied and corrector.applied[-1][0] == index else None
        degrees, shift_px = applied[1:] if applied else (0.0, 0.0)
        result = FrameResult(index, identical, reason, -shift_px, degrees, changed_outside(before, after, region))
        if points is not None:
            eyes = eye_frames(points)
            result.eye_width = float(min(e.w for e in eyes))
            if last_points is not None:
                result.speed = float(np.median(np.hypot(*(points - last_points).T)))
            if previous is not None:
                result.flicker_in = flicker(previous[0], before[0], region)
                result.flicker_out = flicker(previous[1], after[0], region)
        last_points = points
        previous = (before[0], after[0].copy())
        raw = corrector.last_raw_points
        if raw is not None:
            result.iris_in = (raw[468] + raw[473]) / 2
            result.gaze_in = np.mean([e.gaze for e in eye_readings(raw)], axis=0)
        moves = []
        for edit in edits:
            measured, error = None, 0.0
            if np.hypot(*edit.shift) >= MIN_MEASURED_SHIFT_PX and not identical:
                fit = texture_shift_fit(before[0], after[0], edit)
                measured, error = fit if fit is not None else (None, 0.0)
                result.texture.append(shift_ratio(measured, edit.shift))
                result.texture_error.append(error / float(np.hypot(*edit.shift)))
            else:
                result.texture.append(None)
                result.texture_error.append(0.0)
            if measured is not None:
                result.render_error.append(float(np.hypot(*(measured - edit.shift))))
            confirmed = measured is None or np.hypot(*(measured - edit.shift)) <= max(CONFIRMED_PX, 3 * error)
            moves.append(edit.shift if confirmed else measured)
            ratio = None
            if measured is not None:  # a visible move: compare the iris sizes
                ratio = iris_radius_ratio(before[0], after[0], edit.iris, edit.iris + measured, edit.r, edit.ux)
            result.iris_ratio.append(ratio)
        result.moved = np.mean(moves, axis=0) if moves and not identical else np.zeros(2)
        if not identical:
            result.edges = edge_gain(before[0], after[0], region)
        results.append(result)
        if sheet is not None and points is not None:
            _offer_rows(picks, result, points, before, after, corrector)
    summary = summarise(results, corrector)
    summary["clip"] = name
    summary["misses"] = misses(summary)
    if sheet is not None:
        write_sheet(sheet, f"{name}: strength {corrector.settings.strength:g}", picks.sorted())
        summary["contact_sheet"] = str(sheet)
    return summary


def _offer_rows(picks: _Picks, r: FrameResult, points: np.ndarray, before: tuple[np.ndarray, ...],
                after: tuple[np.ndarray, ...], corrector: GazeCorrector) -> None:  # fmt: skip
    eyes = eye_frames(points)
    height, width = before[0].shape
    contour = np.concatenate([e.to_image(e.xs, e.upper) for e in eyes] + [e.to_image(e.xs, e.lower) for e in eyes])
    box = Box.around(contour, 0.45 * max(e.w for e in eyes), width, height)

    def make(label: str):  # type: ignore[no-untyped-def]
        def build() -> SheetRow:
            b = planes_to_rgb(*crop_planes(*before, box))
            a = planes_to_rgb(*crop_planes(*after, box))
            eye = eyes[0]
            # around the eye's middle, wide enough for a tilted head's eye to fit
            cx, cy = eye.origin + eye.ux * eye.w / 2 - (box.x0, box.y0)
            half_x = 0.5 * eye.w * abs(eye.ux[0]) + 0.25 * eye.w * abs(eye.ux[1]) + 0.15 * eye.w
            half_y = 0.5 * eye.w * abs(eye.ux[1]) + 0.45 * eye.w * abs(eye.ux[0])
            ex0, ex1 = int(max(0, cx - half_x)), int(min(b.shape[1], cx + half_x))
            ey0, ey1 = int(max(0, cy - half_y)), int(min(b.shape[0], cy + half_y))
            return SheetRow(f"frame {r.index}: {label}", b, a, (ex0, ey0, ex1, ey1))

        return build

    edited = not r.identical
    if edited:
        texture = [t for t in r.texture if t is not None]
        if texture:
            picks.offer("texture", 1 - min(texture), make(f"lowest texture shift ratio {min(texture):.2f}"))
        ratios = [q for q in r.iris_ratio if q is not None]
        if ratios:
            worst = max(ratios, key=lambda q: abs(q - 1))
            picks.offer("iris", abs(worst - 1), make(f"iris radius ratio furthest from 1: {worst:.3f}"))
        if r.edges is not None:
            picks.offer("edges", r.edges, make(f"most added edges (rims, streaks?) x{r.edges:.3f}"))
        if r.flicker_in is not None and r.flicker_out is not None:
            picks.offer("flicker", r.flicker_out - r.flicker_in,
                        make(f"most added flicker {r.flicker_out - r.flicker_in:+.2f}"))  # fmt: skip
        picks.offer("strongest", abs(r.shift_px), make(f"strongest shift {abs(r.shift_px):.2f} px"))
        picks.offer("fast", r.speed, make(f"fastest head motion {r.speed:.1f} px/frame"))
        if "first" not in picks.rows and corrector.frames_corrected >= 10:
            picks.offer("first", 0, make("an ordinary corrected frame"))
    if r.reason == "blink":
        picks.offer("blink", 1, make("blink (left untouched)"))
    if r.reason == "look_away":
        picks.offer("look_away", 1, make("look-away (left untouched)"))


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    a = np.asarray(values, np.float64)
    return {"n": int(a.size), "mean": round(float(a.mean()), 4), "min": round(float(a.min()), 4),
            "max": round(float(a.max()), 4), "p50": round(float(np.median(a)), 4)}  # fmt: skip


def iris_jitter(results: list[FrameResult]) -> dict[str, float | int | None]:
    """RMS second difference (px) of the iris track while the eye fixates: the input's
    from the landmarks, the output's the same track plus the displacement the edit gave
    the iris. That is the applied shift where the texture measurement confirms it
    (within CONFIRMED_PX or its own 3 standard errors) or cannot measure it, else the
    measured displacement: adding
    the measurement's own noise (second differences ~0.007 px) to the output's track
    alone made a perfectly steady edit read as jitter.

    A run of fixation ends at a blink (there is no iris to follow) and at a saccade, a
    jump of the eye in the head of more than SACCADE eye widths between two frames
    (read from the input's raw landmarks, not from the corrector's decisions). A saccade's second
    difference is the gaze shift itself, several px, and would swamp the sub-pixel
    wobble this measures; it is also where the corrector may switch, because a change
    there is hidden by the eye's own jump. Changes anywhere else count in full."""
    seconds_in: list[float] = []
    seconds_out: list[float] = []
    run: list[FrameResult] = []
    saccades = 0

    def flush() -> None:
        for a, b, c in zip(run, run[1:], run[2:]):
            p_in = [r.iris_in for r in (a, b, c)]
            p_out = [r.iris_in + r.moved for r in (a, b, c)]  # type: ignore[operator]
            seconds_in.append(float(np.hypot(*(p_in[0] - 2 * p_in[1] + p_in[2]))))
            seconds_out.append(float(np.hypot(*(p_out[0] - 2 * p_out[1] + p_out[2]))))
        run.clear()

    for r in results:
        if r.iris_in is None or r.moved is None or r.reason == "blink":
            flush()
            continue
        last = run[-1].gaze_in if run else None
        if last is not None and r.gaze_in is not None and np.hypot(*(r.gaze_in - last)) > SACCADE:
            saccades += 1
            flush()
        run.append(r)
    flush()
    rms = lambda v: round(float(np.sqrt(np.mean(np.square(v)))), 4) if v else None
    return {"in": rms(seconds_in), "out": rms(seconds_out), "n": len(seconds_in), "saccades": saccades}


def summarise(results: list[FrameResult], corrector: GazeCorrector) -> dict[str, Any]:
    per_eye: list[list[float]] = [[], []]
    bar_eye: list[list[float]] = [[], []]
    wide: list[int] = [0, 0]  # measures on eyes BAR_EYE_PX wide or more, precise or not
    iris: list[float] = []
    for r in results:
        for i, (t, error) in enumerate(zip(r.texture, r.texture_error)):
            if t is not None:
                per_eye[i].append(t)
                if r.eye_width is not None and r.eye_width >= BAR_EYE_PX:
                    wide[i] += 1
                    if error <= TEXTURE_PRECISION:
                        bar_eye[i].append(t)
        iris += [q for q in r.iris_ratio if q is not None]
    shifts = [r.shift_px for r in results]
    steps = [abs(b - a) for a, b in itertools.pairwise(shifts)]
    fin = [r.flicker_in for r in results if r.flicker_in is not None]
    fout = [r.flicker_out for r in results if r.flicker_out is not None]
    # frame pairs both corrected: what the edit adds while it holds, without the
    # frames where it switches on or off (a blink, a look-away)
    steady = [b for a, b in itertools.pairwise(results)
              if not a.identical and not b.identical and b.flicker_in is not None]  # fmt: skip
    jitter = iris_jitter(results)
    by_reason: dict[str, dict[str, int]] = {}
    for r in results:
        if r.reason:
            entry = by_reason.setdefault(r.reason, {"frames": 0, "identical": 0})
            entry["frames"] += 1
            entry["identical"] += int(r.identical)
    report = corrector.report()
    before = report["gaze_degrees"]
    turned = [r.degrees for r in results]
    return {
        "frames": len(results),
        "frames_changed": sum(not r.identical for r in results),
        # the speaker's gaze as the corrector estimates it (degrees from the lens, below
        # negative), and as the output shows it: plus the median turn over all frames
        "gaze": {
            "before_degrees": before,
            "after_degrees": None if before is None else round(before + float(np.median(turned)), 2),
        },
        "texture_shift": {
            "per_eye": [_stats(v) for v in per_eye],
            # eyes BAR_EYE_PX wide or more, measures precise to TEXTURE_PRECISION
            "for_the_bar": [_stats(v) for v in bar_eye],
            "on_wide_eyes": wide,  # how many measures the bar could have counted
        },
        "locality": {
            "changed_outside_eye_regions": sum(r.outside for r in results),
            "frames_with_changes_outside": sum(r.outside > 0 for r in results),
        },
        "untouched": by_reason,
        "stability": {
            "applied_shift_px": _stats([abs(s) for s in shifts if s]),
            "shift_change_px_per_frame": _stats(steps),
            "iris_jitter_in_px": jitter["in"],
            "iris_jitter_out_px": jitter["out"],
            "iris_jitter_samples": jitter["n"],
            "saccades": jitter["saccades"],
            "flicker_in": round(float(np.mean(fin)), 4) if fin else None,
            "flicker_out": round(float(np.mean(fout)), 4) if fout else None,
            "flicker_steady_in": round(float(np.mean([r.flicker_in for r in steady])), 4) if steady else None,
            "flicker_steady_out": round(float(np.mean([r.flicker_out for r in steady])), 4) if steady else None,
        },
        "fidelity": {
            "iris_radius_ratio": _stats(iris),
            "render_error_px": _stats([e for r in results for e in r.render_error]),
            "edge_gain": _stats([r.edges for r in results if r.edges is not None]),
        },
        "report": report,
    }


def misses(s: dict[str, Any]) -> list[str]:
    """The bars a clip's summary misses, in words (empty: every bar met)."""
    out = []
    if s["locality"]["changed_outside_eye_regions"]:
        out.append(f"{s['locality']['changed_outside_eye_regions']} samples changed outside the edit region")
    st = s["stability"]
    if st["iris_jitter_out_px"] is not None and st["iris_jitter_out_px"] > st["iris_jitter_in_px"]:
        out.append(f"iris jitter out {st['iris_jitter_out_px']} > in {st['iris_jitter_in_px']} px")
    iris = s["fidelity"]["iris_radius_ratio"]
    if iris is not None and not (IRIS_RATIO_BAR[0] <= iris["min"] and iris["max"] <= IRIS_RATIO_BAR[1]):
        out.append(f"iris radius ratio {iris['min']}-{iris['max']} outside {IRIS_RATIO_BAR[0]}-{IRIS_RATIO_BAR[1]}")
    texture = s["texture_shift"]
    for i, (eye, wide) in enumerate(zip(texture["for_the_bar"], texture["on_wide_eyes"])):
        if eye is not None and eye["min"] < TEXTURE_BAR:
            out.append(f"eye {i + 1} texture shift {eye['min']} of requested (bar {TEXTURE_BAR})")
        # the precision comes from the fit's residual, which a smeared iris also raises:
        # a bar that counts few of the measures says little
        counted = 0 if eye is None else eye["n"]
        if wide and counted < PRECISE_SHARE * wide:
            out.append(f"eye {i + 1} texture shift measured precisely on only {counted} of {wide} frames")
    edges = s["fidelity"]["edge_gain"]
    if edges is not None and edges["max"] > EDGE_GAIN_BAR:
        out.append(f"edge gain {edges['max']} (rims, streaks?)")
    before, share = s["gaze"]["before_degrees"], s["frames_changed"] / max(1, s["frames"])
    if before is not None and before <= ENGAGE_BELOW and share < READER_SHARE:
        out.append(f"reads {before}° below the lens, yet only {share:.0%} of frames corrected")
    if before is not None and before > RELEASE_ABOVE and share > LENS_LOOKER_SHARE:
        out.append(f"reads {before}° (at the lens), yet {share:.0%} of frames changed")
    return out


def evaluate_dir(folder: Path, out: Path, model: bytes, settings: GazeSettings | None = None,
                 *, echo: Any = print) -> list[dict[str, Any]]:  # fmt: skip
    settings = settings or GazeSettings()
    out.mkdir(parents=True, exist_ok=True)
    clips = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    summaries = []
    for clip in clips:
        with GazeCorrector(model, settings) as corrector:
            summary = evaluate_frames(clip_frames(clip), corrector, name=clip.name,
                                      sheet=out / f"{clip.stem}.png")  # fmt: skip
        (out / f"{clip.stem}.json").write_text(json.dumps(summary, indent=2))
        echo(describe(summary))
        summaries.append(summary)
    (out / "summary.json").write_text(json.dumps(summaries, indent=2))
    return summaries


def describe(s: dict[str, Any]) -> str:
    def fmt(stats: dict[str, float] | None, key: str = "mean") -> str:
        return "-" if stats is None else f"{stats[key]:.3f}"

    tex = s["texture_shift"]["per_eye"]
    st = s["stability"]
    rep = s["report"]
    lines = [
        (f"{s['clip']}: {s['frames']} frames, {rep['frames_corrected']} corrected "
        f"(mean {rep['mean_correction_px']} px, {rep['mean_correction_degrees']}°), skipped {rep['skipped']}"),
        (f"  gaze (estimated, degrees from the lens): before {s['gaze']['before_degrees']}, "
         f"after {s['gaze']['after_degrees']}"),
        (f"  texture shift / requested: eye 1 mean {fmt(tex[0])} min {fmt(tex[0], 'min')}, "
        f"eye 2 mean {fmt(tex[1])} min {fmt(tex[1], 'min')}"),
        (f"  locality: {s['locality']['changed_outside_eye_regions']} samples changed outside the eye regions; "
        f"untouched frames {s['untouched']}"),
        (f"  stability: shift change {fmt(st['shift_change_px_per_frame'])} px/frame "
        f"(max {fmt(st['shift_change_px_per_frame'], 'max')}); iris jitter in {st['iris_jitter_in_px']} "
        f"out {st['iris_jitter_out_px']} px; flicker in {st['flicker_in']} out {st['flicker_out']} "
        f"(corrected frame pairs: in {st['flicker_steady_in']} out {st['flicker_steady_out']})"),
        (f"  fidelity: iris radius ratio {fmt(s['fidelity']['iris_radius_ratio'], 'min')}-"
        f"{fmt(s['fidelity']['iris_radius_ratio'], 'max')}; edge gain max {fmt(s['fidelity']['edge_gain'], 'max')}"),
    ]
    if "contact_sheet" in s:
        lines.append(f"  contact sheet: {s['contact_sheet']}")
    missed = s.get("misses", misses(s))
    lines.append("  MISSES: " + "; ".join(missed) if missed else "  every bar met")
    return "\n".join(lines)

