"""Face landmarks for every frame: MediaPipe FaceLandmarker in VIDEO mode (478 points
with iris, plus the head's transformation matrix) on a half-size RGB copy.

Half size keeps the landmarks within ~1 px of full size on a 1080x1920 frame (the
landmark model sees a 256 px face crop either way) and costs a quarter to convert.

`ChildLandmarker` runs the same thing in a spawned process: MediaPipe's ~110 MB then
leave with the render instead of staying in the server for good (see media/faces.py),
and the landmarks of the next frame run there while this process edits and encodes
the current one. That process's side is media/landmark_process.py.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import av
import cv2
import numpy as np

from vidprod.media.gaze.geometry import EyeReading, eye_readings
from vidprod.media.landmark_process import VideoLandmarker, serve_landmarks
from vidprod.media.planes import plane_views

# The image given to MediaPipe is at most this many pixels on its longer side.
LANDMARK_LONG_SIDE = 960


@dataclass(frozen=True)
class FaceLandmarks:
    points: np.ndarray  # (478, 2) full-resolution pixels
    matrix: np.ndarray | None  # 4x4 facial transformation matrix
    # Set on frames whose points are interpolated: the lid openness to judge blinks by
    # (the smaller of the two measured neighbours', so a blink starting between them
    # is never edited).
    openness: tuple[float, float] | None = None
    measured: bool = True  # False: interpolated between measured frames

    @cached_property
    def readings(self) -> tuple[EyeReading, EyeReading]:
        """Both eyes' width, gaze and openness, worked out once (a measured face is read
        again when the frames either side of it are interpolated)."""
        return eye_readings(self.points)


class Landmarker(Protocol):
    def detect(self, rgb: np.ndarray, timestamp_ms: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Normalised (478, 2) points and matrix of every face in an RGB picture."""
        ...

    def still(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """The same for a picture on its own, outside the tracking."""
        ...

    def close(self) -> None: ...


# BT.601 limited-range YCbCr to RGB, what swscale applies by default: a 3x4 affine
# (the last column the offsets) for cv2.transform over merged Y, U, V planes.
_Y, _C = 255 / 219, 255 / 224
_YUV_TO_RGB = np.array([[_Y, 0.0, 1.402 * _C], [_Y, -0.344136 * _C, -0.714136 * _C], [_Y, 1.772 * _C, 0.0]])
_YUV_TO_RGB = np.hstack([_YUV_TO_RGB, -(_YUV_TO_RGB @ [[16], [128], [128]])]).astype(np.float32)


def landmark_picture(frame: av.VideoFrame) -> tuple[np.ndarray, float]:
    """The frame as a downscaled RGB array, and the factor back to full size.

    A yuv420p frame is resized plane by plane with OpenCV and converted in one affine
    step: 1.1 ms at 1080x1920 where swscale's scale-and-convert takes 4.7 (~7 under the
    encoder's load), and at half size the chroma planes are the picture's size already.
    Its pixels differ from swscale's by ~1.5 levels (chroma siting), which moves the
    landmarks within MediaPipe's own noise; the correction holds still between
    saccades, so that noise does not reach the iris."""
    scale = min(1.0, LANDMARK_LONG_SIDE / max(frame.width, frame.height))
    width = max(2, round(frame.width * scale / 2) * 2)
    height = max(2, round(frame.height * scale / 2) * 2)
    if frame.format.name != "yuv420p":
        rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
        return rgb, frame.width / width
    planes = []
    for plane in plane_views(frame):
        if plane.shape != (height, width):
            shrink = plane.shape[0] > height
            plane = cv2.resize(plane, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        planes.append(plane)
    return cv2.transform(cv2.merge(planes), _YUV_TO_RGB), frame.width / width


# Pictures in flight to the landmark process: the render announces frames up to
# render.LOOK_AHEAD ahead of the one it edits, and a dropped frame may still be queued.
PICTURE_SLOTS = 5
SLOT_BYTES = LANDMARK_LONG_SIDE * LANDMARK_LONG_SIDE * 3
ANSWER_TIMEOUT = 20  # seconds; one frame takes ~10 ms, so only a stuck child is this slow


class ChildLandmarker:
    """VideoLandmarker in a spawned child process. Pictures go through shared memory
    (one of PICTURE_SLOTS), so `submit` returns at once and the child works while this
    process edits and encodes; `collect` returns the answers in submission order."""

    def __init__(self, model: bytes, max_faces: int = 3) -> None:
        context = multiprocessing.get_context("spawn")
        self._pictures = context.RawArray("B", PICTURE_SLOTS * SLOT_BYTES)
        self._slots = np.frombuffer(self._pictures, np.uint8).reshape(PICTURE_SLOTS, SLOT_BYTES)
        self._connection, child_end = context.Pipe()
        self._process = context.Process(target=serve_landmarks,
                                        args=(child_end, model, max_faces, self._pictures, PICTURE_SLOTS),
                                        daemon=True)  # fmt: skip
        self._process.start()
        child_end.close()
        self._submitted = 0
        self._in_flight = 0
        self.last_cpu_ms = 0.0  # the child's CPU time for the last answer collected
        if not self._connection.poll(60) or self._connection.recv() != "ready":
            self.close()
            raise RuntimeError("the landmark process did not start")

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def submit(self, rgb: np.ndarray, timestamp_ms: int | None) -> None:
        """A picture to track at `timestamp_ms`, or, with None, to read on its own."""
        if self._in_flight >= PICTURE_SLOTS:
            raise RuntimeError("collect an answer before submitting more pictures")
        if rgb.size > SLOT_BYTES:
            raise ValueError("picture larger than a landmark slot")
        slot = self._submitted % PICTURE_SLOTS
        self._slots[slot, : rgb.size] = rgb.reshape(-1)
        self._connection.send((slot, rgb.shape, timestamp_ms))
        self._submitted += 1
        self._in_flight += 1

    def collect(self) -> list[tuple[np.ndarray, np.ndarray | None]]:
        if not self._in_flight:
            raise RuntimeError("nothing submitted")
        if not self._connection.poll(ANSWER_TIMEOUT):
            raise RuntimeError(f"the landmark process gave no answer in {ANSWER_TIMEOUT} s")
        faces, self.last_cpu_ms = self._connection.recv()
        self._in_flight -= 1
        return faces

    def detect(self, rgb: np.ndarray, timestamp_ms: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        while self._in_flight:
            self.collect()
        self.submit(rgb, timestamp_ms)
        return self.collect()

    def still(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """VideoLandmarker.still in the child; the answers in flight are collected first."""
        if self._in_flight:
            raise RuntimeError("collect the answers in flight before asking for a still")
        self.submit(rgb, None)
        return self.collect()

    def open_eyes(self, pictures: list[np.ndarray]) -> list[bool]:
        """faces.open_eyes in this process's child, whose MediaPipe is loaded already
        (a fresh process for it costs ~0.4 s at the end of a render). For after the last
        picture: the child drops its tracker first (pictures after this track afresh)."""
        while self._in_flight:
            self.collect()
        self._connection.send(("open_eyes", pictures))
        if not self._connection.poll(ANSWER_TIMEOUT + len(pictures)):
            raise RuntimeError("the landmark process gave no answer on open eyes")
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
