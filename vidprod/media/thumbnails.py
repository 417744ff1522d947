"""Pick each part's thumbnail: a sharp frame where the speaker's face shows with open eyes.

While a part renders, every few frames get a sharpness score (variance of the Laplacian
of a quarter-size grey copy, ~0.3 ms); the best few are kept as half-size copies of
their planes (0.8 MB at 1080p). Thumbnails are for people browsing the app (Shorts'
API takes no custom cover; TikTok and Reels pick a frame by time), so 540x960 is
plenty. When the part ends they become JPEGs and small pictures for the face check,
and the sharpest is written at once; when the whole render has ended,
`refine` looks for faces in the kept few and rewrites the thumbnail with the sharpest
one showing open eyes. Converting only at part ends keeps the render's memory peak low,
and doing the face check last keeps MediaPipe out of it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from vidprod.media.faces import in_child, open_eyes
from vidprod.media.planes import plane_views

KEEP = 4
EDGE_SKIP = 0.3  # seconds at each end of a part that are never chosen (cuts, fades)
JPEG_QUALITY = 88


def sharpness(frame: av.VideoFrame) -> float:
    y = plane_views(frame)[0]
    small = cv2.resize(y, (y.shape[1] // 4, y.shape[0] // 4), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(small, cv2.CV_32F).var())


@dataclass(order=True)
class _Candidate:
    score: float
    sequence: int
    i420: np.ndarray | None  # the frame's planes, until the part ends
    jpeg: bytes = b""
    small: np.ndarray | None = None  # RGB at most 480 px tall, for the face check

    def settle(self) -> None:
        """Turn the kept planes into the JPEG and the small picture, and drop them."""
        if self.i420 is None:
            return
        rgb = cv2.cvtColor(self.i420, cv2.COLOR_YUV2RGB_I420)
        self.i420 = None
        ok, jpeg = cv2.imencode(
            ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        self.jpeg = jpeg.tobytes() if ok else b""
        scale = min(1.0, max(480, min(320, rgb.shape[0])) / rgb.shape[0])
        size = (max(2, int(rgb.shape[1] * scale)), max(2, int(rgb.shape[0] * scale)))
        self.small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _half_i420(frame: av.VideoFrame) -> np.ndarray:
    """A half-size copy of a yuv420p frame in OpenCV's I420 layout."""
    y, u, v = plane_views(frame)
    width, height = y.shape[1] // 4 * 2, y.shape[0] // 4 * 2
    packed = np.empty((height * 3 // 2, width), np.uint8)
    packed[:height] = cv2.resize(y, (width, height), interpolation=cv2.INTER_AREA)
    chroma = (width // 2, height // 2)
    size = chroma[0] * chroma[1]
    flat = packed[height:].reshape(-1)
    flat[:size] = cv2.resize(u, chroma, interpolation=cv2.INTER_AREA).reshape(-1)
    flat[size:] = cv2.resize(v, chroma, interpolation=cv2.INTER_AREA).reshape(-1)
    return packed


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class ThumbnailPicker:
    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.candidates: list[_Candidate] = []  # min-heap by sharpness
        self.seen = 0
        self.path: Path | None = None

    def offer(self, frame: av.VideoFrame, t_in_part: float, part_length: float) -> None:
        self.seen += 1
        edge = min(EDGE_SKIP, part_length / 4)  # a short part still gets a thumbnail
        if self.seen % self.every or not edge <= t_in_part <= part_length - edge:
            return
        score = sharpness(frame)
        if len(self.candidates) >= KEEP and score <= self.candidates[0].score:
            return
        candidate = _Candidate(score, self.seen, _half_i420(frame))
        if len(self.candidates) < KEEP:
            heapq.heappush(self.candidates, candidate)
        else:
            heapq.heapreplace(self.candidates, candidate)

    def write(self, path: Path) -> bool:
        """Write the sharpest frame; False when no frame was offered."""
        for candidate in self.candidates:
            candidate.settle()
        self.candidates = [c for c in self.candidates if c.jpeg]
        if not self.candidates:
            return False
        _write_atomically(path, max(self.candidates).jpeg)
        self.path = path
        return True

    def ranked(self) -> list[_Candidate]:
        return sorted(self.candidates, reverse=True) if self.path is not None else []

    def pictures(self) -> list[np.ndarray]:
        """Small pictures of the candidates, sharpest first, for the face check."""
        return [c.small for c in self.ranked() if c.small is not None]

    def choose(self, eyes_open: list[bool]) -> bool:
        """Rewrite the thumbnail with the sharpest candidate whose face shows open eyes
        (answers in the order of pictures()); True when there was one."""
        for candidate, ok in zip(self.ranked(), eyes_open):
            if ok:
                _write_atomically(self.path, candidate.jpeg)  # type: ignore[arg-type]
                return True
        return False


def choose_thumbnails(pickers: list[ThumbnailPicker], model: bytes,
                      check: Callable[[list[np.ndarray]], list[bool] | None] | None = None) -> None:  # fmt: skip
    """One face check for every part rendered: by `check` (faces.open_eyes where
    MediaPipe is running already), else in a child process."""
    batches = [picker.pictures() for picker in pickers]
    flat = [picture for batch in batches for picture in batch]
    if not flat:
        return
    answers = check(flat) if check is not None else None
    if answers is None:
        answers = in_child(open_eyes, model, flat)
    for picker, batch in zip(pickers, batches):
        picker.choose(answers[: len(batch)])
        answers = answers[len(batch) :]
