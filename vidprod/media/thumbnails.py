"""Pick each part's thumbnail: a sharp frame where the speaker's face shows with open eyes.

While a part renders, every few frames get a sharpness score (variance of the Laplacian
of a small grey copy, ~0.3 ms); the best few are kept as pictures. When the part ends,
faces are looked for in those few only, and the sharpest with open eyes wins (else the
sharpest).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
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


class ThumbnailPicker:
    def __init__(self, every: int, face_finder: Callable[[], FaceFinder | None]) -> None:
        self.every = max(1, every)
        self.face_finder = face_finder
        self.candidates: list[tuple[float, int, np.ndarray]] = []  # min-heap by sharpness
        self.seen = 0

    def offer(self, frame: av.VideoFrame, t_in_part: float, part_length: float) -> None:
        self.seen += 1
        if self.seen % self.every or not EDGE_SKIP <= t_in_part <= part_length - EDGE_SKIP:
            return
        score = sharpness(frame)
        if len(self.candidates) < KEEP or score > self.candidates[0][0]:
            item = (score, self.seen, frame.to_ndarray(format="rgb24"))
            if len(self.candidates) < KEEP:
                heapq.heappush(self.candidates, item)
            else:
                heapq.heapreplace(self.candidates, item)

    def write(self, path: Path) -> bool:
        """Write the chosen picture as JPEG; False when no frame was offered."""
        if not self.candidates:
            return False
        ranked = sorted(self.candidates, reverse=True)
        chosen = ranked[0][2]
        finder = self.face_finder()
        if finder is not None:
            for _, _, rgb in ranked:
                h, w = rgb.shape[:2]
                small = cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
                face = main_face(finder.find(small), w // 2, h // 2)
                if face is not None and face.eyes_open:
                    chosen = rgb
                    break
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(chosen, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return False
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data.tobytes())
        tmp.replace(path)
        return True
