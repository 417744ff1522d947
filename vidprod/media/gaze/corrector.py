"""The render's per-frame hook for eye contact: landmarks → gates → lid fit → eye
re-render, with a report of what it did and a few before/after stills.

Frames it does not correct (strength 0, blinks, look-aways, small eyes, no face, people
already looking into the lens, irises that cannot be told from the sclera) are returned
untouched: the very same frame object.
A corrected frame is made writable first (the decoder may still reference its
buffers) and only the pixels inside the eye openings change.

The render announces each frame a few frames ahead (`look_ahead`), so its landmarks
run in the landmark process while the frames before it are edited and encoded; frames
nobody announced get landmarks when they arrive.

Landmarks run every frame, every other or every third (`landmark_interval`, a setting
chosen for quality, never switched by timing: the same input and settings give the
same frames on any machine under any load). Frames between get their points
interpolated from both measured neighbours, and their lids judged by the more closed of
the two, so a starting blink is never edited. Only a broken landmark process stops the
correction; the report says so.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self

import av
import numpy as np

from vidprod.media.faces import Face, main_face
from vidprod.media.gaze.control import (
    BLINK_CLOSED,
    DEGREES_PER_GAP,
    EVIDENCE_SECONDS,
    POSE_LIMIT,
    MIN_DEGREES,
    RAMP_SECONDS,
    GazeControl,
    Measure,
    OneEuro,
    gaze_pitch_degrees,
)
from vidprod.media.gaze.geometry import EyeFrame, EyeReading, eye_frames, eyeball_radius, head_angles
from vidprod.media.gaze.landmarks import (
    PICTURE_SLOTS,
    ChildLandmarker,
    FaceLandmarks,
    Landmarker,
    VideoLandmarker,
    landmark_picture,
)
from vidprod.media.gaze.lids import (
    STALE_AFTER,
    LidScores,
    LidTracker,
    apply_fit,
    corner_taper,
    lid_scores,
    skin_band,
)
from vidprod.media.gaze.rerender import BAND_PER_LIFT, EyeEdit, edit_eye, iris_contrast
from vidprod.media.gaze.stills import Box, crop_planes, planes_to_rgb, write_png
from vidprod.media.planes import plane_views

log = logging.getLogger(__name__)

DEFAULT_STRENGTH = 1.0
MIN_EYE_PX = 28.0
BAND_WOBBLE = 1.0  # px: how far a lid band held through a fixation may exceed the frame's measure
# The lid's rise beyond the iris's (`uncover`) shows eyeball the lid hid, continued from
# the iris seen above its centre; it is kept to this share of that visible height. On a
# narrow eye whose lid sits at the iris centre (liveportrait_d20: 0.8 px above it, 3 px
# asked) the strip read as a second lash line at 2x from 1 px on; eyes with 3-6 px of
# iris above the centre asked 0.2-0.77 of it and look clean.
UNCOVER_PER_ABOVE = 0.8
# That height is a slow average held through a fixation, but on a frame where the eye is
# far narrower than usual (a lid still low after a blink while the landmarks lag, a
# squint) the strip has nothing above the centre to continue: liveportrait_d20's left
# eye, its lid at the iris centre for 10 frames after a blink, showed the second lash
# line again. From half the usual height down to a quarter of it the extra rise fades
# out. An eye open as usual stays above half: on the developer clips that height moves
# by 0.04-0.16 px a frame at the median, and its lowest tenth sits at 0.6-0.94 of usual
# on every eye but d20's left one (whose lowest tenth is those 10 frames).
NARROWER_FROM, NARROWER_TO = 0.5, 0.25
NARROWER_RECOVERY = 0.2  # s from none of that rise back to all of it (~the rest of a reopening)
# The band held through a fixation is smoothed from the median of the last this many
# measures: a lid opening after a blink, still below its lashes, measures ~0 for a
# frame or two, and taken up at that hidden moment, a low-pass of it capped the turn
# for the whole next fixation (hdtf_RD_Radio2: 2.9 px held for 80 frames, lid skin
# 14 px measured before and after). Each frame is still capped by its own measure.
BAND_MEASURES = 5
# Smoothed eye points this many eye widths from the measured ones mean a jump (a cut,
# another speaker), not motion: One Euro lags ~0.04w at 1000 px/s.
JUMP = 0.25
# Eye widths the smoothed points may lag the measured ones at the eyes: a head turning
# fast drew them 0.1 eye widths behind (hdtf_RD_Radio2), which placed the edit beside
# the eye (its lower lashes drawn into the white). Still, they lag by MediaPipe's noise.
LAG_LIMIT = 0.04
_EYE_CORNERS = [33, 133, 362, 263]
# What a broken landmark process raises: it died (EOF, broken pipe) or hung (timeout).
LANDMARK_FAILURES = (EOFError, OSError, RuntimeError)
# Luma levels an iris must stand out by from the sclera beside it (rerender.iris_contrast):
# corrections fade out from twice this down to it. Our fixtures and Intel's head-pose
# GIFs upscaled 4x read 12-147; a walker far from a webcam, upscaled 4x, reads 2-4.
MIN_IRIS_CONTRAST = 6.0
# Before the first frame is shown, the speaker's gaze is read from the first CENSUS_SECONDS
# of the video, on every CENSUS_EVERY-th frame: a reader is then corrected from the first
# frame on (waiting for a second of evidence left a fifth of a short clip uncorrected),
# and a lens-looker never is. The landmark clock of the render itself then starts after
# the census's (VIDEO mode needs increasing times).
CENSUS_SECONDS = 1.0
CENSUS_EVERY = 3
CLOCK_AFTER_CENSUS_MS = 2000
# Every third frame is as sparse as landmarks go: a blink lasts 3-12 frames at 30 fps,
# so one between two measured frames still shows in at least one of them (and then
# its neighbours are left alone too). It needs frames announced at least three ahead
# (the render's LOOK_AHEAD): the frame after a measured one needs the next one's answer.
SPARSEST = 3
# Every third frame is the default: the landmark process then costs ~5 ms a frame instead
# of ~14 (bench/gaze.py), and blinks, saccades and cuts are still caught.
DEFAULT_INTERVAL = SPARSEST


class Unplaced(Exception):
    """A frame between measured ones too far apart to place its points between them
    (a cut, or a head moving faster than the landmark cadence follows), and no face
    found on it alone either (a blur)."""


@dataclass(frozen=True)
class GazeSettings:
    strength: float = DEFAULT_STRENGTH  # 0 (off) to 1
    notes_below_degrees: float | None = None  # where the notes sit, if the creator knows
    min_eye_px: float = MIN_EYE_PX
    # Landmarks on every Nth frame (1-3), those between interpolated. Fixed for the
    # render: a cadence that followed the machine's speed (a time budget, until
    # 2026-12) made the output depend on it, and on a busy machine it switched the
    # correction off mid-video.
    landmark_interval: int = DEFAULT_INTERVAL

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError("strength must be from 0 to 1")
        if self.landmark_interval not in range(1, SPARSEST + 1):
            raise ValueError(f"landmark_interval must be from 1 to {SPARSEST}")
        if self.notes_below_degrees is not None and not 0 <= self.notes_below_degrees <= 30:
            raise ValueError("notes_below_degrees must be from 0 to 30")


@dataclass
class _Announced:
    """A frame the render will hand over: its landmarks are in flight, known, or
    (between measured frames, with a landmark interval over 1) to be interpolated."""

    t: float
    width: int
    height: int
    measured: bool  # landmarks asked for; False: interpolate
    in_flight: bool = False
    faces: list[tuple[np.ndarray, np.ndarray | None]] | None = None
    cost_ms: float = 0.0  # converting the picture and waiting for the answer
    picked: bool = False
    face: FaceLandmarks | None = None  # the main speaker, once picked


@dataclass(frozen=True)
class _Mark:
    """Where the report's counts and per-frame lists stood at one moment: the report
    of the frames since is the difference."""

    frames_seen: int
    frames_corrected: int
    skipped: Counter[str]
    lengths: dict[str, int]  # of each per-frame list


# The per-frame lists a report is made of (see GazeCorrector.report).
_SERIES = ("shifts_px", "shifts_deg", "gaze_estimates", "eye_widths", "landmark_ms", "landmark_wait_ms", "render_ms")


@dataclass
class _Still:
    label: str
    score: float
    before: np.ndarray
    after: np.ndarray


class GazeCorrector:
    """A frame hook (`RenderOptions.frame_hook`) that makes the main speaker look into
    the lens. `landmarker` injects a landmark source (tests); otherwise MediaPipe starts
    on the first frame that needs it, in a child process when `child` is true."""

    def __init__(
        self,
        model: bytes | None,
        settings: GazeSettings = GazeSettings(),
        *,
        child: bool = False,
        landmarker: Landmarker | None = None,
        on_edit: Callable[[int, list[EyeEdit]], None] | None = None,
    ) -> None:
        self.model = model
        self.settings = settings
        self.child = child
        self._landmarker = landmarker
        self._own_landmarker = landmarker is None
        self._on_edit = on_edit
        self.control = GazeControl(settings.strength, notes_below=settings.notes_below_degrees or None)
        self.failure: str | None = None  # why landmarks stopped (a broken landmark process)
        self.frames_seen = 0
        self.frames_corrected = 0
        self.skipped: Counter[str] = Counter()
        self.shifts_px: list[float] = []  # per corrected frame: the iris move (mean of both eyes)
        self.shifts_deg: list[float] = []  # and the rotation it stands for
        self.gaze_estimates: list[float] = []  # the speaker's gaze against the lens, per frame (degrees)
        self.eye_widths: list[float] = []
        self.landmark_ms: list[float] = []  # per measured frame: picture and the child's CPU
        self.landmark_wait_ms: list[float] = []  # the render held up waiting for answers
        self.render_ms: list[float] = []
        self._points = OneEuro(2.0, 0.05)
        self._lids: dict[tuple[int, bool], LidTracker] = {}
        self._smooth: dict[tuple[int, str], OneEuro] = {}  # per eye: "up", "contrast"
        self._held: dict[tuple[int, str], np.ndarray] = {}  # (eye, "up" or "above") as taken at a hidden moment
        self._above_filter: dict[int, OneEuro] = {}  # per eye: the iris seen above its centre
        self._narrowing: dict[int, tuple[float, float]] = {}  # per eye: _open_as_usual's last (value, t)
        self._band_now: dict[int, float] = {}  # per eye: the lid skin's reach, last measured
        self._band_recent: dict[int, deque[float]] = {}  # and its last BAND_MEASURES measures
        self._band_filter: dict[int, OneEuro] = {}
        self._held_band: dict[int, float] = {}  # and smoothed, as taken at a hidden moment
        self._fade: tuple[float, float] | None = None  # the iris-contrast fade and its time
        self._last_center: np.ndarray | None = None
        self._announced: deque[_Announced] = deque()
        self._in_flight: deque[_Announced] = deque()  # in the order the child answers
        self._announcements = 0
        self._clock_ms = 0  # added to every frame's time given to the landmarker
        self._since_measured = SPARSEST  # announced frames since the last one measured (the first is)
        # the newest measured main face before the frame being handled: (t, face)
        self._measured: tuple[float, FaceLandmarks | None] | None = None
        self._stills: dict[str, _Still] = {}
        # the part the render is in and where its figures start; figures of parts done
        self._part: tuple[int, _Mark] | None = None
        self._part_reports: dict[int, dict[str, Any]] = {}
        # per corrected frame, for the evaluation: (frame index, degrees up, px up)
        self.applied: list[tuple[int, float, float]] = []
        self.last_edits: list[EyeEdit] = []
        self.last_points: np.ndarray | None = None
        self.last_reason: str | None = None
        self.last_raw_points: np.ndarray | None = None

    # --- the hook ----------------------------------------------------------------

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        index = self.frames_seen
        self.frames_seen += 1
        self.last_edits = []
        self.last_reason = None
        self.last_raw_points = None
        if self.settings.strength <= 0:
            return self._skip("strength_0", frame)
        if self.failure:
            return self._skip("landmarks_failed", frame)
        t = _frame_time(frame, index)
        face = None
        try:
            face = self._landmarks(frame, t)
        except Unplaced:
            # as after a cut: the next frame starts a new track from its own points
            self._restart()
            self.last_points = None
            return self._skip("moving", frame)
        except LANDMARK_FAILURES as exc:
            self._fail(exc)
        if self.failure:  # landmarks failed just now
            return self._skip("landmarks_failed", frame)
        if face is None:
            self._restart()
            self.last_points = None
            return self._skip("no_face", frame)
        self.last_raw_points = face.points
        raw = face.readings
        smooth = self._points(face.points, t)
        if _jumped(smooth, face.points, min(e.w for e in raw)):
            # a cut or another speaker: smoothing across it would place the edit
            # beside the eyes, so start over
            self._restart()
            smooth = self._points(face.points, t)
        smooth = self._within_reach(smooth, face.points, min(e.w for e in raw))
        self.last_points = smooth
        eyes = eye_frames(smooth)
        width = min(e.w for e in eyes)
        self.eye_widths.append(width)
        if width < self.settings.min_eye_px:
            self.control.restart()
            return self._skip("small_eyes", frame)
        yaw, pitch = head_angles(face.matrix)
        gaze = [e.gaze for e in raw]
        measure = Measure(
            t=t,
            vertical=float(np.mean([g[1] for g in gaze])),
            horizontal=float(np.mean([g[0] for g in gaze])),
            openness=face.openness or (raw[0].openness, raw[1].openness),
            yaw=yaw,
            pitch=pitch,
            lid_pitch=_lid_pitch(raw),
        )
        decision = self.control.update(measure)
        if decision.moved:
            self._fade = None
        if self.control.evidence >= EVIDENCE_SECONDS and decision.reason != "blink":
            self.gaze_estimates.append(self.control.pitch)
        if decision.reason is not None:
            return self._skip(decision.reason, frame)
        started = time.perf_counter()
        edited = self._edit(frame, eyes, decision.degrees, index, fresh=face.measured, hidden=decision.hidden)
        self.render_ms.append((time.perf_counter() - started) * 1e3)
        return edited

    def _within_reach(self, smooth: np.ndarray, measured: np.ndarray, eye_width: float) -> np.ndarray:
        """The smoothed points, moved towards the measured ones until the eye corners lag
        them by at most LAG_LIMIT eye widths on average (and the smoothing goes on from
        there). Moved, not blended: the smoothed shape stays, so the eye's size and tilt,
        which scale and turn the edit, do not take on the measured points' noise."""
        apart = (smooth[_EYE_CORNERS] - measured[_EYE_CORNERS]).mean(axis=0)
        lag = float(np.hypot(*apart)) / eye_width
        if lag <= LAG_LIMIT:
            return smooth
        smooth = smooth - apart * (1 - LAG_LIMIT / lag)
        self._points.value = smooth.copy()  # the filter goes on from the moved points
        return smooth

    def _restart(self) -> None:
        """Forget the smoothed points, lid fits and the person's gaze: a new track."""
        self._points.reset()
        self._lids.clear()
        self._smooth.clear()
        self._band_now.clear()
        self._band_recent.clear()
        self._band_filter.clear()
        self._above_filter.clear()
        self._narrowing.clear()
        self._fade = None
        self.control.restart()

    def _skip(self, reason: str, frame: av.VideoFrame | None = None) -> av.VideoFrame:
        self.control.left_alone()
        self.skipped[reason] += 1
        self.last_reason = reason
        return frame  # type: ignore[return-value]

    # --- landmarks ---------------------------------------------------------------

    def _start_landmarker(self) -> bool:
        if self._landmarker is not None:
            return True
        if self.model is None:
            self._stop("no face model")
            return False
        try:
            self._landmarker = ChildLandmarker(self.model) if self.child else VideoLandmarker(self.model)
        except LANDMARK_FAILURES as exc:
            self._fail(exc)
            return False
        return True

    def prime(self, frames: Iterable[av.VideoFrame]) -> None:
        """Read the speaker's gaze from the video's first second (every CENSUS_EVERY-th
        frame, blinks and turned heads left out) before any frame goes through the hook:
        `frames` are the upright frames from the first one to be shown on, and only as
        many are read as the census needs. Called by the render and by with_look_ahead."""
        if self.settings.strength <= 0 or self.failure or self.frames_seen or not self._start_landmarker():
            return
        assert self._landmarker is not None
        readings = []
        start = None
        for i, frame in enumerate(frames):
            t = _frame_time(frame, i)
            start = t if start is None else start
            if t - start >= CENSUS_SECONDS:
                break
            if i % CENSUS_EVERY:
                continue
            rgb, _ = landmark_picture(frame)
            try:
                faces = self._landmarker.detect(rgb, round((t - start) * 1000))
            except LANDMARK_FAILURES as exc:
                self._fail(exc)
                return
            face = self._pick(faces, frame.width, frame.height)
            if face is not None and min(e.w for e in face.readings) >= self.settings.min_eye_px:
                yaw, pitch = head_angles(face.matrix)
                if max(abs(yaw), abs(pitch)) < POSE_LIMIT:
                    readings.append(face.readings)
        self._clock_ms = CLOCK_AFTER_CENSUS_MS
        self._last_center = None
        if not readings:
            return
        openness = np.array([np.mean([e.openness for e in r]) for r in readings])
        pitches = [_lid_pitch(r) for r, o in zip(readings, openness) if o >= BLINK_CLOSED * np.median(openness)]
        self.control.prime(float(np.median(pitches)), CENSUS_EVERY * len(pitches) / 30)

    def look_ahead(self, frame: av.VideoFrame) -> None:
        """The render names a frame it will hand over a few frames from now (in order),
        so its landmarks can start now."""
        if self.settings.strength <= 0 or self.failure:
            return
        t = _frame_time(frame, self._announcements)
        self._announcements += 1
        measured = self._since_measured + 1 >= self.settings.landmark_interval
        self._since_measured = 0 if measured else self._since_measured + 1
        entry = _Announced(t, frame.width, frame.height, measured)
        self._announced.append(entry)
        if not measured or not self._start_landmarker():
            return
        try:
            self._measure(entry, frame)
        except LANDMARK_FAILURES as exc:
            self._fail(exc)

    def _measure(self, entry: _Announced, frame: av.VideoFrame) -> None:
        assert self._landmarker is not None
        started = time.perf_counter()
        rgb, _ = landmark_picture(frame)
        submit = getattr(self._landmarker, "submit", None)
        if submit is None:  # an in-process landmarker answers at once
            entry.faces = self._landmarker.detect(rgb, round(entry.t * 1000) + self._clock_ms)
            entry.cost_ms = (time.perf_counter() - started) * 1e3
            return
        entry.cost_ms = (time.perf_counter() - started) * 1e3
        while len(self._in_flight) >= PICTURE_SLOTS:
            self._collect_next()
        submit(rgb, round(entry.t * 1000) + self._clock_ms)
        entry.in_flight = True
        self._in_flight.append(entry)

    def _collect_next(self) -> None:
        """Read the landmark process's oldest outstanding answer into its entry."""
        entry = self._in_flight.popleft()
        started = time.perf_counter()
        entry.faces = self._landmarker.collect()  # type: ignore[union-attr]
        self.landmark_wait_ms.append((time.perf_counter() - started) * 1e3)
        entry.in_flight = False
        entry.cost_ms += self._landmarker.last_cpu_ms  # type: ignore[union-attr]

    def _fail(self, exc: BaseException) -> None:
        """Landmarks broke (the child died or hung): stop correcting, keep rendering."""
        log.exception("eye contact: face landmarks failed")
        self._stop(f"face landmarks failed: {exc or type(exc).__name__}")

    def _face_of(self, entry: _Announced) -> FaceLandmarks | None:
        """A measured frame's main face, once its answer is in (picked once, in order)."""
        while entry.in_flight:
            self._collect_next()
        if not entry.picked:
            entry.face = self._pick(entry.faces or [], entry.width, entry.height)
            entry.picked = True
        return entry.face

    def _resolve(self, entry: _Announced) -> FaceLandmarks | None:
        face = self._face_of(entry)
        if entry.faces is not None:  # None: the landmarker could not start
            self.landmark_ms.append(entry.cost_ms)
        self._measured = (entry.t, face)
        return face

    def _landmarks(self, frame: av.VideoFrame, t: float) -> FaceLandmarks | None:
        # announced frames the render dropped (a faster source than the output rate)
        while self._announced and self._announced[0].t < t - 1e-6:
            dropped = self._announced.popleft()
            if dropped.measured:
                self._resolve(dropped)
        if not self._announced:  # nobody announced it (called without look-ahead)
            self.look_ahead(frame)
        if self._announced and abs(self._announced[0].t - t) <= 1e-6:
            entry = self._announced.popleft()
            face = self._resolve(entry) if entry.measured else self._between(frame, t)
        else:  # shown though not announced: the frames after it are in flight
            face = self._between(frame, t)
        return face

    def _between(self, frame: av.VideoFrame, t: float) -> FaceLandmarks | None:
        """A frame between measured ones (the next one was announced before this frame
        arrived): its points interpolated between theirs, the lids judged by the more
        closed of the two; None when either has no face. Where they are too far apart to
        place its points between them, they are measured on this frame alone; after the
        video's last measured frame, this frame is tracked as measured ones are."""
        if self._measured is None or self._measured[1] is None:
            return None
        t0, face0 = self._measured
        following = next((e for e in self._announced if e.measured), None)
        if following is None:  # nothing to interpolate towards: measured as announced ones are
            entry = _Announced(t, frame.width, frame.height, measured=True)  # its time is the newest yet
            self._measure(entry, frame)
            return self._resolve(entry)
        face1 = self._face_of(following)
        if face1 is None:
            return None
        eyes0, eyes1 = face0.readings, face1.readings
        if _jumped(face0.points, face1.points, min(e.w for e in eyes1), 2 * JUMP):
            # a head turning faster than the cadence follows (hdtf_RD_Radio2: 0.6-0.9 eye
            # widths in 0.1 s), or a cut, which side of it this frame is on unknown
            return self._measured_alone(frame)
        a = (t - t0) / max(following.t - t0, 1e-6)
        points = (1 - a) * face0.points + a * face1.points
        openness = (min(eyes0[0].openness, eyes1[0].openness), min(eyes0[1].openness, eyes1[1].openness))
        return FaceLandmarks(points, face0.matrix if a < 0.5 else face1.matrix, openness, measured=False)

    def _measured_alone(self, frame: av.VideoFrame) -> FaceLandmarks:
        """The main face measured on this frame on its own, outside the tracking (whose
        times only rise, and the next measured frame's is in already); raises Unplaced
        when no face is found there (a blur, or a cut's grey). The speaker chosen stays
        the one the measured frames chose. Its cost is counted as _measure counts it,
        and from a landmark process the render's wait for it as waited."""
        assert self._landmarker is not None
        while self._in_flight:  # answers come in order: the tracked frames' first
            self._collect_next()
        started = time.perf_counter()
        rgb, _ = landmark_picture(frame)
        picture_ms = (time.perf_counter() - started) * 1e3
        faces = self._landmarker.still(rgb)
        wall_ms = (time.perf_counter() - started) * 1e3
        child_ms = getattr(self._landmarker, "last_cpu_ms", None)
        if child_ms is None:
            self.landmark_ms.append(wall_ms)
        else:
            self.landmark_ms.append(picture_ms + child_ms)
            self.landmark_wait_ms.append(wall_ms - picture_ms)
        center = self._last_center
        face = self._pick(faces, frame.width, frame.height)
        self._last_center = center
        if face is None:
            raise Unplaced
        return face

    def _pick(self, faces: list[tuple[np.ndarray, np.ndarray | None]], width: int, height: int
              ) -> FaceLandmarks | None:  # fmt: skip
        """The main speaker (faces.main_face); once chosen, the same person stays
        chosen while a face of comparable size is where they were."""
        if not faces:
            self._last_center = None
            return None
        scale = np.array([width, height], np.float64)
        candidates = [Face(points * scale) for points, _ in faces]
        chosen = None
        if self._last_center is not None:
            largest = max(f.width for f in candidates)
            distance = {id(f): float(np.hypot(*(np.array(f.center) - self._last_center))) for f in candidates}
            near = [f for f in candidates if f.width > 0.7 * largest and distance[id(f)] < 0.5 * f.width]
            if near:
                chosen = min(near, key=lambda f: distance[id(f)])
        if chosen is None:
            chosen = main_face(candidates, width, height)
        assert chosen is not None
        self._last_center = np.array(chosen.center)
        index = next(i for i, f in enumerate(candidates) if f is chosen)
        return FaceLandmarks(chosen.points, faces[index][1])

    def _stop(self, why: str) -> None:
        """Correction ends for the rest of the render (landmarks cannot be had)."""
        self.failure = why
        self._announced.clear()
        self._in_flight.clear()
        log.warning("eye contact: stopped at frame %d: %s", self.frames_seen - 1, why)
        self.close()

    # --- the edit ----------------------------------------------------------------

    def _edit(self, frame: av.VideoFrame, eyes: tuple[EyeFrame, EyeFrame], degrees: float,
              index: int, fresh: bool, hidden: bool) -> av.VideoFrame:  # fmt: skip
        """Re-render both eyes. `fresh`: the landmarks were measured on this frame;
        between measured frames (a landmark interval over 1) the lid fits and the
        iris contrast hold from the last measured one, as the points are interpolated:
        both are smoothed over several frames anyway, and there they cost nothing.
        `hidden`: a change of the move's direction and scale would not be seen now.
        `degrees` turns each eye up about its centre: its iris moves by the eyeball's
        radius times the sine (geometry.eyeball_radius)."""
        up = -math.sin(math.radians(degrees))
        y, u, v = plane_views(frame)
        luma = y  # fits read the input before any edit
        edits, room = [], []
        for i, eye in enumerate(eyes):
            upper = self._fitted(luma, eye, i, True, fresh)
            lower = self._fitted(luma, eye, i, False, fresh)
            lower = np.maximum(lower, upper)  # lids never cross
            opening = np.concatenate([eye.to_image(eye.xs, upper), eye.to_image(eye.xs[::-1], lower[::-1])])
            radius = self._steady_up(i, eye, hidden)  # the eyeball's, along uy
            move = up * radius
            # the upper lid rises with the iris and uncovers more of it, as in a real
            # look up: the gap from lid to iris centre grows by what gaze_pitch_degrees
            # reads as `degrees`, so the edited eye reads as turned by that much (less
            # on a narrow eye, where it is kept to the iris seen above the centre)
            uncover = degrees / DEGREES_PER_GAP * float(np.hypot(*radius)) / eyeball_radius(1.0)
            above = _iris_above(eye, upper)
            usual = self._steady_above(i, above, hidden)
            uncover = min(uncover, UNCOVER_PER_ABOVE * usual * self._open_as_usual(i, above, usual))
            lift = float(np.hypot(*move)) + uncover
            held, band = self._steady_band(i, luma, eye, upper, fresh, hidden)
            edits.append(EyeEdit(opening=opening, iris=eye.iris, r=eye.r, ux=eye.ux, shift=move,
                                 upper_count=len(eye.xs), lift=lift, band=band))  # fmt: skip
            room.append(min(1.0, held / BAND_PER_LIFT / max(lift, 1e-6)))
        # where the lid cannot rise as far (a rim or brow close above it), the eye turns
        # less: an iris moved up under a lid that stays reads as looking further down.
        # Sized by the band as held through the fixation; a frame whose band measures
        # less only raises its lid less (rerender keeps the rise within the band)
        if min(room) < 1.0:
            degrees *= min(room)
            edits = [replace(e, shift=e.shift * min(room), lift=e.lift * min(room)) for e in edits]
            if degrees < MIN_DEGREES:
                return self._skip("no_room_above", frame)
        fade = self._steady_fade(luma, edits, fresh)
        if fade < 1.0:
            if degrees * fade < MIN_DEGREES:
                return self._skip("iris_not_distinct", frame)
            edits = [replace(e, shift=e.shift * fade, lift=e.lift * fade) for e in edits]
            degrees *= fade
        box = Box.around(np.concatenate([e.opening for e in edits]), 0.35 * max(e.w for e in eyes),
                         frame.width, frame.height)  # fmt: skip
        before = crop_planes(y, u, v, box)
        frame.make_writable()
        y, u, v = plane_views(frame)
        changed = sum(edit_eye(y, u, v, edit) for edit in edits)
        self.last_edits = edits
        if self._on_edit is not None:
            self._on_edit(index, edits)
        if not changed:
            return self._skip("no_change", frame)
        self.frames_corrected += 1
        moved = float(np.mean([np.hypot(*e.shift) for e in edits]))
        self.shifts_deg.append(degrees)
        self.shifts_px.append(moved)
        self.applied.append((index, degrees, moved))
        self._offer_still(index, degrees, before, crop_planes(y, u, v, box))
        return frame

    def _steady_up(self, i: int, eye: EyeFrame, hidden: bool) -> np.ndarray:
        """The eyeball's radius along uy (px): this sizes and aims the move. It is
        smoothed over ~0.3 s, since the landmark filter lets size and angle noise through
        when the head moves fast (±1 %, a 0.02 px wobble of the iris), and taken up only
        at hidden moments, as the control holds the angle: a face's size and roll change
        by a few per cent between saccades or blinks, a few hundredths of a pixel."""
        return self._steady(i, "up", eyeball_radius(eye.r) * eye.uy, hidden)

    def _steady_above(self, i: int, above: float, hidden: bool) -> float:
        """How much iris shows above its centre (px, 0 when the lid is at or below it),
        from this frame's `above` (_iris_above), averaged over the last few seconds (it says how narrow
        the eye is, which changes slowly; not restarted after a blink, as a reopening lid
        reads low for a few frames) and taken up at hidden moments, as the move's size
        is: it caps the lid's rise, and through the band's room, the turn."""
        flt = self._above_filter.setdefault(i, OneEuro(0.1, 0.0))
        smoothed = flt(np.asarray(above), self.control.last_t or 0.0)
        if hidden or (i, "above") not in self._held:
            self._held[i, "above"] = smoothed
        return max(0.0, float(self._held[i, "above"]))

    def _open_as_usual(self, i: int, above: float, usual: float) -> float:
        """1 while eye i shows at least NARROWER_FROM of its usual iris above the centre
        on this frame, 0 below NARROWER_TO of it: falls at once as a lid comes down,
        rises back over NARROWER_RECOVERY seconds, so a height that wobbles near the
        threshold never flickers the lid."""
        share = above / usual if usual > 0 else 0.0
        target = min(max((share - NARROWER_TO) / (NARROWER_FROM - NARROWER_TO), 0.0), 1.0)
        t = self.control.last_t or 0.0
        last = self._narrowing.get(i)
        if last is not None and target > last[0]:
            target = min(target, last[0] + max(t - last[1], 0.0) / NARROWER_RECOVERY)
        self._narrowing[i] = (target, t)
        return target

    def _steady(self, i: int, key: str, value: np.ndarray | float, hidden: bool) -> np.ndarray:
        smoothed = self._smoothed(i, key, value)
        if hidden or (i, key) not in self._held:
            self._held[i, key] = smoothed
        return self._held[i, key]

    def _steady_band(self, i: int, luma: np.ndarray, eye: EyeFrame, upper: np.ndarray, fresh: bool,
                     hidden: bool) -> tuple[float, float]:  # fmt: skip
        """The lid skin above eye i's margin (lids.skin_band): smoothed and held like
        the move's size, and for this frame never more than a pixel over its measure
        (which wobbles by about that), so a rim that comes nearer is never touched (the
        band stops lids.BAND_CLEARANCE short of it). Between measured frames the last
        measure holds; the held value follows the median of the last BAND_MEASURES
        measures. Returns (held, this frame's)."""
        recent = self._band_recent.setdefault(i, deque(maxlen=BAND_MEASURES))
        if fresh or i not in self._band_now:
            self._band_now[i] = skin_band(luma, eye, upper)
            recent.append(self._band_now[i])
        now = self._band_now[i]
        # not restarted after a blink, as _smoothed is: the first frames after one
        # measure the lid still rising
        flt = self._band_filter.setdefault(i, OneEuro(0.5, 0.0))
        smooth = float(flt(np.asarray(np.median(recent)), self.control.last_t or 0.0))
        if hidden or i not in self._held_band:
            self._held_band[i] = smooth
        return self._held_band[i], min(self._held_band[i], now + BAND_WOBBLE)

    def _smoothed(self, i: int, key: str, value: np.ndarray | float) -> np.ndarray:
        """`value` for eye `i` through a 0.5 Hz low-pass, restarted after a gap."""
        flt = self._smooth.setdefault((i, key), OneEuro(0.5, 0.0))
        t = self.control.last_t or 0.0
        if flt.t is not None and t - flt.t > STALE_AFTER:  # a gap: start afresh
            flt.reset()
        return flt(np.asarray(value, np.float64), t)

    def _steady_fade(self, luma: np.ndarray, edits: list[EyeEdit], fresh: bool) -> float:
        """How much of the correction the irises' contrast allows (0-1): an iris that
        hardly stands out from the rest of the opening (a blurred or shadowed eye) cannot
        be seen to move and its lids cannot be fitted, so the correction fades out from
        2 * MIN_IRIS_CONTRAST down to it. Taken up where the eye itself moves (a blink,
        a saccade, a new track); within a fixation it never falls and rises no faster
        than a correction starting without a blink (RAMP_SECONDS). The measure swings by
        a third from one measured frame to the next (lashes, an eye narrowing before a
        blink), and following it bobbed the iris by up to 1.5 px within a fixation or
        dropped the correction for a frame or two; an eye reopening after a blink
        measures little contrast for its first frames, and the fade rises from there.
        After frames left alone for another reason (a turned head) it is taken up as
        it stands: the control's gates bring those back in. Returned through a
        smoothstep, as the control's gates are, so a rise from none to all starts and
        ends without a jolt (it also makes the fade steeper between 6 and 12 levels)."""
        contrast = min(self._contrast(i, luma, e, fresh) for i, e in enumerate(edits))
        wanted = float(np.clip((contrast - MIN_IRIS_CONTRAST) / MIN_IRIS_CONTRAST, 0.0, 1.0))
        t = self.control.last_t or 0.0
        if self._fade is None:
            fade = wanted
        else:
            fade, since = self._fade
            fade = float(np.clip(wanted, fade, fade + (t - since) / RAMP_SECONDS))
        self._fade = (fade, t)
        return fade * fade * (3 - 2 * fade)

    def _contrast(self, i: int, luma: np.ndarray, edit: EyeEdit, fresh: bool) -> float:
        held = self._smooth.get((i, "contrast"))
        if not fresh and held is not None and held.t is not None and \
                (self.control.last_t or 0.0) - held.t <= STALE_AFTER:  # fmt: skip
            return float(held.value)  # type: ignore[arg-type]
        return float(self._smoothed(i, "contrast", iris_contrast(luma, edit)))

    def _fitted(self, luma: np.ndarray, eye: EyeFrame, i: int, upper: bool, fresh: bool) -> np.ndarray:
        tracker = self._lids.setdefault((i, upper), LidTracker())
        t = self.control.last_t or 0.0
        fit = tracker.last if not fresh and tracker.holds(t) else None
        if fit is None:
            fit = tracker.update(lid_scores_crop(luma, eye, upper), t, eye.w)
        curve = eye.upper if upper else eye.lower
        return apply_fit(curve, fit, corner_taper(eye.xs, eye.w))

    # --- stills and report -------------------------------------------------------

    def _offer_still(self, index: int, amount: float, before: tuple[np.ndarray, ...],
                     after: tuple[np.ndarray, ...]) -> None:  # fmt: skip
        def keep(label: str, score: float) -> None:
            self._stills[label] = _Still(label, score, planes_to_rgb(*before), planes_to_rgb(*after))

        if "first" not in self._stills and self.frames_corrected >= 15:
            keep("first", amount)
        current = self._stills.get("strongest")
        if current is None or amount > current.score:
            keep("strongest", amount)
        if self.frames_corrected % 300 == 150:
            keep("later", amount)

    def save_stills(self, folder: Path, zoom: int = 2) -> list[dict[str, str]]:
        """Write the kept before/after eye crops as PNGs; returns
        [{"label", "before", "after"}] with file names relative to `folder`."""
        saved = []
        for label in ("first", "strongest", "later"):
            still = self._stills.get(label)
            if still is None:
                continue
            before = write_png(folder / f"gaze-{label}-before.png", still.before, zoom)
            after = write_png(folder / f"gaze-{label}-after.png", still.after, zoom)
            saved.append({"label": label, "before": before.name, "after": after.name})
        return saved

    def report(self, since: _Mark | None = None) -> dict[str, Any]:
        """What was done to the frames so far, or to those since `since` (a `_mark()`)."""

        def series(name: str) -> list[float]:
            values: list[float] = getattr(self, name)
            return values[since.lengths[name]:] if since is not None else values

        def stat(values: list[float], q: float) -> float | None:
            return round(float(np.percentile(values, q)), 2) if values else None

        shifts_px, shifts_deg = series("shifts_px"), series("shifts_deg")
        skipped = self.skipped - since.skipped if since is not None else self.skipped
        landmark_ms, landmark_wait_ms = series("landmark_ms"), series("landmark_wait_ms")
        render_ms = series("render_ms")
        report = {
            "frames_seen": self.frames_seen - (since.frames_seen if since else 0),
            "frames_corrected": self.frames_corrected - (since.frames_corrected if since else 0),
            "mean_correction_px": round(float(np.mean(shifts_px)), 2) if shifts_px else 0.0,
            "mean_correction_degrees": round(float(np.mean(shifts_deg)), 2) if shifts_deg else 0.0,
            "max_correction_degrees": round(max(shifts_deg, default=0.0), 2),
            "skipped": dict(sorted(skipped.items())),
            "landmark_interval": self.settings.landmark_interval,
            "failure": self.failure,
            "strength": self.settings.strength,
            "notes_below_degrees": self.settings.notes_below_degrees,
            # the speaker's gaze against the lens (0 into it, negative below), median
            # over the frames where it was estimated
            "gaze_degrees": stat(series("gaze_estimates"), 50),
            "eye_width_px": stat(series("eye_widths"), 50),
            "landmark_ms": {"p50": stat(landmark_ms, 50), "p95": stat(landmark_ms, 95)},
            "landmark_wait_ms": {"p50": stat(landmark_wait_ms, 50), "p95": stat(landmark_wait_ms, 95)},
            "rerender_ms": {"p50": stat(render_ms, 50), "p95": stat(render_ms, 95)},
        }
        report["summary"] = describe_report(report)
        return report

    def _mark(self) -> _Mark:
        return _Mark(self.frames_seen, self.frames_corrected, Counter(self.skipped),
                     {name: len(getattr(self, name)) for name in _SERIES})  # fmt: skip

    # --- per part: the render says where each part starts --------------------------

    def begin_part(self, index: int) -> None:
        """The frames from the next one on are part `index`'s (the render's hook
        protocol): the part before it is complete."""
        self._close_part()
        self._part = (index, self._mark())

    def part_report(self, index: int) -> dict[str, Any] | None:
        """The report of part `index`'s frames alone, once its frames are all through
        (the render's on_part); None when the render never said where it started. It
        counts each of the part's frames once whichever parts were rendered with it, so
        the report of a video is the combination of its parts' (`combine_reports`)."""
        if self._part is not None and self._part[0] == index:
            self._close_part()
        return self._part_reports.pop(index, None)

    def _close_part(self) -> None:
        if self._part is not None:
            index, start = self._part
            self._part_reports[index] = self.report(since=start)
            self._part = None

    def open_eyes(self, pictures: list[np.ndarray]) -> list[bool] | None:
        """faces.open_eyes in the landmark process, when one is running (for the
        render's thumbnails); None otherwise, or when it fails."""
        check = getattr(self._landmarker, "open_eyes", None)
        if check is None or self.failure:
            return None
        try:
            while self._in_flight:  # answers for frames never shown
                self._collect_next()
            return check(pictures)
        except LANDMARK_FAILURES:
            log.exception("eye contact: the landmark process could not check thumbnails")
            return None

    def close(self) -> None:
        if self._landmarker is not None and self._own_landmarker:
            self._landmarker.close()
        self._landmarker = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _frame_time(frame: av.VideoFrame, index: int) -> float:
    return float(frame.time) if frame.time is not None else index / 30.0


def with_look_ahead(frames: Iterable[av.VideoFrame], corrector: GazeCorrector,
                    ahead: int = SPARSEST) -> Iterator[av.VideoFrame]:  # fmt: skip
    """The frames, each announced to the corrector `ahead` frames before it goes
    through it, as the render does (for callers that run the hook themselves)."""
    frames = iter(frames)
    first = list(itertools.islice(frames, round(CENSUS_SECONDS * 60)))  # enough at up to 60 fps
    corrector.prime(iter(first))
    waiting: deque[av.VideoFrame] = deque()
    for frame in itertools.chain(first, frames):
        corrector.look_ahead(frame)
        waiting.append(frame)
        if len(waiting) > ahead:
            yield waiting.popleft()
    yield from waiting


# Why frames were left alone, in a creator's words (report "skipped" keys).
_LEFT_ALONE = {
    "blink": "blink",
    "look_away": "looking away",
    "head_pose": "with the head turned",
    "measuring": "while the gaze was being measured",
    "fading_in": "while turning back",
    "iris_not_distinct": "with the iris too dark or blurred to move",
    "no_face": "with no face in view",
    "moving": "with the head moving too fast to follow",
    "small_eyes": "with the eyes too small",
    "no_room_above": "with glasses or brows too close above the eyes",
}
# What a render with no corrected frame at all says, by its commonest reason.
_NOTHING_DONE = {
    "strength_0": "Eye contact was off.",
    "landmarks_failed": "Eye contact stopped: the face could not be tracked.",
    "no_face": "No face was found.",
    "moving": "The head moved too fast to follow.",
    "small_eyes": "No face large enough: the eyes must be at least 28 pixels wide.",
    "looking_at_lens": "Already looking into the lens: nothing to correct.",
    "iris_not_distinct": "The eyes are too dark or blurred to tell the iris from the white.",
    "head_pose": "The head is turned too far from the camera.",
    "look_away": "Looking away from the camera.",
    "blink": "The eyes are closed.",
    "measuring": "The video is too short to measure the gaze.",
    "no_room_above": "Glasses or brows sit too close above the eyes to raise them.",
}


def describe_report(report: dict[str, Any]) -> str:
    """What eye contact did, in a sentence a creator reads on the job page, e.g. "Eyes
    raised by about 8° on 412 of 450 frames; left alone during 38 blink frames"."""
    corrected, seen = report.get("frames_corrected", 0), report.get("frames_seen", 0)
    skipped = {k: v for k, v in report.get("skipped", {}).items() if v}
    if report.get("failure") and not corrected:
        return _NOTHING_DONE["landmarks_failed"]
    if not corrected:
        reason = max(skipped, key=skipped.__getitem__, default="no_face")
        return _NOTHING_DONE.get(reason, "Nothing to correct.")
    text = f"Eyes raised by about {report.get('mean_correction_degrees', 0):.0f}° on {corrected} of {seen} frames"
    alone = [f"{n} {'blink frame' if k == 'blink' else 'frame'}{'' if n == 1 else 's'}"
             + ("" if k == "blink" else " " + _LEFT_ALONE[k])
             for k, n in sorted(skipped.items(), key=lambda kv: -kv[1]) if k in _LEFT_ALONE]  # fmt: skip
    if alone:
        text += "; left alone during " + ", ".join(alone)
    if report.get("failure"):
        text += "; then stopped: the face could not be tracked"
    return text + "."


def combine_reports(*reports: dict[str, Any]) -> dict[str, Any]:
    """One report for frames reported apart: a video's parts (each part's own report,
    `part_report`), or a render resumed after a restart. Counts add up, means are
    weighted by corrected frames; medians and percentiles (gaze, eye width, timings)
    are the median of the reports' own, each weighing as many frames as it saw (the
    frames themselves are not kept); settings are the last report's."""
    combined = dict(reports[-1])
    for key in ("frames_seen", "frames_corrected"):
        combined[key] = sum(r.get(key, 0) for r in reports)
    corrected = combined["frames_corrected"]
    for key in ("mean_correction_px", "mean_correction_degrees"):
        total = sum(r.get(key, 0) * r.get("frames_corrected", 0) for r in reports)
        combined[key] = round(total / corrected, 4) if corrected else 0.0
    combined["max_correction_degrees"] = max(r.get("max_correction_degrees", 0) for r in reports)
    combined["skipped"] = dict(sorted(sum((Counter(r.get("skipped", {})) for r in reports), Counter()).items()))
    combined["failure"] = next((r["failure"] for r in reports if r.get("failure")), None)
    weights = [r.get("frames_seen", 0) for r in reports]
    for key in ("gaze_degrees", "eye_width_px"):
        combined[key] = _weighted_median([r.get(key) for r in reports], weights)
    for key in ("landmark_ms", "landmark_wait_ms", "rerender_ms"):
        if any(key in r for r in reports):
            combined[key] = {q: _weighted_median([(r.get(key) or {}).get(q) for r in reports], weights)
                             for q in ("p50", "p95")}  # fmt: skip
    combined["summary"] = describe_report(combined)
    return combined


def _weighted_median(values: list[float | None], weights: list[int]) -> float | None:
    known = sorted((v, w) for v, w in zip(values, weights) if v is not None and w > 0)
    if not known:
        return next((v for v in values if v is not None), None)
    half, total = sum(w for _, w in known) / 2, 0
    for value, weight in known:
        total += weight
        if total >= half:
            return value
    return known[-1][0]


def _lid_pitch(readings: Iterable[EyeReading]) -> float:
    """The gaze both eyes' lids read (degrees against the lens, their mean)."""
    return gaze_pitch_degrees(float(np.mean([e.upper_gap for e in readings])))


def _iris_above(eye: EyeFrame, upper: np.ndarray) -> float:
    """How much iris shows above its centre on this frame: how far below the upper lid
    `upper` the centre sits (px along the eye's uy; negative when the lid is lower)."""
    x, y = eye.iris_local
    return float(y - np.interp(x, eye.xs, upper))


def _jumped(a: np.ndarray, b: np.ndarray, eye_width: float, limit: float = JUMP) -> bool:
    """Whether two sets of face points are further apart at the eyes than `limit` eye
    widths."""
    eyes = [33, 133, 362, 263, 468, 473]
    return float(np.max(np.hypot(*(a[eyes] - b[eyes]).T))) > limit * eye_width


def lid_scores_crop(luma: np.ndarray, eye: EyeFrame, upper: bool) -> LidScores | None:
    """lid_scores on a float copy of just the eye's neighbourhood of the luma plane."""
    pad = 0.25 * eye.w + 4
    points = np.concatenate([eye.to_image(eye.xs, eye.upper), eye.to_image(eye.xs, eye.lower)])
    x0 = max(0, int(points[:, 0].min() - pad))
    y0 = max(0, int(points[:, 1].min() - pad))
    x1 = min(luma.shape[1], int(points[:, 0].max() + pad) + 1)
    y1 = min(luma.shape[0], int(points[:, 1].max() + pad) + 1)
    crop = luma[y0:y1, x0:x1].astype(np.float32)
    offset = np.array([x0, y0], np.float64)
    local = EyeFrame(
        origin=eye.origin - offset, ux=eye.ux, uy=eye.uy, w=eye.w, iris=eye.iris - offset,
        r=eye.r, upper=eye.upper, lower=eye.lower, xs=eye.xs, openness=eye.openness,
    )  # fmt: skip
    return lid_scores(crop, local, upper)
