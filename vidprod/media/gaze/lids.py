"""Fit MediaPipe's lid contours to the image: its contour sits 2-5 px outside the real
lid margin, and a coverage mask drawn from it would carry lash and skin into the warp.

Each lid is moved by `δ` along uy and scaled by `s` about the corner line, tapered to
nothing at the corners, and scored by the mean luminance gradient across it (lashes →
sclera is dark → bright going down for the upper lid, bright → dark for the lower).
Columns near the corners and over the iris are left out: the iris and pupil edges are
stronger than the lower lid's and would pull the fit onto the iris bottom.

Over time (`LidTracker`) the candidates' scores are averaged over a few frames and
the chosen fit changes only when another candidate is clearly better: fitted per
frame, a lid hopped between the fit and MediaPipe's curve (2 px on a 45 px eye) as
the acceptance margin was met or missed, and the coverage mask flickered with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vidprod.media.gaze.control import OneEuro
from vidprod.media.gaze.geometry import EyeFrame

SCALES = np.round(np.arange(0.7, 1.301, 0.1), 2)
STEPS = np.arange(-5.0, 5.0001, 0.25)  # δ candidates in units of w/50
ACCEPT_GAIN = 2.0  # luminance units / px a fit must beat MediaPipe's curve by
SCORE_TAU = 0.1  # s: candidates' scores are averaged over ~3 frames
SWITCH_GAIN = 0.5  # luminance units / px another candidate must beat the current one by
STALE_AFTER = 0.2  # s: a gap this long (no face, skipped frames) makes a track's evidence stale


@dataclass(frozen=True)
class LidFit:
    delta: float  # px along uy
    scale: float


def corner_taper(xs: np.ndarray, w: float) -> np.ndarray:
    """0 at the corners, 1 from 0.18w inwards (smoothstep)."""
    edge = np.minimum(xs, w - xs) / (0.18 * w)
    edge = np.clip(edge, 0.0, 1.0)
    return edge * edge * (3 - 2 * edge)


def apply_fit(curve: np.ndarray, fit: LidFit, taper: np.ndarray) -> np.ndarray:
    return curve + taper * ((fit.scale - 1.0) * curve + fit.delta)


@dataclass(frozen=True)
class LidScores:
    """Every candidate's score for one lid in one frame."""

    score: np.ndarray  # (SCALES, STEPS): mean gradient across the curve less penalties
    allowed: np.ndarray  # (SCALES, STEPS): within the hard bounds
    unchanged: float  # MediaPipe's curve's mean gradient, without penalties
    unit: float  # px per δ step unit (w/50)

    def fit(self, index: tuple[int, int]) -> LidFit:
        return LidFit(float(STEPS[index[1]] * self.unit), float(SCALES[index[0]]))


def lid_scores(luma: np.ndarray, eye: EyeFrame, upper: bool) -> LidScores | None:
    """Score every (δ, s) for one lid on a float32 luminance image (full frame or a
    crop whose origin the eye frame already accounts for); None when too few columns
    are away from the corners and the iris."""
    w = eye.w
    unit = w / 50.0
    curve = eye.upper if upper else eye.lower
    sign = 1.0 if upper else -1.0
    # inward is down for the upper lid, up for the lower one
    inward_lo, inward_hi = (-0.02 * w, 0.05 * w) if upper else (-0.03 * w, 0.06 * w)
    deltas = STEPS * unit
    xs = eye.xs
    iris_x = eye.iris_local[0]
    columns = (xs > 0.12 * w) & (xs < 0.88 * w) & (np.abs(xs - iris_x) > 0.85 * eye.r)
    if columns.sum() < 4:
        return None
    taper = corner_taper(xs, w)[columns]
    base = curve[columns]
    cx = xs[columns]
    # every candidate curve at once: (scales, deltas, columns)
    moved = taper[None, None, :] * ((SCALES[:, None, None] - 1.0) * base[None, None, :] + deltas[None, :, None])
    ys = base[None, None, :] + moved
    # the bounds hold for the whole curve, not just δ: a scale of 1.3 alone lifts an
    # upper lid's apex by ~0.045w, enough to reach a glasses rim just above the eye
    # (whose lower edge has the lid's own dark-to-bright polarity)
    inward = sign * moved
    allowed = (inward.min(axis=2) >= inward_lo) & (inward.max(axis=2) <= inward_hi)
    # eye.to_image, one image axis at a time: ~17k points, so no (..., 2) temporaries
    along = [eye.origin[k] + cx * eye.ux[k] for k in (0, 1)]
    grads = []
    for step in (0.75, -0.75):
        across = ys + step
        x, y = (along[k] + across * eye.uy[k] for k in (0, 1))
        mapped = cv2.remap(luma, x.astype(np.float32).reshape(-1, 1), y.astype(np.float32).reshape(-1, 1),
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        grads.append(mapped.reshape(ys.shape))
    gradient = (grads[0] - grads[1]) / 1.5
    score = (sign * gradient).mean(axis=2)
    outward_px = np.maximum(0.0, -inward).mean(axis=2)
    inward_px = np.maximum(0.0, inward).mean(axis=2)
    score = score - 3.0 * outward_px / unit - 0.25 * inward_px / unit - 4.0 * np.abs(SCALES - 1.0)[:, None]
    unchanged = float((sign * _gradient_at(luma, eye, cx, base)).mean())
    return LidScores(score.astype(np.float64), allowed, unchanged, unit)


def fit_lid(luma: np.ndarray, eye: EyeFrame, upper: bool) -> LidFit:
    """The best (δ, s) for one lid in a single picture."""
    scores = lid_scores(luma, eye, upper)
    if scores is None:
        return LidFit(0.0, 1.0)
    score = np.where(scores.allowed, scores.score, -np.inf)
    best = np.unravel_index(np.argmax(score), score.shape)
    if score[best] < scores.unchanged + ACCEPT_GAIN:
        return LidFit(0.0, 1.0)
    return scores.fit(best)  # type: ignore[arg-type]


class LidTracker:
    """One lid's fit over time: candidates' scores averaged over ~SCORE_TAU, the
    current candidate kept until another beats it by SWITCH_GAIN, acceptance with
    hysteresis (ACCEPT_GAIN to take a fit, half of it to keep one), and the result
    smoothed in eye widths (One Euro) so a switch glides instead of stepping."""

    def __init__(self) -> None:
        self.score: np.ndarray | None = None
        self.unchanged = 0.0
        self.current: tuple[int, int] | None = None
        self.accepted = False
        self.t: float | None = None
        self.smooth = OneEuro(0.8, 0.5)
        self.last: LidFit | None = None  # the latest fit returned

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def holds(self, t: float) -> bool:
        """Whether the last fit may stand for time t (no gap since it was made)."""
        return self.last is not None and self.t is not None and t - self.t <= STALE_AFTER

    def update(self, scores: LidScores | None, t: float, w: float) -> LidFit:
        if self.t is not None and t - self.t > STALE_AFTER:
            self.reset()
        first = self.score is None
        if scores is None:
            fit = LidFit(0.0, 1.0)
        else:
            a = 1.0 if first or self.t is None else 1.0 - math.exp(-max(t - self.t, 1e-3) / SCORE_TAU)
            if self.score is None:
                self.score, self.unchanged = scores.score.copy(), scores.unchanged
            else:
                self.score += a * (scores.score - self.score)
                self.unchanged += a * (scores.unchanged - self.unchanged)
            score = np.where(scores.allowed, self.score, -np.inf)
            best = np.unravel_index(np.argmax(score), score.shape)
            keep = self.current
            if keep is None or not np.isfinite(score[keep]) or score[best] > score[keep] + SWITCH_GAIN:
                keep = best  # type: ignore[assignment]
            self.current = keep
            margin = ACCEPT_GAIN / 2 if self.accepted else ACCEPT_GAIN
            self.accepted = bool(score[keep] >= self.unchanged + margin)
            fit = scores.fit(keep) if self.accepted else LidFit(0.0, 1.0)  # type: ignore[arg-type]
        self.t = t
        smooth = self.smooth(np.array([fit.delta / w, fit.scale]), t)
        self.last = LidFit(float(smooth[0] * w), float(smooth[1]))
        return self.last


# The raised lid's band (rerender.lid_weight) reaches at most BAND_MAX eye widths above
# the upper lid margin, and stops BAND_CLEARANCE px short of a glasses rim or a brow.
# Going up a column from the darkest point of the lash line (within LASH_ZONE), the
# lashes end where the luma comes back within LASH_END of the skin's (the column's
# bright part); past that, a run of a pixel or more under RIM_DARK times the skin's
# luma is a rim or a brow. A lid crease's shadow is lighter (0.55-0.75 of the skin on
# the faces seen, lit or shaded), a dark rim or brow darker (0.25-0.4).
# A rim or a brow is a line: a column's find counts only when at least half of the
# RIM_SPAN eye widths of columns around it find one too, and the nearest such column
# decides (a tilted rim comes nearest at one end). A single column is no evidence:
# where the fitted margin sits below thick lashes (over the iris, or as the lid opens
# after a blink), the eyeball or the lighter lid margin under the lashes passes for
# skin and the lashes for a rim, which read a lid with a hand's breadth of skin above
# it (hdtf_RD_Radio2) as one with no room at all, on 1 to 9 of 46 columns, frame by
# frame.
BAND_MAX = 0.3
LASH_ZONE = 0.06
LASH_END = 15.0
RIM_DARK = 0.45
RIM_SPAN = 0.1
BAND_CLEARANCE = 5.0


def skin_band(luma: np.ndarray, eye: EyeFrame, upper: np.ndarray) -> float:
    """How far (px) above the fitted upper lid `upper` (offsets along uy at eye.xs) the
    lid's skin reaches, over the whole eye but its corners (the lid's rise reaches all
    of it)."""
    columns = (eye.xs > 0.02 * eye.w) & (eye.xs < 0.98 * eye.w)
    top = BAND_MAX * eye.w
    ds = np.arange(0.0, top + BAND_CLEARANCE + 1.0, 0.5)
    xs = np.broadcast_to(eye.xs[columns], (ds.size, int(columns.sum())))
    ys = upper[columns][None, :] - ds[:, None]
    points = eye.to_image(xs, ys).astype(np.float32)
    values = cv2.remap(luma, np.ascontiguousarray(points[..., 0]), np.ascontiguousarray(points[..., 1]),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)  # fmt: skip
    lash_zone = max(1, int(np.searchsorted(ds, LASH_ZONE * eye.w)))
    skin = np.percentile(values, 75, axis=0)
    row = np.arange(ds.size)[:, None]
    # per column: the lash line's darkest point, where the skin starts past it, the
    # first dark run (a pixel) after that, and where the luma starts darkening into it
    darkest = np.argmin(values[:lash_zone], axis=0)
    lit = (values >= skin - LASH_END) & (row >= darkest)
    start = np.argmax(lit, axis=0)
    dark = (values < RIM_DARK * skin) & (row >= start)
    run = dark[:-1] & dark[1:]
    first = np.argmax(run, axis=0)
    found = lit.any(axis=0) & run.any(axis=0)
    steady = lit & (row < first)  # still at skin level before the run
    edge = ds.size - np.argmax(steady[::-1], axis=0)  # one past the last such row
    far = top + BAND_CLEARANCE
    reach = np.where(found, ds[np.minimum(edge, first)], far)
    # a column's rim counts when half the columns of the stretch around it see one too
    span = max(1, round(RIM_SPAN * eye.w / _column_step(eye.xs)))
    seen = np.convolve(found.astype(np.float64), np.ones(span), mode="same")
    line = found & (seen >= math.ceil(span / 2))
    nearest = float(reach[line].min()) if line.any() else far
    return float(np.clip(nearest - BAND_CLEARANCE, 0.0, top))


def _column_step(xs: np.ndarray) -> float:
    return float(np.median(np.diff(xs))) if xs.size > 1 else 1.0


def _gradient_at(luma: np.ndarray, eye: EyeFrame, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    values = []
    for step in (0.75, -0.75):
        pts = eye.to_image(xs, ys + step).astype(np.float32)
        values.append(cv2.remap(luma, np.ascontiguousarray(pts[:, :1]),
                                np.ascontiguousarray(pts[:, 1:]), cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)[:, 0])  # fmt: skip
    return (values[0] - values[1]) / 1.5
