"""Where an eye is, in MediaPipe face-mesh terms, and the frame each eye is measured in.

Per eye: `ux` runs along the corner line oriented to image right, `uy` is perpendicular
to it pointing down, `w` is the corner distance; offsets are in eye widths, so one
number means the same on a 30 px and a 150 px eye.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Both eyes listed from image left to image right (the person's right eye first).
# Corners, lid contours along ux, iris centre and its 4 ring points, and the lid pairs
# whose distance gives the eye's openness.
EYES = (
    {
        "corners": (33, 133),
        "upper": (33, 246, 161, 160, 159, 158, 157, 173, 133),
        "lower": (33, 7, 163, 144, 145, 153, 154, 155, 133),
        "iris": 468,
        "ring": (469, 470, 471, 472),
        "open_pairs": ((160, 144), (158, 153)),
    },
    {
        "corners": (362, 263),
        "upper": (362, 398, 384, 385, 386, 387, 388, 466, 263),
        "lower": (362, 382, 381, 380, 374, 373, 390, 249, 263),
        "iris": 473,
        "ring": (474, 475, 476, 477),
        "open_pairs": ((385, 380), (387, 373)),
    },
)

LID_SAMPLES = 48

# Adult eyes vary little: the visible iris is ~11.7 mm across and the eyeball turns
# about a centre ~12 mm behind the cornea, so an iris's radius in pixels gives the
# eyeball's, and turning the eye by θ moves the iris centre by R·sin θ in the picture.
IRIS_DIAMETER_MM = 11.7
EYEBALL_RADIUS_MM = 12.0


def eyeball_radius(iris_radius: float) -> float:
    """The eyeball's radius (px) for an iris of this radius (px)."""
    return iris_radius * 2 * EYEBALL_RADIUS_MM / IRIS_DIAMETER_MM


@dataclass(frozen=True)
class EyeFrame:
    """One eye's coordinate frame and landmarks, in full-resolution pixels."""

    origin: np.ndarray  # the corner at image left
    ux: np.ndarray
    uy: np.ndarray
    w: float
    iris: np.ndarray  # iris centre
    r: float  # iris radius (mean distance to the ring points)
    upper: np.ndarray  # (LID_SAMPLES,) lid offset along uy at xs (negative: above)
    lower: np.ndarray
    xs: np.ndarray  # (LID_SAMPLES,) positions along ux, 0..w
    openness: float  # lid gap / w from the two open_pairs

    @property
    def iris_local(self) -> tuple[float, float]:
        d = self.iris - self.origin
        return float(d @ self.ux), float(d @ self.uy)

    def to_image(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Eye-frame (x along ux, y along uy) to image pixels, shape (..., 2)."""
        return self.origin + x[..., None] * self.ux + y[..., None] * self.uy


_BOX5 = np.ones(5) / 5


def _smooth5(values: np.ndarray) -> np.ndarray:
    # edge padding by hand: np.pad takes 20x as long on 48 values
    padded = np.concatenate([values[:1], values[:1], values, values[-1:], values[-1:]])
    return np.convolve(padded, _BOX5, mode="valid")


def _lid_curve(points: np.ndarray, origin: np.ndarray, ux: np.ndarray, uy: np.ndarray,
               xs: np.ndarray) -> np.ndarray:  # fmt: skip
    d = points - origin
    px, py = d @ ux, d @ uy
    order = np.argsort(px)
    curve = np.interp(xs, px[order], py[order])
    curve = _smooth5(curve)
    curve[0] = curve[-1] = 0.0  # lids meet at the corners
    return curve


@dataclass(frozen=True)
class EyeReading:
    """What the gates and the gaze estimate read from one eye's raw landmarks, without
    the lid curves an edit needs (half the cost of an EyeFrame)."""

    w: float
    gaze: tuple[float, float]  # iris offset from the corner midpoint (horizontal, vertical), in eye widths
    openness: float
    upper_gap: float  # how far the upper lid is above the iris centre, in iris radii


# The upper lid points over the iris (the middle of the contour): the lowest of them
# is the lid's margin there.
_UPPER_MIDDLE = slice(2, 7)


def _gaze(iris: np.ndarray, origin: np.ndarray, ux: np.ndarray, uy: np.ndarray, w: float) -> tuple[float, float]:
    d = iris - origin
    x, y = float(d @ ux), float(d @ uy)
    return (x - w / 2) / w, y / w


def _iris_radius(points: np.ndarray, eye: dict, iris: np.ndarray) -> float:
    return float(np.mean(np.hypot(*(points[list(eye["ring"])] - iris).T)))


def _axes(points: np.ndarray, eye: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The eye's image-left corner, ux, uy and width."""
    a, b = points[eye["corners"][0]], points[eye["corners"][1]]
    if a[0] > b[0]:
        a, b = b, a
    axis = b - a
    w = float(np.hypot(*axis))
    ux = axis / max(w, 1e-6)
    return a.astype(np.float64), ux, np.array([-ux[1], ux[0]]), w


def _openness(points: np.ndarray, eye: dict, w: float) -> float:
    gaps = [np.hypot(*(points[p] - points[q])) for p, q in eye["open_pairs"]]
    return float(np.mean(gaps)) / max(w, 1e-6)


def eye_readings(points: np.ndarray) -> tuple[EyeReading, EyeReading]:
    """Both eyes' width, gaze, openness and upper lid gap from 478 face-mesh points (pixels)."""
    readings = []
    for eye in EYES:
        a, ux, uy, w = _axes(points, eye)
        iris = points[eye["iris"]].astype(np.float64)
        r = max(_iris_radius(points, eye, iris), 1e-6)
        upper = (iris @ uy - np.min(points[list(eye["upper"][_UPPER_MIDDLE])] @ uy)) / r
        readings.append(EyeReading(w, _gaze(iris, a, ux, uy, w), _openness(points, eye, w), float(upper)))
    return readings[0], readings[1]


def eye_frames(points: np.ndarray) -> tuple[EyeFrame, EyeFrame]:
    """Both eyes' frames from 478 face-mesh points (pixels)."""
    frames = []
    for eye in EYES:
        a, ux, uy, w = _axes(points, eye)
        xs = np.linspace(0.0, w, LID_SAMPLES)
        iris = points[eye["iris"]].astype(np.float64)
        r = _iris_radius(points, eye, iris)
        frames.append(
            EyeFrame(
                origin=a, ux=ux, uy=uy, w=w, iris=iris, r=r,
                upper=_lid_curve(points[list(eye["upper"])], a, ux, uy, xs),
                lower=_lid_curve(points[list(eye["lower"])], a, ux, uy, xs),
                xs=xs, openness=_openness(points, eye, w),
            )
        )  # fmt: skip
    return frames[0], frames[1]


def eye_region_points(points: np.ndarray) -> list[np.ndarray]:
    """Each eye's contour (upper and lower lid landmarks), for region masks."""
    return [points[list(eye["upper"]) + list(eye["lower"])] for eye in EYES]


def head_angles(matrix: np.ndarray | None) -> tuple[float, float]:
    """(yaw, pitch) in degrees from MediaPipe's facial transformation matrix; 0 facing
    the camera."""
    if matrix is None:
        return 0.0, 0.0
    rot = np.asarray(matrix, dtype=np.float64)[:3, :3]
    yaw = np.degrees(np.arcsin(np.clip(-rot[2, 0], -1, 1)))
    pitch = np.degrees(np.arctan2(rot[2, 1], rot[2, 2]))
    return float(yaw), float(pitch)
