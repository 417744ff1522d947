"""Fit MediaPipe's lid contours to the image: its contour sits 2-5 px outside the real
lid margin, and a coverage mask drawn from it would carry lash and skin into the warp.

Each lid is moved by `δ` along uy and scaled by `s` about the corner line, tapered to
nothing at the corners, and scored by the mean luminance gradient across it (lashes →
sclera is dark → bright going down for the upper lid, bright → dark for the lower).
Columns near the corners and over the iris are left out: the iris and pupil edges are
stronger than the lower lid's and would pull the fit onto the iris bottom.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vidprod.media.gaze.geometry import EyeFrame

SCALES = np.round(np.arange(0.7, 1.301, 0.1), 2)
ACCEPT_GAIN = 2.0  # luminance units / px a fit must beat MediaPipe's curve by


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


def fit_lid(luma: np.ndarray, eye: EyeFrame, upper: bool) -> LidFit:
    """The best (δ, s) for one lid on a float32 luminance image (full frame or a crop
    whose origin the eye frame already accounts for)."""
    w = eye.w
    unit = w / 50.0
    curve = eye.upper if upper else eye.lower
    sign = 1.0 if upper else -1.0
    # inward is down for the upper lid, up for the lower one
    inward_lo, inward_hi = (-0.02 * w, 0.05 * w) if upper else (-0.03 * w, 0.06 * w)
    deltas = np.arange(-5.0, 5.0001, 0.25) * unit
    xs = eye.xs
    iris_x = eye.iris_local[0]
    columns = (xs > 0.12 * w) & (xs < 0.88 * w) & (np.abs(xs - iris_x) > 0.85 * eye.r)
    if columns.sum() < 4:
        return LidFit(0.0, 1.0)
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
    xs_b = np.broadcast_to(cx, ys.shape)
    grads = []
    for step in (0.75, -0.75):
        pts = eye.to_image(xs_b, ys + step)
        mapped = cv2.remap(luma, pts[..., 0].reshape(-1, 1).astype(np.float32),
                           pts[..., 1].reshape(-1, 1).astype(np.float32), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        grads.append(mapped.reshape(ys.shape))
    gradient = (grads[0] - grads[1]) / 1.5
    score = (sign * gradient).mean(axis=2)
    outward_px = np.maximum(0.0, -inward).mean(axis=2)
    inward_px = np.maximum(0.0, inward).mean(axis=2)
    score = score - 3.0 * outward_px / unit - 0.25 * inward_px / unit - 4.0 * np.abs(SCALES - 1.0)[:, None]
    score = np.where(allowed, score, -np.inf)
    best = np.unravel_index(np.argmax(score), score.shape)
    # the unchanged curve's score (s = 1, δ = 0) without penalties
    unchanged = float((sign * _gradient_at(luma, eye, cx, base)).mean())
    if score[best] < unchanged + ACCEPT_GAIN:
        return LidFit(0.0, 1.0)
    return LidFit(float(deltas[best[1]]), float(SCALES[best[0]]))


def _gradient_at(luma: np.ndarray, eye: EyeFrame, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    values = []
    for step in (0.75, -0.75):
        pts = eye.to_image(xs, ys + step).astype(np.float32)
        values.append(cv2.remap(luma, np.ascontiguousarray(pts[:, :1]),
                                np.ascontiguousarray(pts[:, 1:]), cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)[:, 0])  # fmt: skip
    return (values[0] - values[1]) / 1.5
