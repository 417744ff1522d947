"""Animated face fixtures for the gaze tests, made from public-domain stills that ship
in PyPI packages (scikit-image's astronaut, matplotlib's Grace Hopper).

A still is scaled into a 9:16 picture, its irises are moved down (a person reading
notes below the lens), and it is animated with small head motion, a fast head move,
blinks (the upper lid slides down over the eye) and a look to the side. Every frame's
ground truth (blink, look-away, fast motion) comes with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import cv2
import numpy as np

from vidprod.media.faces import FaceFinder, face_model_bytes
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
            seed: int = 1) -> Fixture:  # fmt: skip
    """`frames` frames at 30 fps: gentle sway, a blink at frames 20-25, a fast move at
    34-38 and a look to the side at 44-52."""
    rng = np.random.default_rng(seed)
    points = find_points(still)
    looking_down = move_irises(still, points, down)
    side = move_irises(still, points, down, side=0.22)
    closures = {20: 0.45, 21: 0.85, 22: 1.0, 23: 1.0, 24: 0.8, 25: 0.4}
    blinks = {i: close_eyes(looking_down, points, c) for i, c in closures.items()}
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
        source = blinks.get(i, side if 44 <= i <= 52 else looking_down)
        out.append(cv2.warpAffine(source, m, SIZE, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
        blink.append(closures.get(i, 0.0) >= 0.8)
        look.append(44 <= i <= 52)
        fast.append(34 <= i <= 38)
    return Fixture(name, out, blink, look, fast, eye_w, down)


@cache
def astronaut_fixture(frames: int = 60) -> Fixture:
    return animate("astronaut", astronaut(), 2.6, frames=frames)


@cache
def hopper_fixture(frames: int = 60, down: float = 0.0) -> Fixture:
    """Grace Hopper as photographed: looking into the lens (MediaPipe agrees)."""
    return animate("grace_hopper", grace_hopper(), 1.6, frames=frames, down=down, seed=2)
