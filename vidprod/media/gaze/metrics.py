"""Measures of a gaze edit, computed from the input and output pixels themselves.

- texture shift: how far the iris *texture* moved (least-squares alignment of the iris
  interior), over the shift that was asked for. Landmarks re-detected on the output
  follow the visible dark region and under-report vertical moves (shared/GAZE.md), so
  they are information only, never the pass mark.
- locality: changed samples outside the eye regions (each eye's contour dilated by
  ceil(0.04w)+2 px); chroma samples count by their 2x2 luma footprint.
- iris radius ratio: the radial scale that aligns the output's iris edge (along rays
  near the eye's corner line) with the input's.
- flicker: mean absolute frame-to-frame change inside the eye regions; output over
  input shows what the edit adds (lid-fit flicker, gate ramps, a wobbling shift).
- edge gain: the eye regions' summed gradient magnitude, output over input. A moved
  iris keeps its edges; rims at the lid margin, crescents, streaks and smears add
  edges of their own.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vidprod.media.gaze.geometry import eye_region_points
from vidprod.media.gaze.lids import BAND_MAX
from vidprod.media.gaze.rerender import EyeEdit, catchlights, coverage


def eye_region_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The edit region: both eyes' contours with the raised lid's band above them (the
    upper lid lifted by lids.BAND_MAX eye widths), each dilated by ceil(0.04w)+2 px."""
    mask = np.zeros(shape, np.uint8)
    for contour in eye_region_points(points):
        upper = contour[: len(contour) // 2]  # the upper lid, corner to corner
        axis = upper[-1] - upper[0]
        axis = axis if axis[0] >= 0 else -axis
        up = np.array([axis[1], -axis[0]])  # perpendicular, pointing up in the picture
        contour = np.concatenate([contour, upper + BAND_MAX * up])
        single = np.zeros(shape, np.uint8)
        hull = cv2.convexHull(np.round(contour).astype(np.int32))
        cv2.fillPoly(single, [hull], 1)
        w = float(np.ptp(contour[:, 0]))
        radius = math.ceil(0.04 * w) + 2
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask |= cv2.dilate(single, kernel)
    return mask.astype(bool)


def changed_outside(before: tuple[np.ndarray, ...], after: tuple[np.ndarray, ...],
                    region: np.ndarray) -> int:  # fmt: skip
    """Samples of Y, U, V that differ outside `region` (a luma-size mask)."""
    y0, u0, v0 = before
    y1, u1, v1 = after
    count = int(((y0 != y1) & ~region).sum())
    chroma = (u0 != u1) | (v0 != v1)
    if chroma.any():
        # a chroma sample is outside only if its whole 2x2 footprint is
        footprint = region[: chroma.shape[0] * 2, : chroma.shape[1] * 2]
        footprint = footprint.reshape(chroma.shape[0], 2, chroma.shape[1], 2).any(axis=(1, 3))
        count += int((chroma & ~footprint).sum())
    return count


def texture_shift(y_in: np.ndarray, y_out: np.ndarray, edit: EyeEdit) -> np.ndarray | None:
    """Displacement (x, y) in px of the iris interior from input to output, by
    Gauss-Newton least squares on a mask of the iris interior away from the lids."""
    fit = texture_shift_fit(y_in, y_out, edit)
    return None if fit is None else fit[0]


def texture_shift_fit(y_in: np.ndarray, y_out: np.ndarray, edit: EyeEdit) -> tuple[np.ndarray, float] | None:
    """texture_shift and its standard error (px): the residual's spread through the
    inverse normal matrix (larger axis) and the rounding of the output to whole grey
    levels. Weak iris texture (blur, a dark iris) measures a true move less precisely,
    and this says by how much."""
    shift = edit.shift
    centre = edit.iris + shift / 2
    radius = 0.75 * edit.r
    pad = int(edit.r + np.hypot(*shift) + 6)
    cx, cy = int(np.rint(centre[0])), int(np.rint(centre[1]))
    x0, y0 = max(0, cx - pad), max(0, cy - pad)
    x1, y1 = min(y_in.shape[1], cx + pad + 1), min(y_in.shape[0], cy + pad + 1)
    a = y_in[y0:y1, x0:x1].astype(np.float32)
    b = y_out[y0:y1, x0:x1].astype(np.float32)
    opening = coverage(edit.opening - np.array([x0, y0]), a.shape) > 0.99
    opening = cv2.erode(opening.astype(np.uint8), np.ones((5, 5), np.uint8))
    # only pixels that show moved iris in the output and whose source was iris inside
    # the opening in the input: the rest is lid-occluded or continued under a lid
    source = cv2.warpAffine(opening, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]),
                            (a.shape[1], a.shape[0]), flags=cv2.INTER_NEAREST)  # fmt: skip
    gy, gx = np.mgrid[0 : a.shape[0], 0 : a.shape[1]].astype(np.float32)
    local = centre - np.array([x0, y0])
    mask = (opening > 0) & (source > 0) & (np.hypot(gx - local[0], gy - local[1]) < radius)
    mask &= ~catchlight_footprint(y_in, edit, (x0, y0), a.shape)
    if mask.sum() < 12:
        return None
    d = _coarse_start(a, b, mask, (gx, gy), shift).astype(np.float64)
    for _ in range(20):
        warped = cv2.remap(a, gx - np.float32(d[0]), gy - np.float32(d[1]), cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        ix = cv2.Sobel(warped, cv2.CV_32F, 1, 0, ksize=3) / 8
        iy = cv2.Sobel(warped, cv2.CV_32F, 0, 1, ksize=3) / 8
        # out(x) ≈ warped(x) - grad·δ  →  solve for δ
        jx, jy, res = -ix[mask], -iy[mask], (b - warped)[mask]
        h = np.array([[jx @ jx, jx @ jy], [jx @ jy, jy @ jy]], np.float64)
        if np.linalg.det(h) < 1e-6:
            return None
        step = np.linalg.solve(h, [jx @ res, jy @ res])
        d += step
        if np.hypot(*step) < 1e-3:
            break
    spread = float(res @ res) / max(1, res.size - 2)
    statistical = spread * float(np.linalg.eigvalsh(np.linalg.inv(h)).max())
    # rounding to whole grey levels turns a gentle ramp into steps that sit still as a
    # sub-pixel move slides under them: an error correlated across the mask, up to a
    # rounding step over the typical gradient (0.1 px on a 4x-upscaled GIF's iris)
    gradient = math.sqrt(float(jx @ jx + jy @ jy) / jx.size)
    rounding = (0.5 / math.sqrt(3)) / max(gradient, 1e-6)
    return d, math.sqrt(statistical + rounding**2)


def _coarse_start(a: np.ndarray, b: np.ndarray, mask: np.ndarray, grid: tuple[np.ndarray, np.ndarray],
                  shift: np.ndarray) -> np.ndarray:  # fmt: skip
    """Where texture_shift_fit's Gauss-Newton starts: the best of moves 0.5 px apart
    along the asked one, from 1 px short of no move to 1 px past it, and up to 1 px
    either side. From no move it ran off on a weak texture (a blurred dark iris, ~30 px
    of it: retalking face_1 read 2 px down for a 1.1 px move up that this search
    finds), which also threw the iris radius ratio and the jitter. Sampled on the mask's
    pixels alone (remap's value at a pixel depends on its map entry alone)."""
    size = float(np.hypot(*shift))
    along = shift / size if size > 1e-6 else np.array([1.0, 0.0])
    across = np.array([-along[1], along[0]])
    xs, ys = grid[0][mask][:, None], grid[1][mask][:, None]
    target = b[mask]
    best, start = math.inf, np.zeros(2, np.float64)
    for t in np.arange(-1.0, size + 1.0 + 1e-9, 0.5):
        for c in (-1.0, -0.5, 0.0, 0.5, 1.0):
            d = t * along + c * across
            warped = cv2.remap(a, xs - np.float32(d[0]), ys - np.float32(d[1]), cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
            cost = float(np.mean(np.square(warped[:, 0] - target)))
            if cost < best:
                best, start = cost, d
    return start


def catchlight_footprint(y_in: np.ndarray, edit: EyeEdit, origin: tuple[int, int],
                         shape: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """Where the eye's catchlights are in the output (each glint its part of the shift)
    and where the input moved by the whole shift has them, in a box of `shape` at
    `origin`: they move less than the iris on purpose, so neither is iris texture to
    fit. Each glint's mask above 0.2 (the island and a pixel round it; past that it
    holds a fifth at most of light already below the glint threshold), grown by a
    pixel for the bicubic move: a wider footprint left too little of a small iris
    with two glints to measure (RD: standard error 0.13 px on a 0.5 px move)."""
    out = np.zeros(shape, bool)
    lights = catchlights(y_in, edit)
    if lights is None:
        return out
    x0, y0 = origin
    h, w = lights.mask.shape
    ly0, lx0 = lights.y0 - y0, lights.x0 - x0
    sy0, sx0 = max(0, ly0), max(0, lx0)
    sy1, sx1 = min(shape[0], ly0 + h), min(shape[1], lx0 + w)
    if sy1 <= sy0 or sx1 <= sx0:
        return out
    for part, follow in lights.parts:
        box = np.zeros(shape, np.uint8)
        box[sy0:sy1, sx0:sx1] = part[sy0 - ly0 : sy1 - ly0, sx0 - lx0 : sx1 - lx0] > 0.2
        core = cv2.dilate(box, np.ones((3, 3), np.uint8))
        for fraction in (follow, 1.0):
            move = np.float32([[1, 0, fraction * edit.shift[0]], [0, 1, fraction * edit.shift[1]]])
            out |= cv2.warpAffine(core, move, (shape[1], shape[0]), flags=cv2.INTER_NEAREST) > 0
    return out


def shift_ratio(measured: np.ndarray | None, requested: np.ndarray) -> float | None:
    """Measured displacement along the requested direction, over the requested size."""
    size = float(np.hypot(*requested))
    if measured is None or size < 1e-6:
        return None
    return float(measured @ requested) / (size * size)


_RIGHT = np.array([1.0, 0.0])


def _radial_profiles(y: np.ndarray, centre: np.ndarray, radii: np.ndarray, axis: float) -> np.ndarray:
    """Mean luma along rays within 12° of the eye's corner line (`axis`, degrees in the
    picture), (left, right) x radii: there the iris meets the sclera, not a lid. (Rays
    around the picture's horizontal met the lids of a head tilted by 10°, and measured
    the raised lid as an iris shrunk to 0.94, 0.92 with the lid raised alone:
    retalking face_2.)"""
    out = []
    for middle in (axis + 180, axis):
        angles = np.radians(np.arange(middle - 12, middle + 13, 4))
        xs = centre[0] + np.cos(angles)[:, None] * radii[None, :]
        ys = centre[1] + np.sin(angles)[:, None] * radii[None, :]
        rays = cv2.remap(y.astype(np.float32), xs.astype(np.float32), ys.astype(np.float32),
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        out.append(rays.mean(axis=0))
    return np.stack(out)


def iris_radius_ratio(y_in: np.ndarray, y_out: np.ndarray, centre_in: np.ndarray,
                      centre_out: np.ndarray, r: float, ux: np.ndarray = _RIGHT) -> float | None:  # fmt: skip
    """How much bigger the iris is in the output than in the input: the radial scale k
    that best aligns the output's radial profiles (around the moved centre) with the
    input's, over 0.6r-1.25r where the iris edge ramps up to the sclera, along rays near
    the eye's corner line (`ux`).

    Picking the edge in each picture separately (the strongest dark-to-bright step)
    was fooled by catchlights: on the astronaut a studio light inside the iris gave
    the input 0.42r and the output 1.5r on the same frame. Aligning the whole radial
    pattern compares like with like: a catchlight that moves with the iris cancels,
    only a real change of the iris's size moves the edge ramp. (One the re-render
    keeps near its place, rerender.catchlights, moves half as far; it weighs only
    where it lies on these rays, and then little against the ramp.)"""
    step = 0.25
    radii = np.arange(0.2 * r, 2.0 * r, step, dtype=np.float32)
    axis = math.degrees(math.atan2(float(ux[1]), float(ux[0])))
    p_in = _radial_profiles(y_in, centre_in, radii, axis)
    p_out = _radial_profiles(y_out, centre_out, radii, axis)
    window = (radii >= 0.6 * r) & (radii <= 1.25 * r)
    rho = radii[window]
    if np.ptp(p_in[:, window]) < 8:  # no edge to compare
        return None
    scales = np.arange(0.8, 1.2501, 0.0025)
    errors = np.array([
        sum(float(np.square(np.interp(k * rho, radii, p_out[i]) - p_in[i, window]).sum()) for i in (0, 1))
        for k in scales
    ])  # fmt: skip
    i = int(np.argmin(errors))
    if i in (0, len(scales) - 1):
        return float(scales[i])
    left, mid, right = errors[i - 1], errors[i], errors[i + 1]
    denom = left - 2 * mid + right
    offset = 0.5 * (left - right) / denom if denom > 0 else 0.0
    return float(scales[i] + offset * 0.0025)


def flicker(previous: np.ndarray, current: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute luma change between two frames inside `region`."""
    if not region.any():
        return 0.0
    return float(np.abs(current[region].astype(np.int16) - previous[region].astype(np.int16)).mean())


def edge_gain(y_in: np.ndarray, y_out: np.ndarray, region: np.ndarray) -> float | None:
    """Summed gradient magnitude inside `region`, output over input."""
    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return None
    y0, y1, x0, x1 = max(0, ys.min() - 2), ys.max() + 3, max(0, xs.min() - 2), xs.max() + 3
    inside = region[y0:y1, x0:x1]

    def energy(y: np.ndarray) -> float:
        crop = y[y0:y1, x0:x1].astype(np.float32)
        magnitude = np.hypot(cv2.Sobel(crop, cv2.CV_32F, 1, 0), cv2.Sobel(crop, cv2.CV_32F, 0, 1))
        return float(magnitude[inside].sum())

    base = energy(y_in)
    return energy(y_out) / base if base > 0 else None
