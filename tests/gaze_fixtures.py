"""Animated face fixtures for the gaze tests, made from public-domain stills that ship
in PyPI packages (scikit-image's astronaut, matplotlib's Grace Hopper).

A still is scaled into a 9:16 picture, its irises are moved down (a person reading
notes below the lens), and it is animated with small head motion, a fast head move,
blinks (the upper lid slides down over the eye) and a look to the side. Every frame's
ground truth (blink, look-away, fast motion) comes with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import cv2
import numpy as np

from vidprod.media.faces import FaceFinder, face_model_bytes
from vidprod.media.gaze.control import Decision, GazeControl, Measure
from vidprod.media.gaze.geometry import EyeFrame, eye_frames

SIZE = (720, 1280)  # width, height


@cache
def model() -> bytes:
    return face_model_bytes()


def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def grace_hopper() -> np.ndarray:
    from tests.clips import grace_hopper as still

    return np.ascontiguousarray(still())


def find_points(rgb: np.ndarray) -> np.ndarray:
    with FaceFinder(model(), max_faces=1) as finder:
        [face] = finder.find(rgb)
    return face.points.astype(np.float64)


def _opening(eye: EyeFrame) -> np.ndarray:
    return np.concatenate([eye.to_image(eye.xs, eye.upper), eye.to_image(eye.xs[::-1], eye.lower[::-1])])


def move_irises(rgb: np.ndarray, points: np.ndarray, down: float, side: float = 0.0) -> np.ndarray:
    """The still with both irises moved by (side, down) eye widths.

    Painted independently of the corrector (inpainting extends the eyeball under the
    lids, a rigid move over the iris fading towards the corners, composited with the
    opening's coverage), so a change to the re-render never changes the test input."""
    out = rgb.copy()
    for eye in eye_frames(points):
        shift = (down * eye.uy + side * eye.ux) * eye.w
        opening = _opening(eye)
        pad = int(np.ceil(np.hypot(*shift))) + 6
        x0, y0 = np.floor(opening.min(axis=0)).astype(int) - pad
        x1, y1 = np.ceil(opening.max(axis=0)).astype(int) + pad + 1
        crop = out[y0:y1, x0:x1]
        big = np.zeros(((y1 - y0) * 8, (x1 - x0) * 8), np.uint8)
        cv2.fillPoly(big, [np.round(((opening - [x0, y0]) * 8 + 3.5) * 16).astype(np.int32)], 255, shift=4)
        alpha = cv2.resize(big, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        unsure = cv2.dilate((alpha < 0.99).astype(np.uint8), np.ones((3, 3), np.uint8))
        eyeball = cv2.inpaint(np.ascontiguousarray(crop), unsure, 3, cv2.INPAINT_TELEA).astype(np.float32)
        gy, gx = np.mgrid[0 : y1 - y0, 0 : x1 - x0].astype(np.float32)
        along = np.abs((gx - (eye.iris[0] - x0)) * eye.ux[0] + (gy - (eye.iris[1] - y0)) * eye.ux[1])
        weight = np.exp(-0.5 * (np.maximum(0.0, along - 1.1 * eye.r) / (0.6 * eye.r)) ** 2).astype(np.float32)
        moved = cv2.remap(eyeball, gx - np.float32(shift[0]) * weight, gy - np.float32(shift[1]) * weight,
                          cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        painted = crop + alpha[..., None] * (moved - eyeball)
        out[y0:y1, x0:x1] = np.clip(np.rint(painted), 0, 255).astype(np.uint8)
    return out


def close_eyes(rgb: np.ndarray, points: np.ndarray, closure: float) -> np.ndarray:
    """The upper lid (and the skin above it) slid down by `closure` of the opening."""
    out = rgb.copy()
    for eye in eye_frames(points):
        gap = np.maximum(eye.lower - eye.upper, 0)
        pad = int(eye.w * 0.6)
        x0 = int(eye.origin[0]) - 4
        y0 = int(min(eye.origin[1], eye.to_image(eye.xs, eye.upper)[:, 1].min())) - pad
        x1, y1 = int(x0 + eye.w * abs(eye.ux[0]) + 10), int(eye.origin[1] + eye.w * 0.5)
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d = np.stack([gx - eye.origin[0], gy - eye.origin[1]], -1)
        lx, ly = d @ eye.ux, d @ eye.uy
        upper = np.interp(lx, eye.xs, eye.upper)
        lower = np.interp(lx, eye.xs, eye.lower)
        slide = closure * np.interp(lx, eye.xs, gap)
        # a pixel above the new lid line shows what was `slide` above it
        covered = (ly < upper + slide) & (ly > upper - pad) & (lx > -2) & (lx < eye.w + 2)
        # the skin above slides too, less and less up to `pad` above the lid
        falloff = np.clip((ly - (upper - pad)) / np.maximum(pad - 0.0, 1.0), 0.0, 1.0)
        falloff = np.where(ly >= upper, 1.0, falloff)
        src = np.stack([gx, gy], -1) - (slide * falloff)[..., None] * eye.uy
        patch = cv2.remap(rgb, src[..., 0].astype(np.float32), src[..., 1].astype(np.float32),
                          cv2.INTER_LINEAR)  # fmt: skip
        region = out[y0:y1, x0:x1]
        sel = covered & (ly < lower + 1)
        region[sel] = patch[sel]
    return out


def draw_glasses(rgb: np.ndarray, points: np.ndarray, *, gap: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """The still wearing thick dark glasses: a rim around each eye, outside the opening,
    whose inner edge passes `gap` eye widths above the upper lid's highest point; a
    bridge and the temples. Returns the picture and the rims' coverage (0-1)."""
    ss = 4  # drawn at 4x and averaged down: anti-aliased like a photographed frame
    height, width = rgb.shape[:2]
    big = np.zeros((height * ss, width * ss), np.uint8)
    to_big = lambda p: np.round((np.asarray(p) + 0.5) * ss * 16 - 0.5 * 16).astype(np.int32)
    eyes = eye_frames(points)
    inner_sides = []
    for eye in eyes:
        w = eye.w
        thickness = 0.16 * w
        top = float(eye.upper.min()) - gap * w - thickness / 2  # rim centre line
        bottom = float(eye.lower.max()) + 0.35 * w + thickness / 2
        centre = eye.to_image(np.array(w / 2), np.array((top + bottom) / 2))
        axes = (0.82 * w + thickness / 2, (bottom - top) / 2)
        angle = float(np.degrees(np.arctan2(eye.ux[1], eye.ux[0])))
        outline = cv2.ellipse2Poly((0, 0), (int(axes[0] * 100), int(axes[1] * 100)), 0, 0, 360, 2)
        outline = outline / 100.0
        rot = np.array([[np.cos(np.radians(angle)), -np.sin(np.radians(angle))],
                        [np.sin(np.radians(angle)), np.cos(np.radians(angle))]])  # fmt: skip
        ring = centre + outline @ rot.T
        cv2.polylines(big, [to_big(ring)], True, 255, thickness=round(thickness * ss),
                      lineType=cv2.LINE_8, shift=4)  # fmt: skip
        inner_sides.append(ring)
    left, right = inner_sides
    # the bridge joins the rims' nearest points, high up; the temples run off outwards
    a = left[np.argmax(left[:, 0] - 0.5 * np.abs(left[:, 1] - left[:, 1].min()))]
    b = right[np.argmin(right[:, 0] + 0.5 * np.abs(right[:, 1] - right[:, 1].min()))]
    arch = np.array([a, (a + b) / 2 - [0, 0.1 * eyes[0].w], b])
    cv2.polylines(big, [to_big(arch)], False, 255, thickness=round(0.12 * eyes[0].w * ss), shift=4)
    for ring, direction in ((left, -1), (right, 1)):
        end = ring[np.argmax(direction * ring[:, 0])]
        cv2.line(big, tuple(to_big(end)), tuple(to_big(end + [direction * 0.6 * eyes[0].w, -0.05 * eyes[0].w])),
                 255, thickness=round(0.12 * eyes[0].w * ss), shift=4)  # fmt: skip
    alpha = cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    frame_colour = np.array([28, 22, 20], np.float32)
    out = rgb.astype(np.float32) * (1 - alpha[..., None]) + frame_colour * alpha[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), alpha


def darken_irises(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The still with dark brown irises that hardly stand out from their pupils (luma
    ~40 against ~32). Only iris-dark pixels inside the opening change: lids, lashes
    over the iris and catchlights stay as photographed."""
    out = rgb.astype(np.float32)
    height, width = rgb.shape[:2]
    gy, gx = np.mgrid[0:height, 0:width].astype(np.float32)
    luma = out @ np.array([0.299, 0.587, 0.114], np.float32)
    for eye in eye_frames(points):
        opening = np.zeros((height * 8, width * 8), np.uint8)
        cv2.fillPoly(opening, [np.round((_opening(eye) * 8 + 3.5) * 16).astype(np.int32)], 255, shift=4)
        inside = cv2.resize(opening, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        disk = np.clip(eye.r * 1.08 - np.hypot(gx - eye.iris[0], gy - eye.iris[1]) + 0.5, 0.0, 1.0)
        iris_dark = np.clip((150 - luma) / 40, 0.0, 1.0)  # not sclera, skin or a catchlight
        weight = (disk * inside * iris_dark)[..., None]
        dark = np.array([40, 31, 26], np.float32) + 0.1 * (out - 100)
        out = out * (1 - weight) + dark * weight
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def shade_eyes(rgb: np.ndarray, points: np.ndarray, keep: float = 0.03) -> np.ndarray:
    """The still with its eyes in deep shadow, as under a hat brim: each eye and its
    lid margins one flat dark tone (`keep` of their differences left), fading out
    over the skin around."""
    out = rgb.astype(np.float32)
    height, width = rgb.shape[:2]
    gy, gx = np.mgrid[0:height, 0:width].astype(np.float32)
    for eye in eye_frames(points):
        centre = eye.to_image(np.array(eye.w / 2), np.array(0.0))
        dx, dy = gx - centre[0], gy - centre[1]
        along = (dx * eye.ux[0] + dy * eye.ux[1]) / (0.6 * eye.w)
        across = (dx * eye.uy[0] + dy * eye.uy[1]) / (0.28 * eye.w)
        inside = np.clip((1.3 - np.hypot(along, across)) / 0.3, 0.0, 1.0)[..., None]
        tone = np.array([70, 55, 50], np.float32)
        out = out * (1 - inside) + (tone + keep * (out - tone)) * inside
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass
class Fixture:
    name: str
    frames: list[np.ndarray]  # RGB, SIZE
    blink: list[bool]  # eyes (nearly) closed
    look_away: list[bool]
    fast: list[bool]  # fast head motion
    eye_width: float  # px, in the 9:16 picture
    down: float  # eye widths the irises were moved down
    extra: dict = field(default_factory=dict)

    def video_frames(self) -> list[av.VideoFrame]:
        out = []
        for i, rgb in enumerate(self.frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, 30)
            out.append(frame)
        return out

    def write(self, path: Path) -> Path:
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=30, options={"crf": "12", "preset": "veryfast"})
            stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
            for frame in self.video_frames():
                frame.pts = None
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        return path


def _place(rgb: np.ndarray, zoom: float) -> tuple[np.ndarray, np.ndarray]:
    """The still zoomed and centred on a 9:16 canvas; the matrix that did it."""
    h, w = rgb.shape[:2]
    m = np.array([[zoom, 0, SIZE[0] / 2 - zoom * w / 2], [0, zoom, SIZE[1] * 0.42 - zoom * h / 2]])
    return m, cv2.warpAffine(rgb, m, SIZE, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def animate(name: str, still: np.ndarray, zoom: float, *, frames: int = 60, down: float = 0.05,
            seed: int = 1, points: np.ndarray | None = None,
            wear: Callable[[np.ndarray], np.ndarray] | None = None) -> Fixture:  # fmt: skip
    """`frames` frames at 30 fps: gentle sway, a blink at frames 20-25, a fast move at
    34-38 and a look to the side at 44-52. `wear` puts something on every pose of
    the face after the eyes are painted (glasses do not blink)."""
    rng = np.random.default_rng(seed)
    points = find_points(still) if points is None else points
    wear = wear or (lambda rgb: rgb)
    looking_down = move_irises(still, points, down)
    side = wear(move_irises(still, points, down, side=0.22))
    closures = {20: 0.45, 21: 0.85, 22: 1.0, 23: 1.0, 24: 0.8, 25: 0.4}
    blinks = {i: wear(close_eyes(looking_down, points, c)) for i, c in closures.items()}
    looking_down = wear(looking_down)
    matrices = []
    base_m, _ = _place(still, zoom)
    eye_w = float(np.mean([e.w for e in eye_frames(points)])) * zoom
    out, blink, look, fast = [], [], [], []
    cx, cy = SIZE[0] / 2, SIZE[1] * 0.42
    x_offset = 0.0
    for i in range(frames):
        t = i / 30
        dx = 6 * np.sin(2 * np.pi * 0.4 * t) + rng.normal(0, 0.15)
        dy = 4 * np.sin(2 * np.pi * 0.3 * t + 1) + rng.normal(0, 0.15)
        if 34 <= i <= 38:
            x_offset += 9.0  # fast head motion, ~270 px/s
        angle = 1.5 * np.sin(2 * np.pi * 0.25 * t)
        scale = 1.0 + 0.02 * np.sin(2 * np.pi * 0.2 * t)
        rot = cv2.getRotationMatrix2D((cx, cy), angle, scale)
        m = rot @ np.vstack([base_m, [0, 0, 1]])
        m[:, 2] += (dx + x_offset, dy)
        matrices.append(m)
        source = blinks.get(i, side if 44 <= i <= 52 else looking_down)
        out.append(cv2.warpAffine(source, m, SIZE, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
        blink.append(closures.get(i, 0.0) >= 0.8)
        look.append(44 <= i <= 52)
        fast.append(34 <= i <= 38)
    return Fixture(name, out, blink, look, fast, eye_w, down, extra={"matrices": matrices})


@cache
def astronaut_fixture(frames: int = 60) -> Fixture:
    return animate("astronaut", astronaut(), 2.6, frames=frames)


@cache
def astronaut_glasses_fixture(gap: float = 0.08) -> Fixture:
    """The reading astronaut in thick dark glasses whose rims pass `gap` eye widths
    above her upper lids; extra["rims"](i) is frame i's rim coverage. Her irises sit
    lower than the plain reader's; tests read her gaze through `ReadingControl`."""
    still = astronaut()
    points = find_points(still)
    worn, rims = draw_glasses(still, points, gap=gap)
    fixture = animate("astronaut_glasses", still, 2.6, down=0.08, points=points,
                      wear=lambda rgb: draw_glasses(rgb, points, gap=gap)[0])  # fmt: skip
    matrices = fixture.extra["matrices"]
    fixture.extra["rims"] = lambda i: cv2.warpAffine(rims, matrices[i], SIZE, flags=cv2.INTER_LINEAR)
    fixture.extra["still"] = worn
    return fixture


class ReadingControl(GazeControl):
    """The corrector's own control, with every frame's lid reading (Measure.lid_pitch)
    set to `pitch` degrees. The fixtures' "readers" have their irises moved down under
    still lids, unlike a real reader, whose lids come down with the eyes: what the
    estimate reads of them says nothing of it (the real clips in test_gaze_judge.py
    test it). Everything after the estimate (gates, lid fit, re-render) then runs as
    for a person `pitch` degrees below the lens, or at it (pitch 0)."""

    def __init__(self, strength: float, pitch: float = -4.0) -> None:
        super().__init__(strength)
        self.reading = pitch

    def update(self, m: Measure) -> Decision:
        return super().update(replace(m, lid_pitch=self.reading))

    def prime(self, lid_pitch: float, seconds: float) -> None:
        super().prime(self.reading, seconds)


@cache
def astronaut_narrow_fixture() -> Fixture:
    """The reading astronaut with her upper lids half-way down over her irises (a narrow
    eye), blinking as every fixture does: her lid is still half down at frame 25."""
    still = astronaut()
    points = find_points(still)
    return animate("astronaut_narrow", close_eyes(still, points, 0.5), 2.6, points=points)


@cache
def astronaut_dark_fixture() -> Fixture:
    """The reading astronaut with dark irises hardly brighter than their pupils."""
    still = astronaut()
    points = find_points(still)
    return animate("astronaut_dark", darken_irises(still, points), 2.6, points=points)


@cache
def astronaut_shaded_fixture() -> Fixture:
    """The reading astronaut with her eyes in deep shadow: nothing to tell the iris by."""
    still = astronaut()
    points = find_points(still)
    return animate("astronaut_shaded", shade_eyes(still, points), 2.6, points=points)


@cache
def hopper_reader_fixture() -> Fixture:
    """Grace Hopper (real glasses whose dark upper rim passes just above her eyes, dark
    irises) with her irises moved down as if reading; tests read her gaze through
    `ReadingControl`."""
    return animate("hopper_reader", grace_hopper(), 1.6, down=0.08, seed=2)


@cache
def hopper_fixture(frames: int = 60, down: float = 0.0) -> Fixture:
    """Grace Hopper as photographed: looking into the lens (MediaPipe agrees)."""
    return animate("grace_hopper", grace_hopper(), 1.6, frames=frames, down=down, seed=2)
