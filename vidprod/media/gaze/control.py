"""Temporal control: what shift each frame gets, smoothed and gated.

- Landmark coordinates are smoothed with a One Euro filter (steady when still, quick
  when the head moves).
- A person's vertical gaze bias is an exponential average of their measured vertical
  iris offset over open-eye, facing-the-camera frames; the correction brings that bias
  to where people who look into the lens sit, and is zero for those already there.
- Gates switch the correction off for blinks, look-aways (a sudden change against the
  bias, or looking sideways), turned or tilted heads, and gaze far below the lens (a
  real look down, not reading).
- Blinks and look-aways switch it at once, with hysteresis, in the very frame the lid
  closes or the eye jumps: the eye is moving anyway then and hides the change, whereas
  a ramp after it (the old slew-limited gate) slid the still iris by ~1.5 px over a
  few frames, and a look measure hovering at a soft threshold made it wobble. Head
  pose and the far-below limit change slowly and fade smoothly. A track starts fully
  corrected: there is nothing to fade in from.
- The size of the correction holds still while the eye fixates. It takes up what the
  bias asks for only at a hidden moment (a saccade, a blink, or while nothing is shown):
  followed frame by frame, the bias's landmark noise moved a fixating iris by
  ~0.001 px a frame, which no one sees but which is motion the real eye never made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# Vertical iris offset (eye widths, up negative) of people looking into the lens:
# -0.068 to -0.083 measured (shared/GAZE.md).
LENS_TARGET = -0.075
# Biases within this of the target count as looking into the lens: no correction.
DEAD_BAND = 0.012
HINT_RAMP = 0.02  # eye widths of bias beyond the dead band over which a notes hint fades in
# The wanted shift follows the bias through a further smoothing (s): the bias moves a
# little with every frame's landmark noise, and the correction taken up at each saccade
# or blink should not carry that frame's noise.
WANTED_TAU = 0.5
MAX_SHIFT = 0.06  # eye widths
# MediaPipe's iris point follows a moved iris texture by only 0.1-0.2 of the move
# (measured on the fixtures) and reads real down-gaze mostly from the lids, so the
# measured bias understates the true one: the correction is this multiple of it.
BIAS_GAIN = 2.0
# Eyeball radius over eye width (12 mm over ~28.5 mm): converts offsets to degrees.
EYEBALL_RADIUS = 0.42
MIN_SHIFT = 0.002  # eye widths; below this a frame is left bit-identical (and above, less this)


def shift_to_degrees(shift: float) -> float:
    return math.degrees(math.asin(max(-1.0, min(1.0, shift / EYEBALL_RADIUS))))


def degrees_to_shift(degrees: float) -> float:
    return EYEBALL_RADIUS * math.sin(math.radians(degrees))


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

    def predict(self, t: float) -> np.ndarray | None:
        """The smoothed value carried forward to time t at the smoothed speed."""
        if self.value is None or self.t is None or self.speed is None:
            return None
        return self.value + self.speed * max(0.0, t - self.t)

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


@dataclass
class Decision:
    shift: float  # eye widths along uy (negative: up); 0 for no edit
    gate: float
    reason: str | None  # why the frame is not corrected (None when it is)
    # the eye's own motion (a saccade, a blink) or an uncorrected frame before this one
    # hides a change of the correction now: what it holds steady may be taken up afresh
    hidden: bool = True


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
POSE_SLEW = 0.08  # per frame: a head turn fades the correction over ~12 frames
# Seconds a look-away may last before the gaze it holds becomes the bias: the bias only
# learns from facing frames, so a wrong start (the first frame a glance) or a lasting
# change of posture would otherwise switch the correction off for good.
RESEED_AFTER = 2.0


@dataclass
class GazeControl:
    """Per-face temporal state; feed it one Measure per frame."""

    strength: float
    hint_shift: float | None = None  # from notes_below_degrees, eye widths (negative)
    bias_tau: float = 1.5
    bias: float | None = None
    side_bias: float | None = None
    reference: list[float] = field(default_factory=lambda: [0.0, 0.0])
    eyes_open: bool = True
    facing: bool = True  # not looking away
    gate_look: float = 1.0  # follows `facing`: at once on a saccade, else LOOK_SLEW a frame
    last_gaze: tuple[float, float, float] | None = None  # (h, v, away) of the last open-eye frame
    gate_slow: float = 0.0  # head pose and far-below, slew-limited
    wanted: float | None = None  # the shift the bias asks for, smoothed
    held: float = 0.0  # `wanted` as taken up at the last hidden moment
    shown: bool = False  # the last frame got a correction
    away_since: float | None = None  # when the current look-away began
    last_t: float | None = None

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
        if self.side_bias is None:
            self.side_bias = m.horizontal
        away = max(abs(m.vertical - self.bias), abs(m.horizontal - self.side_bias))
        last, self.last_gaze = self.last_gaze, (m.horizontal, m.vertical, away)
        if not self.eyes_open:
            self.last_gaze = None  # lids move the landmark iris: no saccades read across a blink
        saccade = (
            self.eyes_open and last is not None
            and math.hypot(m.horizontal - last[0], m.vertical - last[1]) > SACCADE
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
                self.bias, self.side_bias, self.facing, self.away_since = m.vertical, m.horizontal, True, None
        else:
            self.away_since = None
        target = float(self.facing)
        if saccade or first or not (was_open and self.eyes_open):  # the eye's own move hides it
            self.gate_look = target
        else:
            self.gate_look += float(np.clip(target - self.gate_look, -LOOK_SLEW, LOOK_SLEW))
        # MediaPipe reads 10-18° of pitch on frontal faces filmed from slightly below,
        # hence a wider pitch limit than Maxine's 15°
        pose = _ramp_down(abs(m.yaw), 25.0, 10.0) * _ramp_down(abs(m.pitch), 25.0, 10.0)
        # the bias learns only from open eyes on a face turned to the camera
        if self.eyes_open and ratio > BLINK_OPEN and away < LOOK_BACK and pose > 0.99:
            step = 1 - math.exp(-dt / self.bias_tau)
            self.bias += step * (m.vertical - self.bias)
            self.side_bias += step * (m.horizontal - self.side_bias)
        below = self.bias - LENS_TARGET  # how far below lens level the gaze sits
        far = _ramp_down(shift_to_degrees(max(0.0, below)), 12.0, 8.0)  # a real look down
        slow = pose * far
        if first:
            self.gate_slow = slow
        self.gate_slow += float(np.clip(slow - self.gate_slow, -POSE_SLEW, POSE_SLEW))
        # smoothstep: the slow fade starts and ends without a kink (no jolt in the iris track)
        gate = self.gate_slow * self.gate_slow * (3 - 2 * self.gate_slow)
        look = self.gate_look * self.gate_look * (3 - 2 * self.gate_look)
        gate *= look * float(self.eyes_open)
        wanted = -BIAS_GAIN * max(0.0, below - DEAD_BAND)
        if self.hint_shift is not None:
            # the notes' position counts once the gaze reads below the dead band, faded
            # in over HINT_RAMP: switched on at the band's edge it stepped the iris by
            # the whole hint (2 px) whenever the bias wandered across that edge
            wanted = min(wanted, self.hint_shift * float(np.clip((below - DEAD_BAND) / HINT_RAMP, 0.0, 1.0)))
        wanted = max(-MAX_SHIFT, wanted)
        if self.wanted is None:
            self.wanted = wanted
        self.wanted += (1 - math.exp(-dt / WANTED_TAU)) * (wanted - self.wanted)
        hidden = first or saccade or not (was_open and self.eyes_open) or not self.shown
        if hidden:
            self.held = self.wanted
        wanted = self.held
        shift = self.strength * gate * wanted
        reason = None
        if abs(shift) < MIN_SHIFT:
            if not self.eyes_open:  # first: a blink hides any change of the correction
                reason = "blink"
            elif abs(self.strength * wanted) < MIN_SHIFT:
                reason = "looking_at_lens"
            elif pose < 1.0 and self.gate_slow < 1.0:
                reason = "head_pose"
            elif self.gate_look < 1.0 or far < 1.0:
                reason = "look_away"
            else:
                reason = "fading_in"  # the slow gate reopening after a head turn
            shift = 0.0
        else:
            # less the threshold, so a shift fading out reaches 0 without a last step
            shift = math.copysign(abs(shift) - MIN_SHIFT, shift)
        self.shown = reason is None
        return Decision(shift=shift, gate=gate, reason=reason, hidden=hidden)

    def left_alone(self) -> None:
        """The frame got no correction after all (the corrector skipped it): nothing is
        on screen for the next frame's change to show against."""
        self.shown = False

    def restart(self) -> None:
        """A new track (a cut, another speaker, the face back after a gap): the person
        is measured afresh, and the track starts as the first one did."""
        self.last_t = None
        self.bias = self.side_bias = self.wanted = None
        self.last_gaze = self.away_since = None
        self.shown = False
