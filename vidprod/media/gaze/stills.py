"""Small pictures of eyes: crops of yuv420p planes as RGB, for the job page's
before/after stills and the evaluation's contact sheets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Box:
    x0: int
    y0: int
    x1: int
    y1: int  # even coordinates, so the chroma planes crop cleanly

    @classmethod
    def around(cls, points: np.ndarray, pad: float, width: int, height: int) -> Box:
        x0, y0 = np.floor(points.min(axis=0) - pad).astype(int)
        x1, y1 = np.ceil(points.max(axis=0) + pad).astype(int)
        x0, y0 = max(0, x0 - x0 % 2), max(0, y0 - y0 % 2)
        x1, y1 = min(width, x1 + x1 % 2), min(height, y1 + y1 % 2)
        return cls(int(x0), int(y0), int(x1), int(y1))


def crop_planes(y: np.ndarray, u: np.ndarray, v: np.ndarray, box: Box) -> tuple[np.ndarray, ...]:
    return (
        y[box.y0 : box.y1, box.x0 : box.x1].copy(),
        u[box.y0 // 2 : box.y1 // 2, box.x0 // 2 : box.x1 // 2].copy(),
        v[box.y0 // 2 : box.y1 // 2, box.x0 // 2 : box.x1 // 2].copy(),
    )


def planes_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.709 limited-range yuv420p crop to 8-bit RGB (the render's colour space)."""
    height, width = y.shape
    uu = cv2.resize(u, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32) - 128
    vv = cv2.resize(v, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32) - 128
    yy = (y.astype(np.float32) - 16) * (255 / 219)
    uu *= 255 / 224
    vv *= 255 / 224
    r = yy + 1.5748 * vv
    g = yy - 0.1873 * uu - 0.4681 * vv
    b = yy + 1.8556 * uu
    return np.clip(np.rint(np.stack([r, g, b], -1)), 0, 255).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray, zoom: int = 1) -> Path:
    if zoom > 1:
        rgb = cv2.resize(rgb, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path.name}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.tobytes())
    tmp.replace(path)
    return path
