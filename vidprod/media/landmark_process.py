"""The landmark process's side of gaze.landmarks.ChildLandmarker: MediaPipe's
FaceLandmarker in VIDEO mode (and in IMAGE mode for pictures outside the tracking) and
the loop that serves it.

Outside the gaze package on purpose: a spawned process imports the module of its
target and every package above it, and this one imports no PyAV (the gaze package
does), which keeps PyAV's FFmpeg libraries out of that process: 17 MB less RSS
(1080x1920, while tracking: 144 against 161 MB).
"""

from __future__ import annotations

import os

import numpy as np

from vidprod.media.faces import FaceFinder, create_landmarker, open_eyes_with


class VideoLandmarker:
    """FaceLandmarker in VIDEO mode (tracking between frames), in this process.

    It tracks up to three faces even when there is one: tracking fewer than it may,
    MediaPipe runs its face detector on every frame (~1 ms of ~7), but with
    num_faces=1 it also smooths the landmarks itself, a filter that cannot be reset
    at a cut and that lags blinks and saccades (tried: the frames just after a cut
    went uncorrected, a glasses rim was touched, a look-away's return went unseen)."""

    def __init__(self, model: bytes, max_faces: int = 3) -> None:
        self._landmarker = create_landmarker(model, max_faces, video=True, matrix=True)
        self._last_ms = -1
        self._model, self._max_faces = model, max_faces
        self._alone = None  # IMAGE mode, for still(); made when first asked (~36 MB)

    def detect(self, rgb: np.ndarray, timestamp_ms: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        import mediapipe as mp

        timestamp_ms = max(timestamp_ms, self._last_ms + 1)  # VIDEO mode needs increasing times
        self._last_ms = timestamp_ms
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        return _faces(self._landmarker.detect_for_video(image, timestamp_ms))

    def still(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """detect() on a picture on its own (IMAGE mode), leaving the tracking alone: for
        frames between tracked ones, which VIDEO mode cannot take (its times only rise)."""
        import mediapipe as mp

        if self._alone is None:
            self._alone = create_landmarker(self._model, self._max_faces, matrix=True)
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        return _faces(self._alone.detect(image))

    def close(self) -> None:
        self._landmarker.close()
        if self._alone is not None:
            self._alone.close()


def _faces(result) -> list[tuple[np.ndarray, np.ndarray | None]]:  # type: ignore[no-untyped-def]
    """Normalised points and matrix (if asked for) of each face in a FaceLandmarker result."""
    matrices = result.facial_transformation_matrixes or []
    faces = []
    for i, landmarks in enumerate(result.face_landmarks):
        points = np.array([(p.x, p.y) for p in landmarks], np.float64)
        faces.append((points, np.asarray(matrices[i]) if i < len(matrices) else None))
    return faces


def serve_landmarks(connection, model: bytes, max_faces: int, pictures, slot_count: int) -> None:  # type: ignore[no-untyped-def]
    """The landmark process: pictures from `slot_count` equal slots of the shared
    `pictures` buffer, named by messages on `connection`; answers in order."""
    import time

    from vidprod.media.faces import _lighten_child

    _lighten_child()
    # One core: MediaPipe splits each inference over every core, and beside a busy
    # encoder its threads wait on each other. Alone on one core a frame's landmarks
    # take as long and ~10 % less CPU (6.8 against 7.6 ms on 2 cores); the encoder's
    # threads are free to move to the other cores.
    if hasattr(os, "sched_setaffinity"):  # Linux
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[-1:])
    landmarker: VideoLandmarker | None = VideoLandmarker(model, max_faces)
    slots = np.frombuffer(pictures, np.uint8).reshape(slot_count, -1)
    finder: FaceFinder | None = None  # for open_eyes, made when first asked
    connection.send("ready")
    try:
        while True:
            message = connection.recv()
            if message is None:
                break
            if message[0] == "open_eyes":
                # Asked once the render has passed its last frame (the thumbnails' check):
                # the tracker (with its model for stills, if a fast move loaded it) goes
                # before the image-mode model loads, or both sit in memory at once, this
                # process's peak (197 against 162 MB at 1080x1920).
                if landmarker is not None:
                    landmarker.close()
                    landmarker = None
                if finder is None:
                    finder = FaceFinder(model)
                connection.send(open_eyes_with(finder, message[1]))
                continue
            if landmarker is None:  # pictures after open_eyes: tracking starts afresh
                landmarker = VideoLandmarker(model, max_faces)
            slot, shape, timestamp_ms = message
            rgb = slots[slot, : int(np.prod(shape))].reshape(shape)
            started = time.process_time()
            faces = landmarker.detect(rgb, timestamp_ms) if timestamp_ms is not None else landmarker.still(rgb)
            connection.send((faces, (time.process_time() - started) * 1e3))
    finally:
        if landmarker is not None:
            landmarker.close()
        if finder is not None:
            finder.close()
