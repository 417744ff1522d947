"""Re-render one eye with its iris moved, editing the Y, U and V planes in place.

The opening between the fitted lids becomes a fractional coverage mask `A` (filled at
8x and averaged down, which is what keeps the lid margin free of rims). The eyeball
seen through the opening is extended outwards under the lids (`ext`), so a moved iris
continues under a lid instead of smearing lash or skin colour into the eye. A
displacement field, rigid over the iris and fading towards the corners but constant
across the opening's height (the lids occlude, they do not anchor), samples `ext`;
the result is composited with the linear mixing model `crop + A · (warped − ext)`, so a
lash pixel that is part lid keeps its lid part. Pixels outside the opening are never
written, and where the field is zero the output equals the input bit for bit.

Working on the planes directly (chroma at half size) avoids a colour conversion and
its loss; only the few hundred pixels of each eye are touched. What depends only on
the geometry (a `Stencil`: coverage, certainties, warp maps) is worked out once for
U and V together.

The upper lid follows the eye: when an eye turns up, its upper lid rises with it (a
moved iris under a still lid reads as a stare, and gaze estimators read the lid as
much as the iris). The lid band — the skin from the margin up towards the crease,
short of any rim or brow (lids.skin_band) — is warped upwards, most at the margin and
nothing at the band's top, tapered to nothing at the corners; the eyeball layer shows
through the opening the raised lid uncovers. Composited as `lid(crop) + lid(A) · (warped −
lid(ext))`, with lid() the band's warp: the linear mixing model with the occluder
moved, which is the plain composite wherever the band's warp is zero. Brows and
glasses rims above the band are never touched.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

SUPERSAMPLE = 8
# The softest picture whose lid margins are followed (px sigma): the blurred opening
# reaches three of these past the fitted lids, inside the harness's eye region.
MAX_BLUR = 1.5
_BOX = np.ones((3, 3), np.float32)
# Catchlights, the corneal reflections of a light, move about half as far as the pupil
# when an eye turns: a glint moves with the cornea's centre of curvature, ~5.6 mm from
# the eye's centre of rotation, against ~10 mm for the pupil. They are taken out of the
# moving iris and laid back CATCHLIGHT_FOLLOWS of the way (catchlights()).
CATCHLIGHT_ABOVE_IRIS = 30.0  # luma levels above the iris's median
CATCHLIGHT_CONTRAST = 40.0  # luma levels from a glint's peak down to the iris around it
CATCHLIGHT_RAMP = 20.0  # luma levels over which that contrast makes it surely a glint
CATCHLIGHT_MAX_AREA = 0.05  # of the iris disc, each: more is sclera, a sheen or paler iris
CATCHLIGHT_FOLLOWS = 0.5
# catchlights on one plane's crop: their soft mask, its holes (uint8) and per glint its
# share of the mask and where it is sampled moved (catchlight_maps)
CatchMaps = tuple[np.ndarray, np.ndarray, tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]]
# A band compressed by its lid's rise folds where the rise falls off faster than 1 px
# per px; smoothstep's steepest slope is 1.5 / band, so a rise is at most band / this.
BAND_PER_LIFT = 1.6


@dataclass(frozen=True)
class EyeEdit:
    """What to do to one eye, in full-resolution pixels."""

    opening: np.ndarray  # (N, 2) polygon between the fitted lids
    iris: np.ndarray  # (2,) iris centre
    r: float  # iris radius
    ux: np.ndarray  # unit vector along the corner line
    shift: np.ndarray  # (2,) how far the iris moves
    upper_count: int = 0  # the first this many opening points are the upper lid, left to right
    lift: float = 0.0  # how far the upper lid margin rises at its middle (px, along -uy)
    band: float = 0.0  # the lid skin above the margin that the rise compresses (px)
    blur: float = 0.0  # the picture's blur at the eye (Gaussian sigma, px; limbus_blur)

    @property
    def upper(self) -> np.ndarray:
        return self.opening[: self.upper_count]

    @property
    def lower(self) -> np.ndarray:
        return self.opening[self.upper_count:][::-1]



def coverage(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fraction of each pixel (pixel centres at integer coordinates) inside the polygon."""
    height, width = shape
    # supersampled centre of pixel p is (p + 0.5) * S - 0.5; 4 fractional bits
    points = np.round(((polygon + 0.5) * SUPERSAMPLE - 0.5) * 16).astype(np.int32)
    # only the polygon's bounding box (and a pixel round it) can be covered: filled and
    # averaged there alone, at a quarter of the cost for an eye's box. Each pixel is the
    # mean of its own SxS block and the fill is moved by whole pixels, in integers, so
    # the result is the same as over the whole shape
    x0 = min(max(math.floor(polygon[:, 0].min()) - 1, 0), width)
    y0 = min(max(math.floor(polygon[:, 1].min()) - 1, 0), height)
    x1 = max(min(math.ceil(polygon[:, 0].max()) + 2, width), x0)
    y1 = max(min(math.ceil(polygon[:, 1].max()) + 2, height), y0)
    result = np.zeros(shape, np.float32)
    if x1 == x0 or y1 == y0:
        return result
    big = np.zeros(((y1 - y0) * SUPERSAMPLE, (x1 - x0) * SUPERSAMPLE), np.uint8)
    points -= np.array([x0, y0], np.int32) * SUPERSAMPLE * 16
    cv2.fillPoly(big, [points], 255, lineType=cv2.LINE_8, shift=4)
    small = cv2.resize(big, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    result[y0:y1, x0:x1] = small.astype(np.float32) / 255.0
    return result


def sure_eyeball(alpha: np.ndarray) -> np.ndarray:
    """How surely each pixel shows only the eyeball: 0 up to ~0.5 px inside the
    opening, 1 from ~1.5 px inside (the margin itself holds lash and lid blur). A soft
    erosion of the coverage, continuous in the opening's sub-pixel position: a binary
    one flips whole pixels as the head moves and the extension then flickers."""
    total = cv2.boxFilter(alpha, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    return np.clip((total - 6.0) / 3.0, 0.0, 1.0).astype(np.float32)  # exact 1 inside


@dataclass
class Stencil:
    """Everything about one eye's edit in one plane that does not depend on the
    plane's values: the same for U and V, so worked out once for both."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the plane
    alpha: np.ndarray  # coverage of the opening
    inside: np.ndarray
    sure: np.ndarray
    keep: np.ndarray  # 1 - sure
    extension: Extension
    area: tuple[slice, slice]  # rows, columns of the box that the edit may write; the rest is on it alone
    warp: tuple[np.ndarray, np.ndarray]  # where the moved eyeball is sampled
    # the raised lid: where each pixel's lid layer is sampled, the coverage seen through
    # it, and which pixels it moves (None when the lid stays)
    lid: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    touched: np.ndarray | None = None  # every pixel the edit may write
    layers: Layers | None = None  # None when no sclera shows
    catch: CatchMaps | None = None  # the catchlights (None when none were found)


def lid_weight(gx: np.ndarray, gy: np.ndarray, upper: np.ndarray, lower: np.ndarray, ux: np.ndarray,
               band: float) -> np.ndarray:  # fmt: skip
    """How much of the lid's rise each pixel takes (0-1): 1 at the upper lid margin,
    falling to 0 at `band` px above it (smoothstep: the skin between margin and crease
    is compressed, no fold) and, below the margin, to 0 halfway down to the lower lid;
    along the eye sin(π·t), 0 at both corners."""
    uy = np.array([-ux[1], ux[0]])
    origin = upper[0]
    w = float((upper[-1] - origin) @ ux)
    dx, dy = gx - origin[0], gy - origin[1]
    along = dx * ux[0] + dy * ux[1]
    across = dx * uy[0] + dy * uy[1]
    u_along, u_across = (upper - origin) @ ux, (upper - origin) @ uy
    l_along, l_across = (lower - origin) @ ux, (lower - origin) @ uy
    margin = np.interp(along, u_along, u_across)
    above = np.clip((margin - across) / band, 0.0, 1.0)
    # the rest only on pixels below the band's top (smooth(1) is 0: nothing reaches the
    # others), one by one as on the whole box, so with the same values
    live = np.flatnonzero(above < 1.0)
    along, across, margin, above = along.ravel()[live], across.ravel()[live], margin.ravel()[live], above.ravel()[live]
    depth = np.maximum(np.interp(along, l_along, l_across) - margin, 1e-3)
    below = np.clip((across - margin) / (0.5 * depth), 0.0, 1.0)
    smooth = lambda x: 1.0 - x * x * (3 - 2 * x)
    t = np.clip(along / max(w, 1e-6), 0.0, 1.0)
    result = np.zeros(gx.shape, np.float32)
    result.ravel()[live] = (np.sin(np.pi * t) * smooth(above) * smooth(below)).astype(np.float32)
    return result


@dataclass(frozen=True)
class Extension:
    """The certainty side of `extend_eyeball`, which depends only on the geometry, on
    `region`: the part of the crop that any certainty reaches (outside it the extension
    is the input itself). Worked out there alone, as every pixel costs each step."""

    region: tuple[slice, slice]  # rows, columns of the crop
    sure: np.ndarray  # `sure` and `keep` on the region
    keep: np.ndarray
    push: np.ndarray  # the outward push: a 3x3 kernel (push_kernel)
    steps: int
    # per isotropic step: missing·gain and count, each with a row below the region
    # (0 and 1) that keeps the row between stacked planes at 0 (extend_eyeball)
    spread: list[tuple[np.ndarray, np.ndarray]]
    unsure: np.ndarray  # certainty still missing at the end


def certainty_region(sure: np.ndarray, direction: tuple[np.float32, np.float32], steps: int) -> tuple[slice, slice]:
    """Rows and columns of the crop beyond which `extension_weights` leaves no certainty:
    the bounding box of `sure`, grown on the side the push carries values to (a pixel
    takes the bilinear value at itself + `direction`, so per step by ceil(-component)
    on the far side and ceil(component) on the near one, 0 for a 0 component) and by
    one pixel all round per isotropic step. Certainty and the values carried with it
    stay 0 outside it, so steps worked out on it alone give the same numbers."""
    spread = steps + 2
    bounds = []
    for axis, c, size in ((1, float(direction[1]), sure.shape[0]), (0, float(direction[0]), sure.shape[1])):
        seen = np.flatnonzero(sure.any(axis=axis))
        start = seen[0] - steps * max(0, math.ceil(c)) - spread
        stop = seen[-1] + 1 + steps * max(0, math.ceil(-c)) + spread
        bounds.append(slice(max(0, int(start)), min(size, int(stop))))
    return bounds[0], bounds[1]


def push_kernel(dx: float, dy: float) -> np.ndarray:
    """A 3x3 correlation kernel whose result at a pixel is the bilinear value at the
    pixel + (dx, dy), |dx|, |dy| <= 1: the same values as a remap by that constant
    offset, but one filter over all planes stacked (extend_eyeball) instead of a remap
    per plane and step (6 % of the re-render's time)."""
    kernel = np.zeros((3, 3), np.float32)
    taps = []
    for d in (min(max(dx, -1.0), 1.0), min(max(dy, -1.0), 1.0)):  # a unit vector's, but for rounding
        whole = min(math.floor(d), 0)  # the lower tap's offset, -1 or 0
        taps.append(((whole, 1.0 - (d - whole)), (whole + 1, d - whole)))
    for oy, wy in taps[1]:
        for ox, wx in taps[0]:
            kernel[1 + oy, 1 + ox] += np.float32(wx * wy)
    return kernel


def extension_weights(sure: np.ndarray, keep: np.ndarray, direction: np.ndarray, steps: int) -> Extension:
    """The certainty side of `extend_eyeball`, which depends only on the geometry:
    the push's kernel, each isotropic step's (missing·gain, count) and the certainty
    still missing at the end, on the region any certainty reaches (`certainty_region`)."""
    dx, dy = np.float32(direction[0]), np.float32(direction[1])
    region = certainty_region(sure, (dx, dy), steps)
    push = push_kernel(float(dx), float(dy))
    sure_part, keep_part = sure[region], keep[region]
    weight = sure_part.copy()
    # the crop is 0 outside the region, as the filter's constant border is
    for _ in range(steps):
        pushed_w = cv2.filter2D(weight, -1, push, borderType=cv2.BORDER_CONSTANT)
        weight = sure_part + keep_part * pushed_w
    # the crop's pixels outside the region stay at 0: none is ever 1
    whole = weight.shape == sure.shape
    rows = weight.shape[0]
    # with a row of zeros below (see Extension.spread), which the 3x3 sum reads as it
    # reads the zeros past the region's edge: the same sums as on the crop
    weight = np.vstack([weight, np.zeros_like(weight[:1])])
    spread = []
    for _ in range(steps + 2):
        if whole and weight[:rows].min() >= 1.0:
            break
        count = cv2.filter2D(weight, -1, _BOX, borderType=cv2.BORDER_CONSTANT)
        gain = np.minimum(count, 1.0)  # as much as the surest neighbour can vouch for
        gained = (1.0 - weight) * gain
        gained[rows] = 0.0
        count = np.maximum(count, 1e-6)
        count[rows] = 1.0
        spread.append((gained, count))
        weight = weight + gained
    return Extension(region, sure_part, keep_part, push, steps, spread, 1.0 - weight[:rows])


def extend_eyeball(crops: np.ndarray, e: Extension) -> np.ndarray:
    """Each of `crops` (planes stacked on the first axis, all of one stencil) where
    `e.sure` is 1, continued outward: first along the push's direction (a pixel takes
    the bilinear value one pixel towards the eyeball), then by an isotropic normalised
    3x3 push for what is left (`extension_weights` gives the certainties). Values are
    carried premultiplied by their certainty, so the result changes smoothly with
    `sure`. Outside `e.region` the result is the crop itself.
    The planes go through each step together: an eye's steps are many operations on
    small arrays, where each call's overhead weighs as much as its size."""
    planes, rows = crops.shape[0], e.sure.shape[0]
    region = (slice(None), *e.region)
    part = crops[region]
    sure_part = part * e.sure
    # the planes one above another with a row of zeros under each, which a 3x3 filter
    # reads as it reads the zeros past an edge: one filter for all, the same values
    tall = np.zeros((planes, rows + 1, part.shape[2]), np.float32)
    flat = tall.reshape(-1, tall.shape[2])
    tall[:, :rows] = sure_part
    for _ in range(e.steps):
        pushed = cv2.filter2D(flat, -1, e.push, borderType=cv2.BORDER_CONSTANT).reshape(tall.shape)
        tall[:, :rows] = sure_part + e.keep * pushed[:, :rows]
    for gained, count in e.spread:
        total = cv2.filter2D(tall.reshape(-1, tall.shape[2]), -1, _BOX, borderType=cv2.BORDER_CONSTANT)
        tall = tall + gained * total.reshape(tall.shape) / count
    value = tall[:, :rows]
    # whatever certainty is still missing is never sampled; the input keeps it finite
    result = crops.astype(np.float32)  # a copy
    result[region] = value + e.unsure * part
    return result


@dataclass(frozen=True)
class Layers:
    """The eyeball as two layers, the iris disc over the sclera (geometry only)."""

    disc: np.ndarray  # the iris disc's coverage, soft over a third of its radius
    near: np.ndarray  # the disc and a ring around it: dark iris pixels the fit missed
    certain: np.ndarray  # the surely seen sclera
    reach: np.ndarray  # `certain` blurred: how much sclera each pixel's estimate rests on
    sigma: float
    below: np.ndarray  # 0 above the iris centre, 1 from half a radius below it
    # how far each pixel turns to the sclera's colour, but for the share of it that the
    # extension carried from `near` (layered_eyeball)
    turn: np.ndarray | None = None


def sclera_layers(sure: np.ndarray, grid: tuple[np.ndarray, np.ndarray], centre: np.ndarray, ux: np.ndarray,
                  r: float) -> Layers | None:
    """The geometry of the eyeball's two layers. Without them an iris that moves up
    drags its own colour up from under the lower lid: a reader's iris, which sits on the
    lower lid, is stretched instead of moved, and gaze estimators and people read the
    sclera that shows below a raised iris. The sclera's colour is a normalised Gaussian
    blur (sigma one iris radius) of the surely seen sclera. None when none is seen."""
    gx, gy = grid
    dx, dy = gx - np.float32(centre[0]), gy - np.float32(centre[1])
    dist = np.hypot(dx, dy)
    # soft over a third of the radius: the limbus is a blurred edge, and in an upscaled
    # or soft picture a one-pixel edge would be the sharpest thing in the eye
    soft = max(1.0, r / 3.0)
    disc = np.clip((np.float32(r + 0.5 * soft) - dist) / np.float32(soft), 0.0, 1.0)
    near = np.clip(np.float32(1.35 * r + 1.5) - dist, 0.0, 1.0)
    certain = sure * (1.0 - near)  # past the limbus's blurred dark ring
    if certain.sum() < 4.0:
        return None
    sigma = max(1.0, r)
    reach = cv2.GaussianBlur(certain, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    # only below the iris: a raised iris uncovers sclera under it, while above it the
    # lid hides the iris's top, which the fitted disc may cut a little short
    down = dx * np.float32(-ux[1]) + dy * np.float32(ux[0])
    below = np.clip(down / np.float32(0.5 * r), 0.0, 1.0)
    return Layers(disc, near, certain, reach, sigma, below)


def layered_eyeball(ext: np.ndarray, crop: np.ndarray, lay: Layers | None, weight: np.ndarray | None) -> np.ndarray:
    """`ext` turned towards the sclera's colour by `weight`: the share of it that the
    extension carried from the iris and its ring (the extension of `near`, as the
    extension is linear in what it extends), outside the disc, below the iris centre
    and only where nothing is surely seen (under the lids). Elsewhere, the lid margins
    beside the sclera included, the local extension stays: a sclera estimate there
    would draw its error along the margin as a line."""
    if lay is None or weight is None:
        return ext
    total = cv2.GaussianBlur(crop * lay.certain, (0, 0), lay.sigma, borderType=cv2.BORDER_CONSTANT)
    sclera = total / np.maximum(lay.reach, np.float32(1e-3))
    return ext + weight * (sclera - ext)


def field_weight(gx: np.ndarray, gy: np.ndarray, centre: np.ndarray, ux: np.ndarray, r: float) -> np.ndarray:
    """1 over the iris (and 10 % beyond it) along the corner line, a Gaussian fall-off
    towards the corners, constant across the opening's height."""
    along = np.abs((gx - centre[0]) * ux[0] + (gy - centre[1]) * ux[1])
    dist = np.maximum(0.0, along - 1.1 * r)
    return np.exp(-0.5 * (dist / (0.6 * r)) ** 2).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A crop's pixel coordinates x, y (read-only): a still head's boxes repeat."""
    gy, gx = np.mgrid[0:height, 0:width].astype(np.float32)
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def stencil(edit: EyeEdit, shape: tuple[int, int], scale: float, y_offset: float,
            lights: Catchlights | None = None) -> Stencil | None:  # fmt: skip
    """`edit` laid on a plane of `shape`: `scale` 1 for luma, 0.5 for 4:2:0 chroma
    (whose samples sit at luma (2x, 2y + 0.5), hence y_offset 0.5), with the eye's
    `lights` (catchlights()) kept near their place. None when it would change nothing."""
    to_plane = lambda p: np.stack([p[..., 0] * scale, (p[..., 1] - y_offset) * scale], -1)
    polygon = to_plane(edit.opening)
    # the lids are the opening's two runs of points (EyeEdit.upper, .lower)
    upper, lower = polygon[: edit.upper_count], polygon[edit.upper_count:][::-1]
    shift = edit.shift * scale
    magnitude = float(np.hypot(*shift))
    band = edit.band * scale
    lift = min(edit.lift * scale, band / BAND_PER_LIFT)  # the corrector keeps within it already
    if magnitude < 1e-3 and lift < 1e-3:
        return None
    # the opening and, when the lid rises, its band above the upper lid: only what the
    # edit may write or read, since every pixel of the box costs the extension's steps
    uy = np.array([-edit.ux[1], edit.ux[0]])
    reach = polygon if lift < 1e-3 else np.concatenate([polygon, upper - band * uy])
    margin = math.ceil(max(magnitude, lift)) + 4 + math.ceil(3 * min(edit.blur * scale, MAX_BLUR))
    x0 = max(0, math.floor(reach[:, 0].min()) - margin)
    y0 = max(0, math.floor(reach[:, 1].min()) - margin)
    x1 = min(shape[1], math.ceil(reach[:, 0].max()) + margin + 1)
    y1 = min(shape[0], math.ceil(reach[:, 1].max()) + margin + 1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    local = polygon - np.array([x0, y0])
    alpha = coverage(local, (y1 - y0, x1 - x0))
    sharp = alpha
    blur = min(edit.blur * scale, MAX_BLUR)
    if blur >= 0.5:
        # in a soft picture the lid margin is soft too: the eyeball shows through a
        # blurred opening, and a sclera uncovered below a raised iris must fade into
        # the lid as the picture does, not stop at a sharp margin as a bright line
        alpha = cv2.GaussianBlur(alpha, (0, 0), blur, borderType=cv2.BORDER_CONSTANT)
        alpha[alpha < 1e-3] = 0.0
    inside = alpha > 0
    if not inside.any():
        return None
    sure = sure_eyeball(sharp)
    if sure.max() < 1.0:
        return None
    keep = 1.0 - sure
    gx, gy = _grid(y1 - y0, x1 - x0)
    # the eyeball is continued under the lids along the move (up), far enough for
    # both the moved iris and what the raised lid uncovers
    direction = shift / magnitude if magnitude >= 1e-3 else -uy
    extension = extension_weights(sure, keep, direction, math.ceil(max(magnitude, lift)) + 3)
    centre = to_plane(edit.iris[None])[0] - np.array([x0, y0])
    layers = sclera_layers(sure, (gx, gy), centre, edit.ux, edit.r * scale)
    rise = None
    touched = inside
    if lift >= 1e-3:
        offset = np.array([x0, y0])
        rise = lid_weight(gx, gy, upper - offset, lower - offset, edit.ux, band)
        moves = rise > 0
        if moves.any():
            touched = inside | moves
        else:
            rise = None
    # the warps are sampled only where the edit writes: remap's output at a pixel
    # depends on its map entry alone, so maps of that area give the same values there
    rows, cols = np.flatnonzero(touched.any(axis=1)), np.flatnonzero(touched.any(axis=0))
    area = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    ax, ay = gx[area], gy[area]
    weight = field_weight(ax, ay, centre, edit.ux, edit.r * scale)
    warp = (ax - np.float32(shift[0]) * weight, ay - np.float32(shift[1]) * weight)
    lid = None
    if rise is not None:
        # a pixel of the raised lid shows what was `lift · rise` below it
        step = np.float32(lift) * rise[area]
        mx, my = ax + step * np.float32(uy[0]), ay + step * np.float32(uy[1])
        lid_alpha = cv2.remap(alpha, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        lid = (mx, my, lid_alpha, moves[area])
    result = Stencil((x0, y0, x1, y1), alpha, inside, sure, keep, extension, area, warp, lid, touched[area])
    if layers is not None:
        known = np.clip(layers.reach / np.float32(0.05), 0.0, 1.0)  # sclera near enough to tell
        result.layers = replace(layers, turn=keep * known * layers.below * (1.0 - layers.disc))
    if lights is not None and magnitude >= 1e-3:
        result.catch = catchlight_maps(lights, (x0, y0), (gx, gy), scale, y_offset, shift)
    return result


def apply_stencil(planes: list[np.ndarray], s: Stencil) -> list[int]:
    """Re-render planes of one stencil (luma, or U and V) in place; returns how many
    samples of each changed."""
    x0, y0, x1, y1 = s.box
    views = [plane[y0:y1, x0:x1] for plane in planes]
    crops = np.stack(views).astype(np.float32)
    glints: list[np.ndarray | None] = [None] * len(views)
    if s.catch is not None:
        for i, crop in enumerate(crops):
            crops[i], glints[i] = lift_catchlights(crop, s.catch)
    lay = s.layers
    if lay is not None and lay.turn is not None:
        # `near` extended with the planes: how much of each pixel came from it
        share, *exts = extend_eyeball(np.concatenate([lay.near[None], crops]), s.extension)
        weight = lay.turn * share
    else:
        exts, weight = list(extend_eyeball(crops, s.extension)), None
    counts = []
    area = s.area
    for view, crop, ext, glint in zip(views, crops, exts, glints):
        ext = layered_eyeball(ext, crop, lay, weight)
        # the whole box is sampled, only `area` is composited and written
        warped = cv2.remap(ext, *s.warp, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        if glint is not None:
            warped = warped + glint[area]
        out = crop[area] + s.alpha[area] * (warped - ext[area])
        if s.lid is not None:
            mx, my, lid_alpha, moves = s.lid
            lid_crop = cv2.remap(crop, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            lid_ext = cv2.remap(ext, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            out = np.where(moves, lid_crop + lid_alpha * (warped - lid_ext), out)
        result = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        target = view[area]  # a view: written through to the plane
        changed = s.touched & (result != target)
        target[changed] = result[changed]
        counts.append(int(changed.sum()))
    return counts


def edit_eye(y: np.ndarray, u: np.ndarray, v: np.ndarray, edit: EyeEdit) -> int:
    """Apply `edit` to a yuv420p frame's planes in place; returns changed luma samples.
    U and V share one chroma stencil."""
    edit = replace(edit, blur=limbus_blur(y, edit))
    lights = catchlights(y, edit)
    luma = stencil(edit, y.shape, 1.0, 0.0, lights)
    changed = apply_stencil([y], luma)[0] if luma is not None else 0
    if changed:
        chroma = stencil(edit, u.shape, 0.5, 0.5, lights)
        if chroma is not None:
            apply_stencil([u, v], chroma)
    return changed


@dataclass(frozen=True)
class Catchlights:
    """An eye's corneal reflections in a box of the luma plane: all of them as a soft
    mask (0-1), and per glint its own soft mask and how much of the iris's move it
    follows."""

    mask: np.ndarray
    x0: int
    y0: int
    parts: tuple[tuple[np.ndarray, float], ...]


def catchlights(luma: np.ndarray, edit: EyeEdit) -> Catchlights | None:
    """The glints on the eye's cornea, or None when there are none. A glint is an island
    of pixels CATCHLIGHT_ABOVE_IRIS above the median of the iris disc, wholly inside the
    disc and the opening, at most CATCHLIGHT_MAX_AREA of the disc, whose peak stands
    CATCHLIGHT_CONTRAST above the brighter part of the iris right around it. A bright
    patch that reaches past the disc (sclera showing inside a disc fitted too large or
    off centre) or onto a lid margin (a lid's or the tear line's sheen) is none, nor is
    a large one. Each glint's mask is the island grown by a pixel and softened (its edge
    is blurred like the rest of the picture). How far a glint follows the iris slides
    from all the way to CATCHLIGHT_FOLLOWS with how surely it is one, so that over
    frames it moves smoothly instead of jumping between the two: with its contrast
    (sure from CATCHLIGHT_RAMP above CATCHLIGHT_CONTRAST) and how surely it lies on the
    eyeball seen between the lids (sure_eyeball). A glint always moves whole: one split
    between the two moves would show twice."""
    r = edit.r
    pad = math.ceil(r) + 4
    cx, cy = int(round(float(edit.iris[0]))), int(round(float(edit.iris[1])))
    x0, y0 = max(0, cx - pad), max(0, cy - pad)
    x1, y1 = min(luma.shape[1], cx + pad + 1), min(luma.shape[0], cy + pad + 1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    crop = luma[y0:y1, x0:x1]
    sure = sure_eyeball(coverage(edit.opening - np.array([x0, y0]), crop.shape))
    gy, gx = np.mgrid[y0:y1, x0:x1]
    disc = np.hypot(gx - edit.iris[0], gy - edit.iris[1]) < r
    seen = disc & (sure >= 1.0)
    if seen.sum() < 8:
        return None
    # islands well above the iris (its median: the pupil pulls it down, hence the
    # light iris texture of a pale eye passes here and is told apart by its surround)
    threshold = float(np.median(crop[seen])) + CATCHLIGHT_ABOVE_IRIS
    count, labels, stats, _ = cv2.connectedComponentsWithStats((crop > threshold).astype(np.uint8), connectivity=8)
    if count < 2:
        return None
    flat = labels.ravel()
    # per island: pixels off the disc or the opening, its peak, how surely it is seen
    off = np.bincount(flat, weights=(~disc | (sure <= 0.0)).ravel(), minlength=count)
    peak = np.zeros(count, np.float32)
    np.maximum.at(peak, flat, crop.ravel().astype(np.float32))
    seen_at = np.ones(count, np.float32)
    np.minimum.at(seen_at, flat, sure.ravel())
    small = stats[:, cv2.CC_STAT_AREA] <= CATCHLIGHT_MAX_AREA * math.pi * r * r
    soften = lambda m: np.minimum(cv2.GaussianBlur(cv2.dilate(m, _BOX), (3, 3), 0.7), 1.0)
    parts = []
    for k in np.flatnonzero((off == 0) & small):
        if k == 0:  # the background
            continue
        # a glint stands out from all around it (the brighter part of a 2 px ring: a
        # glint in the pupil has it dark all round); a paler stretch of iris texture
        # rises gently out of the iris beside it, even where the pupil borders it
        island = (labels == k).astype(np.uint8)
        ring = cv2.dilate(island, np.ones((5, 5), np.uint8)) > cv2.dilate(island, np.ones((3, 3), np.uint8))
        contrast = peak[k] - float(np.percentile(crop[ring], 75))
        sureness = float(np.clip((contrast - CATCHLIGHT_CONTRAST) / CATCHLIGHT_RAMP, 0.0, 1.0) * seen_at[k])
        if sureness > 0.0:
            parts.append((soften(island.astype(np.float32)), 1.0 - sureness * (1.0 - CATCHLIGHT_FOLLOWS)))
    if not parts:
        return None
    return Catchlights(np.maximum.reduce([part for part, _ in parts]), x0, y0, tuple(parts))


def catchlight_maps(lights: Catchlights, origin: tuple[int, int], grid: tuple[np.ndarray, np.ndarray],
                    scale: float, y_offset: float, shift: np.ndarray) -> CatchMaps | None:  # fmt: skip
    """The geometry of `lights` on a plane's crop (at `origin`, pixel coordinates
    `grid`): their mask, its holes, and per glint its share of the mask and where it is
    sampled moved (its part of the plane's `shift`). None when they miss the crop."""
    gx, gy = grid
    x0, y0 = origin
    mx = (gx + np.float32(x0)) / np.float32(scale) - np.float32(lights.x0)
    my = (gy + np.float32(y0)) / np.float32(scale) + np.float32(y_offset) - np.float32(lights.y0)
    on_plane = lambda m: cv2.remap(m, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = on_plane(lights.mask)
    holes = (mask > 0.01).astype(np.uint8)
    if not holes.any():
        return None
    shares = [on_plane(part) for part, _ in lights.parts]
    total = np.maximum(np.sum(shares, axis=0), np.float32(1e-6))
    moves = tuple((share / total, gx - np.float32(follow * shift[0]), gy - np.float32(follow * shift[1]))
                  for share, (_, follow) in zip(shares, lights.parts))  # fmt: skip
    return mask, holes, moves


def lift_catchlights(crop: np.ndarray, catch: CatchMaps) -> tuple[np.ndarray, np.ndarray]:
    """`crop` with the glints taken out (filled in from the iris around them: OpenCV's
    Telea inpainting), before the eyeball is extended under the lids (else a glint
    near a lid is continued under it and the moved iris brings that up as a streak),
    and the glints' light moved to where they go, to add to the moved iris (a
    reflection adds light to what is under it). Their light is moved by bicubic
    sampling, as the iris is, kept within its own range so that a bright glint gets no
    dark ring."""
    mask, holes, moves = catch
    filled = cv2.inpaint(crop, holes, 2, cv2.INPAINT_TELEA)
    light = mask * (crop - filled)
    moved = np.zeros_like(light)
    for share, mx, my in moves:
        moved += cv2.remap(light * share, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    moved = np.clip(moved, min(0.0, float(light.min())), max(0.0, float(light.max())))
    return crop - light, moved


def limbus_blur(luma: np.ndarray, edit: EyeEdit) -> float:
    """How soft the picture is at this eye: the Gaussian sigma (px) of the limbus, the
    iris's edge against the sclera beside it, read along the corner line through the
    iris centre on both sides. A blurred step of height C has a steepest slope of
    C / (sigma·sqrt(2π)); the sharper side counts (the other may run into a corner).
    0 when neither side shows a clear edge."""
    r = edit.r
    t = np.arange(-2.0 * r, 2.0 * r + 0.25, 0.25, dtype=np.float32)
    xs = (edit.iris[0] + t * edit.ux[0]).astype(np.float32)[None]
    ys = (edit.iris[1] + t * edit.ux[1]).astype(np.float32)[None]
    # only the line's neighbourhood as float (the whole plane cost ~1 ms an eye): it
    # holds every pixel a sample reads, and reaches the plane's edge wherever a sample
    # lies past it, so the replicated border is the same; taking an integer off a
    # coordinate no smaller than it is exact in float32, so the samples are too
    (x0, y0), (x1, y1) = _reach(xs, ys, luma.shape)
    near = luma[y0:y1, x0:x1].astype(np.float32)
    line = cv2.remap(near, xs - np.float32(x0), ys - np.float32(y0), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)[0]  # fmt: skip
    slope = np.abs(np.gradient(line, 0.25))
    iris = _median(line[np.abs(t) < 0.6 * r])
    sigmas = []
    for side in (-1.0, 1.0):
        beyond = (side * t > 1.3 * r) & (side * t < 1.8 * r)
        edge = (side * t > 0.6 * r) & (side * t < 1.4 * r)
        step = _median(line[beyond]) - iris
        steepest = float(slope[edge].max())
        if step > 12.0 and steepest > 0.0:
            sigmas.append(step / (steepest * math.sqrt(2 * math.pi)))
    return min(sigmas) if sigmas else 0.0


def _reach(xs: np.ndarray, ys: np.ndarray, shape: tuple[int, ...]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The corners (x0, y0), (x1, y1) of the part of a plane of `shape` that bilinear
    samples at (xs, ys) read: a pixel's margin around them, clipped to the plane but
    never empty, so a sample past an edge still finds that edge in it."""
    lo, hi = [], []
    for values, size in ((xs, shape[1]), (ys, shape[0])):
        start = min(max(math.floor(float(values.min())) - 1, 0), size - 1)
        lo.append(start)
        hi.append(min(max(math.floor(float(values.max())) + 3, start + 1), size))
    return (lo[0], lo[1]), (hi[0], hi[1])


def _median(values: np.ndarray) -> float:
    """np.median of a 1-D float32 array, without its overhead (a tenth of a millisecond
    an eye): the middle value, or the middle two's float32 mean, as np.median gives
    (NaN for none)."""
    n = values.size
    if not n:
        return math.nan
    middle = np.partition(values, [(n - 1) // 2, n // 2])
    if n % 2:
        return float(middle[n // 2])
    return float((middle[n // 2 - 1] + middle[n // 2]) / np.float32(2))


def iris_contrast(luma: np.ndarray, edit: EyeEdit) -> float:
    """How much the iris stands out from the sclera beside it: the brighter part of a
    band either side of the iris along the corner line (80th percentile, 1.2-2r from
    its centre, within 0.35r of its height: sclera in any open eye, lids only at its
    ends) less the darker part of the iris (30th percentile within 0.8r), in luma
    levels, inside the opening; 0 when either part is too small to tell."""
    x0, y0 = np.maximum(np.floor(edit.opening.min(axis=0)).astype(int) - 2, 0)
    x1 = min(luma.shape[1], math.ceil(edit.opening[:, 0].max()) + 3)
    y1 = min(luma.shape[0], math.ceil(edit.opening[:, 1].max()) + 3)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    inside = coverage(edit.opening - np.array([x0, y0]), (y1 - y0, x1 - x0)) > 0.99
    gy, gx = np.mgrid[y0:y1, x0:x1]
    dx, dy = gx - edit.iris[0], gy - edit.iris[1]
    along = np.abs(dx * edit.ux[0] + dy * edit.ux[1])
    across = np.abs(-dx * edit.ux[1] + dy * edit.ux[0])
    crop = luma[y0:y1, x0:x1]
    iris = crop[inside & (np.hypot(dx, dy) < 0.8 * edit.r)]
    beside = crop[inside & (along > 1.2 * edit.r) & (along < 2.0 * edit.r) & (across < 0.35 * edit.r)]
    if iris.size < 8 or beside.size < 8:
        return 0.0
    return float(np.percentile(beside, 80) - np.percentile(iris, 30))
