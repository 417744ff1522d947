"""Pick each part's thumbnail: a sharp frame where the speaker's face shows with open eyes.

While a part renders, every few frames get a sharpness score (variance of the Laplacian
of a quarter-size grey copy, ~0.3 ms); the best few are kept as plain copies of their
planes (3 MB at 1080p, no conversion). When the part ends they become JPEGs and quarter-
size pictures, and the sharpest is written at once; when the whole render has ended,
`refine` looks for faces in the kept few and rewrites the thumbnail with the sharpest
one showing open eyes. Converting only at part ends keeps the render's memory peak low,
and doing the face check last keeps MediaPipe out of it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from vidprod.media.faces import FaceFinder, main_face
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
    small: np.ndarray | None = None  # quarter-size RGB, for the face check

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
        self.small = cv2.resize(rgb, (rgb.shape[1] // 4, rgb.shape[0] // 4), interpolation=cv2.INTER_AREA)


def _i420(frame: av.VideoFrame) -> np.ndarray:
    """The planes of a yuv420p frame stacked as OpenCV's I420 layout (one copy)."""
    y, u, v = plane_views(frame)
    height, width = y.shape
    packed = np.empty((height * 3 // 2, width), np.uint8)
    packed[:height] = y
    packed[height:].reshape(-1)[: u.size] = u.reshape(-1)
    packed[height:].reshape(-1)[u.size :] = v.reshape(-1)
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
        if self.seen % self.every or not EDGE_SKIP <= t_in_part <= part_length - EDGE_SKIP:
            return
        score = sharpness(frame)
        if len(self.candidates) >= KEEP and score <= self.candidates[0].score:
            return
        candidate = _Candidate(score, self.seen, _i420(frame))
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

    def refine(self, finder: FaceFinder) -> bool:
        """Rewrite the thumbnail with the sharpest candidate showing a face with open
        eyes; True when one was found."""
        if self.path is None:
            return False
        for candidate in sorted(self.candidates, reverse=True):
            assert candidate.small is not None
            height, width = candidate.small.shape[:2]
            face = main_face(finder.find(candidate.small), width, height)
            if face is not None and face.eyes_open:
                _write_atomically(self.path, candidate.jpeg)
                return True
        return False
