"""Contact sheets: before/after eye crops at 2x and 4x, with a 8x-amplified
difference, one row per chosen frame, labelled with why it was chosen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidprod.media.gaze.stills import write_png

LABEL_HEIGHT = 18


@dataclass
class SheetRow:
    label: str
    before: np.ndarray  # RGB crop of both eyes, 1x
    after: np.ndarray
    focus: tuple[int, int, int, int] | None = None  # one eye's box inside the crop, for 4x


def _zoom(rgb: np.ndarray, factor: int) -> np.ndarray:
    return cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)


def _difference(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    diff = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2)
    return np.repeat(np.clip(diff * 8, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _label(image: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((LABEL_HEIGHT, image.shape[1], 3), 32, np.uint8)
    cv2.putText(bar, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([bar, image])


def _hstack(images: list[np.ndarray], gap: int = 4) -> np.ndarray:
    height = max(i.shape[0] for i in images)
    parts = []
    for image in images:
        padded = np.full((height, image.shape[1], 3), 16, np.uint8)
        padded[: image.shape[0]] = image
        parts += [padded, np.full((height, gap, 3), 16, np.uint8)]
    return np.hstack(parts[:-1])


def write_sheet(path: Path, title: str, rows: list[SheetRow]) -> Path:
    blocks = []
    for row in rows:
        cells = [
            _label(_zoom(row.before, 2), "before 2x"),
            _label(_zoom(row.after, 2), "after 2x"),
            _label(_zoom(_difference(row.before, row.after), 2), "|diff| x8"),
        ]
        if row.focus is not None:
            x0, y0, x1, y1 = row.focus
            cells += [
                _label(_zoom(row.before[y0:y1, x0:x1], 4), "before 4x"),
                _label(_zoom(row.after[y0:y1, x0:x1], 4), "after 4x"),
            ]
        blocks.append(_label(_hstack(cells), row.label))
    width = max(b.shape[1] for b in blocks) if blocks else 320
    padded = [np.pad(b, ((0, 6), (0, width - b.shape[1]), (0, 0)), constant_values=16) for b in blocks]
    sheet = np.vstack([_label(np.full((2, width, 3), 16, np.uint8), title), *padded])
    return write_png(path, sheet)
