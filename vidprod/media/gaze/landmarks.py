"""Face landmarks for every frame: MediaPipe FaceLandmarker in VIDEO mode (478 points
with iris, plus the head's transformation matrix) on a half-size RGB copy.

Half size keeps the landmarks within ~1 px of full size on a 1080x1920 frame (the
landmark model sees a 256 px face crop either way) and halves the conversion cost.

`ChildLandmarker` runs the same thing in a spawned process: MediaPipe's ~110 MB then
leave with the render instead of staying in the server for good (see media/faces.py).
Only the small RGB copy crosses the pipe (~1.5 MB, well under a millisecond).
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from typing import Protocol

import av
import numpy as np

from vidprod.media.faces import Face, main_face

# The image given to MediaPipe is at most this many pixels on its longer side.
LANDMARK_LONG_SIDE = 960


@dataclass(frozen=True)
class FaceLandmarks:
    points: np.ndarray  # (478, 2) full-resolution pixels
    matrix: np.ndarray | None  # 4x4 facial transformation matrix


class Landmarker(Protocol):
    def detect(self, rgb: np.ndarray, timestamp_ms: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Normalised (478, 2) points and matrix of every face in an RGB picture."""
        ...

    def close(self) -> None: ...


def landmark_picture(frame: av.VideoFrame) -> tuple[np.ndarray, float]:
    """The frame as a downscaled RGB array, and the factor back to full size."""
    scale = min(1.0, LANDMARK_LONG_SIDE / max(frame.width, frame.height))
    width = max(2, round(frame.width * scale / 2) * 2)
    height = max(2, round(frame.height * scale / 2) * 2)
    rgb = frame.reformat(width=width, height=height, format="rgb24",
                         interpolation="AREA").to_ndarray()  # fmt: skip
    return rgb, frame.width / width


def main_speaker(faces: list[tuple[np.ndarray, np.ndarray | None]], width: int, height: int
                 ) -> FaceLandmarks | None:  # fmt: skip
    """The largest, most central face, in full-resolution pixels."""
    if not faces:
        return None
    scale = np.array([width, height], np.float64)
    candidates = [Face(points * scale) for points, _ in faces]
    chosen = main_face(candidates, width, height)
    assert chosen is not None
    index = next(i for i, face in enumerate(candidates) if face is chosen)
    return FaceLandmarks(chosen.points.astype(np.float64), faces[index][1])


class VideoLandmarker:
    """FaceLandmarker in VIDEO mode (tracking between frames), in this process."""

    def __init__(self, model: bytes, max_faces: int = 3) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=model),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=max_faces,
            output_facial_transformation_matrixes=True,
        )
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._last_ms = -1

    def detect(self, rgb: np.ndarray, timestamp_ms: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        import mediapipe as mp

        timestamp_ms = max(timestamp_ms, self._last_ms + 1)  # VIDEO mode needs increasing times
        self._last_ms = timestamp_ms
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._landmarker.detect_for_video(image, timestamp_ms)
        matrices = result.facial_transformation_matrixes or []
        faces = []
        for i, landmarks in enumerate(result.face_landmarks):
            points = np.array([(p.x, p.y) for p in landmarks], np.float64)
            faces.append((points, np.asarray(matrices[i]) if i < len(matrices) else None))
        return faces

    def close(self) -> None:
        self._landmarker.close()


def _serve(connection, model: bytes, max_faces: int) -> None:  # type: ignore[no-untyped-def]
    from vidprod.media.faces import _lighten_child

    _lighten_child()
    landmarker = VideoLandmarker(model, max_faces)
    connection.send("ready")
    try:
        while True:
            message = connection.recv()
            if message is None:
                break
            shape, data, timestamp_ms = message
            rgb = np.frombuffer(data, np.uint8).reshape(shape)
            connection.send(landmarker.detect(rgb, timestamp_ms))
    finally:
        landmarker.close()


class ChildLandmarker:
    """VideoLandmarker in a spawned child process, one request at a time."""

    def __init__(self, model: bytes, max_faces: int = 3) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_end, model, max_faces), daemon=True)
        self._process.start()
        child_end.close()
        if not self._connection.poll(60) or self._connection.recv() != "ready":
            self.close()
            raise RuntimeError("the landmark process did not start")

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def detect(self, rgb: np.ndarray, timestamp_ms: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        rgb = np.ascontiguousarray(rgb)
        self._connection.send((rgb.shape, rgb.tobytes(), timestamp_ms))
        return self._connection.recv()

    def close(self) -> None:
        try:
            self._connection.send(None)
        except (OSError, ValueError):
            pass
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()
