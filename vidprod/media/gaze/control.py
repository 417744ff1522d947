"""Temporal control: how far each frame's eyes are turned up, in degrees, smoothed and gated.

- Landmark coordinates are smoothed with a One Euro filter (steady when still, quick
  when the head moves).
- A person's gaze below the lens is estimated in degrees from where the lids sit on the
  iris (gaze_pitch_degrees), read before the first frame from the video's first second
  (GazeControl.prime) and then averaged over seconds of open-eye, facing frames. Whether
  they are corrected at all is decided per person, with hysteresis: a lens-looker is
  never corrected in bursts, and a reader is
  corrected by the angle measured (or by the creator's notes position when given),
  capped at MAX_DEGREES and faded out for looks further down.
- Gates switch the correction off for blinks, look-aways (a sudden change against the
  usual gaze, or looking sideways) and turned or tilted heads.
- Blinks and look-aways switch it at once, with hysteresis, in the very frame the lid
  closes or the eye jumps: the eye is moving anyway then and hides the change, whereas
  a ramp after it slid the still iris by ~1.5 px over a few frames. Head pose and the
  far-below limit change slowly and fade smoothly.
- The size of the correction holds still while the eye fixates. It takes up what the
  estimate asks for only at a hidden moment (a saccade, a blink, or while nothing is
  shown), so the correction starts, changes and stops only where the eye's own motion
  hides it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

UPPER_GAP_AT_LENS = 0.80  # iris radii from the iris centre up to the upper lid
DEGREES_PER_GAP = 20.0
# Estimated gaze (degrees, negative below the lens) under which a person counts as
# reading below it, and over which they count as looking into it again: hysteresis, so
# that a lens-looker whose estimate wanders never gets a correction in bursts.
ENGAGE_BELOW = -2.0
RELEASE_ABOVE = -1.0
# Without a census (GazeControl.prime), seconds of open-eye, facing frames before a
# person is judged at all (the first half second is left as filmed). The correction
# then starts at the next blink or saccade, or, if none comes within START_WAIT, turns
# the eyes up over RAMP_SECONDS: a slow, smooth eye movement rather than a jump.
START_WAIT = 0.5
RAMP_SECONDS = 0.6
EVIDENCE_SECONDS = 0.5
# The speaker's gaze estimate averages this long (s): per frame it is noisy (±4°), and
# a lens-looker's average must stay clear of ENGAGE_BELOW.
ESTIMATE_TAU = 4.0
# The largest rotation given; looks further down fade out over FAR_FADE degrees more
# (a real look down at something, not reading notes near the lens).
MAX_DEGREES = 15.0
FAR_FADE = 10.0
# The correction taken up at each hidden moment follows the estimate through a further
# smoothing (s), so it does not carry one frame's landmark noise.
WANTED_TAU = 0.5
MIN_DEGREES = 0.25  # below this a frame is left bit-identical (and above, less this)


class OneEuro:
    """One Euro filter (Casiez et al.) over a numpy array of any shape."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None
        self.t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.value is None or self.t is None or self.value.shape != x.shape:
            self.value, self.speed, self.t = x.copy(), np.zeros_like(x), t
            return self.value.copy()
        if t <= self.t:
            return self.value.copy()
        dt = t - self.t
        speed = (x - self.value) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.speed = self.speed + a_d * (speed - self.speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
        a = self._alpha(cutoff, dt)
        self.value = self.value + a * (x - self.value)
        self.t = t
        return self.value.copy()

    def reset(self) -> None:
        self.value = self.speed = None
        self.t = None


def _ramp_down(value: float, start: float, width: float) -> float:
    """1 up to `start`, 0 from start + width, linear between."""
    return float(min(1.0, max(0.0, 1.0 - (value - start) / width)))


@dataclass
class Measure:
    """One frame's raw measurements of the main face."""

    t: float
    vertical: float  # mean of both eyes, eye widths, up negative
    horizontal: float
    openness: tuple[float, float]  # per eye, lid gap / width
    yaw: float
    pitch: float
    # the gaze against the lens that the lids read (gaze_pitch_degrees, both eyes' mean)
    lid_pitch: float = 0.0


@dataclass
class Decision:
    degrees: float  # how far the eyes are turned up; 0 for no edit
    gate: float
    reason: str | None  # why the frame is not corrected (None when it is)
    # the eye's own motion (a saccade, a blink) or an uncorrected frame before this one
    # hides a change of the correction now: what it holds steady may be taken up afresh
    hidden: bool = True
    # the eye's own motion now (a blink, a saccade, a track's first frame): what is held
    # through a fixation regardless of what is on screen may be taken up afresh
    moved: bool = True


# Blink: openness against its reference; the gate closes below CLOSED, reopens above OPEN.
BLINK_CLOSED = 0.85
BLINK_OPEN = 0.90
# Look-away: change of the vertical or horizontal iris offset against its bias (eye
# widths, as landmarks read it: ~0.2 and ~0.45 of a real iris move). Closes above
# LOOK_AWAY, reopens below LOOK_BACK; steady gaze reads within ±0.02.
LOOK_AWAY = 0.04
LOOK_BACK = 0.025
# A saccade: the eye in the head jumps by more than this between two frames (eye
# widths as landmarks read them; steady gaze moves < 0.015 a frame). MediaPipe's
# tracking spreads the reading of a saccade over 2-4 frames, so a level threshold
# alone switches a few frames late, with the eye already still: the look-away gate
# therefore also switches on the saccade itself, by the way it heads.
SACCADE = 0.03
# A look-away decided without a saccade (the gaze reading drifted across a limit, as
# it does while the head turns) fades over ~8 frames instead: a step there would move
# a still iris by the whole shift.
LOOK_SLEW = 0.125
# The eyes turn against the head as it turns while the gaze holds on the lens (~0.003-
# 0.007 eye widths per degree of yaw, as landmarks read it, on four real talking heads):
# a sideways look is read from the iris offset less this, so that a speaker who turns
# their head to the camera and back is not taken to look away.
COUNTER_ROTATION = 0.005
POSE_SLEW = 0.08  # per frame: a head turn fades the correction over ~12 frames
# Seconds a look-away may last before the gaze it holds becomes the bias: the bias only
# learns from facing frames, so a wrong start (the first frame a glance) or a lasting
# change of posture would otherwise switch the correction off for good.
RESEED_AFTER = 2.0
# Head yaw or pitch (degrees) from which the correction fades out over 10° more.
# MediaPipe reads 10-18° of pitch on frontal faces filmed from slightly below, hence a
# wider limit than Maxine's 15°.
POSE_LIMIT = 25.0


def gaze_pitch_degrees(upper_gap: float) -> float:
    """A person's vertical gaze against the lens (degrees, 0 into it, negative below)
    from how far the upper lid sits above the iris centre, in iris radii.

    MediaPipe's iris point hardly tells where an eye looks: it sits within ~0.02 eye
    widths of the same place for people 8° below the lens and at it. The upper lid
    does: it follows the eye down over the iris. Calibrated on eight real talking heads
    (glasses, 190-300 px faces) against an independent appearance-based estimator
    (MPIIGaze): people looking into the lens read UPPER_GAP_AT_LENS, and each iris
    radius less is ~DEGREES_PER_GAP below. Scale-free (iris radii), so it holds at any
    face size; per frame it is noisy (±4°), so it is only read as an average over
    seconds. It reads low for eyes whose lids cover much of the iris whatever they look
    at, and too little for readers whose lids stay up (one of the eight, judged 4.5°
    below, reads ~1° below).

    Tried and left: adding the lower lid's gap (where the iris sits between the lids,
    and how wide they open) brought those two within 2-3°, but read a lens-looker ~2°
    below, where the correction engages: a burst of correction on her is worse than
    too little on a reader. Also measured against the judge, leave-one-out on the eight
    (bench/gaze_signals.py, docs/eye-contact.md), none better held out: FaceLandmarker's
    eyeLookDown/Up blendshapes (they follow the landmark iris point and read the
    lens-lookers lowest), head pitch, an iris centre fitted to the limbus in the image,
    and the lower lid fitted to the image (right on the two under-read readers, 5° off
    on two others)."""
    return DEGREES_PER_GAP * (upper_gap - UPPER_GAP_AT_LENS)


@dataclass
class GazeControl:
    """Per-face temporal state; feed it one Measure per frame."""

    strength: float
    notes_below: float | None = None  # the creator's notes position (degrees), if given
    bias_tau: float = 1.5
    bias: float | None = None  # vertical iris offset (eye widths): the usual gaze, for look-aways
    side_bias: float | None = None
    estimate: float | None = None  # lid_pitch (degrees), averaged over open-eye, facing frames
    evidence: float = 0.0  # seconds of open-eye, facing frames behind `estimate`
    engaged: bool = False  # the person reads below the lens
    active: bool = False  # `engaged` as taken up at the eye's last blink or saccade
    engaged_since: float | None = None  # when the person was last judged to read below
    ramp: float = 1.0  # how far a start without a blink or saccade has got (0-1)
    reference: list[float] = field(default_factory=lambda: [0.0, 0.0])
    eyes_open: bool = True
    facing: bool = True  # not looking away
    gate_look: float = 1.0  # follows `facing`: at once on a saccade, else LOOK_SLEW a frame
    last_gaze: tuple[float, float, float] | None = None  # (h, v, away) of the last open-eye frame
    gate_slow: float = 0.0  # head pose and far-below, slew-limited
    wanted: float | None = None  # the rotation the estimate asks for, smoothed (degrees)
    held: float = 0.0  # `wanted` as taken up at the last hidden moment
    shown: bool = False  # the last frame got a correction
    away_since: float | None = None  # when the current look-away began
    last_t: float | None = None

    @property
    def pitch(self) -> float | None:
        """The person's estimated gaze against the lens (degrees), once measured."""
        return self.estimate

    def update(self, m: Measure) -> Decision:
        dt = 1 / 30 if self.last_t is None else max(1e-3, m.t - self.last_t)
        first = self.last_t is None
        self.last_t = m.t
        # blink: openness against its own reference (falls slowly, rises fast)
        ratio = math.inf
        for i, value in enumerate(m.openness):
            ref = self.reference[i]
            if first or ref <= 0:
                ref = value
            else:
                tau = 0.5 if value > ref else 2.0
                ref += (1 - math.exp(-dt / tau)) * (value - ref)
            self.reference[i] = ref
            ratio = min(ratio, value / max(ref, 1e-6))
        was_open = self.eyes_open
        self.eyes_open = ratio > (BLINK_CLOSED if self.eyes_open else BLINK_OPEN)
        if self.bias is None:
            self.bias = m.vertical
        horizontal = m.horizontal + COUNTER_ROTATION * m.yaw
        if self.side_bias is None:
            self.side_bias = horizontal
        away = max(abs(m.vertical - self.bias), abs(horizontal - self.side_bias))
        last, self.last_gaze = self.last_gaze, (horizontal, m.vertical, away)
        if not self.eyes_open:
            self.last_gaze = None  # lids move the landmark iris: no saccades read across a blink
        saccade = (
            self.eyes_open and last is not None
            and math.hypot(horizontal - last[0], m.vertical - last[1]) > SACCADE
        )  # fmt: skip
        if saccade:
            # away from the usual gaze closes the gate, back towards it opens it
            self.facing = away < last[2] and away < LOOK_AWAY  # type: ignore[index]
        elif self.eyes_open:
            self.facing = away < (LOOK_AWAY if self.facing else LOOK_BACK)
        if self.eyes_open and not self.facing:
            self.away_since = m.t if self.away_since is None else self.away_since
            if m.t - self.away_since >= RESEED_AFTER:
                # held this long it is the new normal (a first frame that was a glance,
                # a changed posture or camera), not a look away: learn it, fade back in
                self.bias, self.side_bias, self.facing, self.away_since = m.vertical, horizontal, True, None
        else:
            self.away_since = None
        target = float(self.facing)
        if saccade or first or not (was_open and self.eyes_open):  # the eye's own move hides it
            self.gate_look = target
        else:
            self.gate_look += float(np.clip(target - self.gate_look, -LOOK_SLEW, LOOK_SLEW))
        pose = _ramp_down(abs(m.yaw), POSE_LIMIT, 10.0) * _ramp_down(abs(m.pitch), POSE_LIMIT, 10.0)
        # the usual gaze and the estimate learn only from open eyes on a face turned to
        # the camera; the usual gaze also only from frames near it (not glances), while
        # the lids, which move less, learn from all of them: readers' irises wander
        # enough that the stricter rule left some with under a second of evidence in 8
        step = 1 - math.exp(-dt / self.bias_tau)
        if self.eyes_open and ratio > BLINK_OPEN and away < LOOK_BACK and pose > 0.99:
            self.bias += step * (m.vertical - self.bias)
            self.side_bias += step * (horizontal - self.side_bias)
        if self.eyes_open and ratio > BLINK_OPEN and pose > 0.99:
            lag = 1 - math.exp(-dt / ESTIMATE_TAU)
            self.estimate = m.lid_pitch if self.estimate is None else self.estimate + lag * (m.lid_pitch - self.estimate)
            self.evidence += dt
        pitch = self.pitch
        if pitch is not None and self.evidence >= EVIDENCE_SECONDS:
            self.engaged = pitch < (RELEASE_ABOVE if self.engaged else ENGAGE_BELOW)
        if not self.engaged:
            self.engaged_since = None
        elif self.engaged_since is None:
            self.engaged_since = m.t
        below = 0.0 if pitch is None else max(0.0, -pitch)
        far = _ramp_down(below, MAX_DEGREES, FAR_FADE)  # a real look down
        slow = pose * far
        if first:
            self.gate_slow = slow
        self.gate_slow += float(np.clip(slow - self.gate_slow, -POSE_SLEW, POSE_SLEW))
        # smoothstep: the slow fade starts and ends without a kink (no jolt in the iris track)
        gate = self.gate_slow * self.gate_slow * (3 - 2 * self.gate_slow)
        look = self.gate_look * self.gate_look * (3 - 2 * self.gate_look)
        gate *= look * float(self.eyes_open)
        # the correction starts and stops only where the eye's own motion hides it
        eye_moved = first or saccade or not (was_open and self.eyes_open)
        switched = eye_moved and self.active != self.engaged
        if eye_moved:
            self.active = self.engaged
            self.ramp = 1.0
        elif self.engaged and not self.active and m.t - self.engaged_since >= START_WAIT:  # type: ignore[operator]
            self.active, self.ramp, switched = True, 0.0, True
        if self.ramp < 1.0:
            self.ramp = min(1.0, self.ramp + dt / RAMP_SECONDS)
        wanted = 0.0
        if self.active:
            # the creator's notes position, when given, is the angle to turn by
            wanted = min(MAX_DEGREES, below if self.notes_below is None else self.notes_below)
        if self.wanted is None or switched:
            self.wanted = wanted
        self.wanted += (1 - math.exp(-dt / WANTED_TAU)) * (wanted - self.wanted)
        hidden = eye_moved or not self.shown
        if hidden:
            self.held = self.wanted
        # smoothstep: the ramp starts and ends without a jolt
        degrees = self.strength * gate * self.held * self.ramp * self.ramp * (3 - 2 * self.ramp)
        reason = None
        if degrees < MIN_DEGREES:
            if not self.eyes_open:  # first: a blink hides any change of the correction
                reason = "blink"
            elif pitch is None or self.evidence < EVIDENCE_SECONDS or (self.engaged and not self.active):
                reason = "measuring"  # or waiting for a blink or saccade to start at
            elif self.strength * self.held < MIN_DEGREES:
                reason = "looking_at_lens"
            elif pose < 1.0 and self.gate_slow < 1.0:
                reason = "head_pose"
            elif self.gate_look < 1.0 or far < 1.0:
                reason = "look_away"
            else:
                reason = "fading_in"  # the slow gate reopening after a head turn
            degrees = 0.0
        else:
            # less the threshold, so a correction fading out reaches 0 without a last step
            degrees -= MIN_DEGREES
        self.shown = reason is None
        return Decision(degrees=degrees, gate=gate, reason=reason, hidden=hidden, moved=eye_moved)

    def prime(self, lid_pitch: float, seconds: float) -> None:
        """Start the track with the speaker's gaze already read (a census of the shot's
        first frames): `seconds` of evidence behind `lid_pitch` (degrees)."""
        self.estimate, self.evidence = lid_pitch, seconds
        if seconds >= EVIDENCE_SECONDS:
            self.engaged = lid_pitch < ENGAGE_BELOW

    def left_alone(self) -> None:
        """The frame got no correction after all (the corrector skipped it): nothing is
        on screen for the next frame's change to show against."""
        self.shown = False

    def restart(self) -> None:
        """A new track (a cut, the face back after a gap): the temporal state starts as
        the first track's did. The speaker's gaze estimate is kept: a cut within one
        talk is the same person reading the same notes (another speaker is learned
        over ESTIMATE_TAU, and a lens-looker's correction stops at their first blink)."""
        self.last_t = None
        self.bias = self.side_bias = self.wanted = self.engaged_since = None
        self.last_gaze = self.away_since = None
        self.active = self.shown = False
        self.ramp = 1.0
