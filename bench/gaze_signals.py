"""Candidate per-person gaze-pitch signals against an independent judge (issue 19).

The product's estimate (control.gaze_pitch_degrees: where the upper lid sits above the
iris centre, in iris radii) under-reads some readers. This measures, per clip of
../shared/testmedia/talking_heads, what else the FaceLandmarker the product already runs
can give (blendshapes eyeLookDown/Up, head pitch from the transformation matrix, the
lower lid, where the iris sits between the lids) next to the judge's median pitch on
the ORIGINAL clip, and fits each candidate's calibration leave-one-out (fit on 7 clips,
predict the 8th), since 8 clips is a tiny set and the product meets unseen ones.

    uv run python bench/gaze_signals.py [--judge-cache DIR] [--frames-cache DIR]

What a perfect estimate would give (docs/eye-contact.md): render a reader with
`vidprod process CLIP -o OUT --gaze --notes-below-degrees <the judge's angle>` and with
`--no-gaze`, then `judge.py compare CLIP OUT/part-001.mp4 --reference NOGAZE/part-001.mp4`.

The judge (../shared/gazejudge/judge.py, evaluation only, never a dependency of
vidprod) runs in its own process with onnxruntime from the dev group; its answer per
clip is cached as JSON in --judge-cache. Per-frame landmark readings are cached as
.npz in --frames-cache (delete to re-measure).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from vidprod.media.faces import face_model_bytes
from vidprod.media.gaze.control import BLINK_CLOSED, POSE_LIMIT, gaze_pitch_degrees
from vidprod.media.gaze.geometry import EYES, eye_frames, eye_readings, head_angles
from vidprod.media.gaze.lids import apply_fit, corner_taper, fit_lid
from vidprod.media.gaze.landmarks import landmark_picture

ROOT = Path(__file__).resolve().parents[1]
JUDGE = ROOT.parent / "shared" / "gazejudge" / "judge.py"
CLIPS = ROOT.parent / "shared" / "testmedia" / "talking_heads"
SHAPES = ("eyeLookDownLeft", "eyeLookDownRight", "eyeLookUpLeft", "eyeLookUpRight",
          "eyeBlinkLeft", "eyeBlinkRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight")  # fmt: skip
# Degrees per iris radius of iris-centre travel, from the eyeball model: turning by θ
# moves the iris centre by R·sin θ with R = 2·12/11.7 iris radii, so ~0.036 radii a degree
# near the lens. Only a lid that stays still reads this slope (the lower lid moves little).
EYEBALL_SLOPE = 180 / np.pi / (2 * 12.0 / 11.7)
# per-frame columns
COLUMNS = ("upper_gap", "lower_gap", "iris_between", "vertical", "openness", "yaw", "head_pitch",
           "look_down", "look_up", "blink", "squint", "wide", "eye_w", "iris_r", "limbus",
           "fit_upper_gap", "fit_lower_gap")  # fmt: skip


def _landmarker(model: bytes):  # type: ignore[no-untyped-def]
    from mediapipe.tasks.python import BaseOptions, vision

    # as the product's VideoLandmarker (VIDEO mode, 3 faces), plus blendshapes
    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=model), running_mode=vision.RunningMode.VIDEO,
        num_faces=3, output_facial_transformation_matrixes=True, output_face_blendshapes=True,
    )  # fmt: skip
    return vision.FaceLandmarker.create_from_options(options)


def _eye_row(points: np.ndarray) -> dict[str, float]:
    """Lid and iris readings of both eyes (means), in iris radii where they are gaps."""
    readings = eye_readings(points)
    lower_gap, between, radii = [], [], []
    for eye in EYES:
        a, b = points[eye["corners"][0]], points[eye["corners"][1]]
        ux = (b - a) / np.hypot(*(b - a))
        uy = np.array([-ux[1], ux[0]]) * (1 if ux[0] > 0 else -1)
        iris = points[eye["iris"]]
        r = float(np.mean(np.hypot(*(points[list(eye["ring"])] - iris).T)))
        top = float(np.min(points[list(eye["upper"][2:7])] @ uy))
        bottom = float(np.max(points[list(eye["lower"][2:7])] @ uy))
        lower_gap.append((bottom - iris @ uy) / r)
        between.append((iris @ uy - top) / max(bottom - top, 1e-6))
        radii.append(r)
    return {
        "upper_gap": float(np.mean([e.upper_gap for e in readings])),
        "lower_gap": float(np.mean(lower_gap)),
        "iris_between": float(np.mean(between)),
        "vertical": float(np.mean([e.gaze[1] for e in readings])),
        "openness": float(np.mean([e.openness for e in readings])),
        "eye_w": float(np.mean([e.w for e in readings])),
        "iris_r": float(np.mean(radii)),
    }


def limbus_centre(luma: np.ndarray, points: np.ndarray, eye: dict) -> float | None:
    """The iris centre read from the image instead of MediaPipe's iris point: a circle
    fitted to the limbus's left and right edges (strongest horizontal luminance step
    either side of the iris, on rows between the lids), as (centre - corner midpoint)
    along uy in fitted iris radii (negative: above the corner line). None when fewer
    than 4 rows show both edges or the circle is implausible (dark irises, shadow)."""
    import cv2

    a, b = points[eye["corners"][0]], points[eye["corners"][1]]
    if a[0] > b[0]:
        a, b = b, a
    ux = (b - a) / np.hypot(*(b - a))
    uy = np.array([-ux[1], ux[0]])
    iris = points[eye["iris"]]
    r = float(np.mean(np.hypot(*(points[list(eye["ring"])] - iris).T)))
    step = 0.25
    xs, ys = np.arange(-1.8 * r, 1.8 * r, step), np.arange(-1.3 * r, 1.3 * r, step)
    gx_, gy_ = np.meshgrid(xs, ys)
    grid = (iris + gx_[..., None] * ux + gy_[..., None] * uy).astype(np.float32)
    patch = cv2.remap(luma, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR)
    patch = cv2.GaussianBlur(patch, (0, 0), max(0.5, 0.06 * r / step))
    gx = np.gradient(patch, axis=1)

    def lid(indices: tuple[int, ...]) -> np.ndarray:
        q = points[list(indices)] - iris
        return np.interp(xs, q @ ux, q @ uy)

    upper, lower = lid(eye["upper"]), lid(eye["lower"])
    middle = np.abs(xs) < 0.3 * r
    left = np.where((xs > -1.6 * r) & (xs < -0.3 * r))[0]
    right = np.where((xs < 1.6 * r) & (xs > 0.3 * r))[0]
    rows = []
    for j, y in enumerate(ys):
        if y < upper[middle].max() + 1 or y > lower[middle].min() - 1:
            continue
        kl, kr = left[np.argmin(gx[j, left])], right[np.argmax(gx[j, right])]
        if -gx[j, kl] < 0.7 or gx[j, kr] < 0.7:
            continue
        if not (upper[kl] < y < lower[kl] and upper[kr] < y < lower[kr]):
            continue  # an edge under a lid is the lid's, not the limbus's
        rows.append((y, xs[kl], xs[kr]))
    if len(rows) < 4:
        return None
    y, xl, xr = np.array(rows).T
    # half chord² + (y - cy)² = R²  ->  half² + y² = 2·cy·y + k, linear in cy, k
    (cy, k), *_ = np.linalg.lstsq(np.column_stack([2 * y, np.ones_like(y)]), ((xr - xl) / 2) ** 2 + y**2, rcond=None)
    radius2 = k + cy**2
    if radius2 <= 0 or not (0.6 * r < np.sqrt(radius2) < 1.5 * r) or abs(cy) > 0.8 * np.sqrt(radius2):
        return None
    return float((iris + cy * uy - (a + b) / 2) @ uy / np.sqrt(radius2))


def _fitted_gaps(luma: np.ndarray, points: np.ndarray) -> dict[str, float]:
    """The upper and lower lid gaps (iris radii from MediaPipe's iris centre, over the
    iris) with the lids fitted to the image as the edit fits them (lids.fit_lid, one
    frame): MediaPipe's contour sits 2-5 px outside the real margins."""
    gaps: dict[str, list[float]] = {"fit_upper_gap": [], "fit_lower_gap": []}
    for eye in eye_frames(points):
        taper = corner_taper(eye.xs, eye.w)
        x, y = eye.iris_local
        over = np.abs(eye.xs - x) < 0.5 * eye.r
        upper = apply_fit(eye.upper, fit_lid(luma, eye, True), taper)
        lower = apply_fit(eye.lower, fit_lid(luma, eye, False), taper)
        gaps["fit_upper_gap"].append((y - upper[over].min()) / eye.r)
        gaps["fit_lower_gap"].append((lower[over].max() - y) / eye.r)
    return {k: float(np.mean(v)) for k, v in gaps.items()}


def measure_clip(clip: Path, model: bytes) -> np.ndarray:
    """One row of COLUMNS per frame with a face (the largest one)."""
    import mediapipe as mp

    landmarker = _landmarker(model)
    rows = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            t = float(frame.time) if frame.time is not None else i / 30
            rgb, factor = landmark_picture(frame)
            luma = frame.to_ndarray(format="gray").astype(np.float32)
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
            result = landmarker.detect_for_video(image, int(round(t * 1000)) + i)  # strictly increasing
            if not result.face_landmarks:
                continue
            h, w = rgb.shape[:2]
            faces = [np.array([(p.x * w, p.y * h) for p in lm]) * factor for lm in result.face_landmarks]
            k = int(np.argmax([np.ptp(f[:, 0]) for f in faces]))
            shapes = {c.category_name: c.score for c in result.face_blendshapes[k]}
            yaw, pitch = head_angles(np.asarray(result.facial_transformation_matrixes[k]))
            row = _eye_row(faces[k])
            limbus = [limbus_centre(luma, faces[k], eye) for eye in EYES]
            row.update(_fitted_gaps(luma, faces[k]))
            row["limbus"] = np.nan if None in limbus else float(np.mean(limbus))  # type: ignore[arg-type]
            row.update(
                yaw=yaw, head_pitch=pitch,
                look_down=(shapes["eyeLookDownLeft"] + shapes["eyeLookDownRight"]) / 2,
                look_up=(shapes["eyeLookUpLeft"] + shapes["eyeLookUpRight"]) / 2,
                blink=(shapes["eyeBlinkLeft"] + shapes["eyeBlinkRight"]) / 2,
                squint=(shapes["eyeSquintLeft"] + shapes["eyeSquintRight"]) / 2,
                wide=(shapes["eyeWideLeft"] + shapes["eyeWideRight"]) / 2,
            )  # fmt: skip
            rows.append([row[c] for c in COLUMNS])
    landmarker.close()
    return np.array(rows)


def judged(clip: Path, cache: Path) -> dict:
    out = cache / f"judge_{clip.stem}.json"
    if not out.is_file() or not out.read_text().strip():
        done = subprocess.run([sys.executable, str(JUDGE), str(clip), "--model", "both", "--n", "60"],
                              check=True, capture_output=True, text=True)  # fmt: skip
        out.write_text(done.stdout)
    return json.loads(out.read_text().strip().splitlines()[-1])


def open_facing(rows: np.ndarray) -> np.ndarray:
    """The frames the product's estimate learns from: eyes open (openness against the
    clip's median, as the census), head within POSE_LIMIT."""
    col = {c: i for i, c in enumerate(COLUMNS)}
    openness = rows[:, col["openness"]]
    keep = openness >= BLINK_CLOSED * np.median(openness)
    keep &= (np.abs(rows[:, col["yaw"]]) < POSE_LIMIT) & (np.abs(rows[:, col["head_pitch"]]) < POSE_LIMIT)
    return rows[keep]


def loo(x: np.ndarray, y: np.ndarray, slope: float | None = None) -> np.ndarray:
    """Held-out predictions of y from x (columns), least squares with an intercept, each
    clip predicted by a fit on the others. With `slope` fixed (one column), only the
    intercept is fitted."""
    x = x.reshape(len(y), -1)
    pred = np.empty_like(y)
    for i in range(len(y)):
        m = np.arange(len(y)) != i
        if slope is not None:
            pred[i] = slope * x[i, 0] + np.mean(y[m] - slope * x[m, 0])
        else:
            a = np.column_stack([x[m], np.ones(m.sum())])
            coef, *_ = np.linalg.lstsq(a, y[m], rcond=None)
            pred[i] = np.append(x[i], 1.0) @ coef
    return pred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=CLIPS)
    parser.add_argument("--judge-cache", type=Path, default=Path("/tmp/gaze_signals"))
    parser.add_argument("--frames-cache", type=Path, default=Path("/tmp/gaze_signals"))
    args = parser.parse_args()
    if not JUDGE.is_file() or not args.folder.is_dir():
        sys.exit(f"needs {JUDGE} and {args.folder}")
    args.judge_cache.mkdir(parents=True, exist_ok=True)
    args.frames_cache.mkdir(parents=True, exist_ok=True)
    model = face_model_bytes()
    clips = sorted(args.folder.glob("*.mp4"))
    col = {c: i for i, c in enumerate(COLUMNS)}
    table = []
    for clip in clips:
        cached = args.frames_cache / f"frames_{clip.stem}.npz"
        if cached.is_file():
            rows = np.load(cached)["rows"]
        else:
            rows = measure_clip(clip, model)
            np.savez(cached, rows=rows)
        j = judged(clip, args.judge_cache)
        kept = open_facing(rows)
        mean = {c: float(np.nanmean(kept[:, col[c]])) for c in COLUMNS}
        sd = {c: float(np.nanstd(kept[:, col[c]])) for c in COLUMNS}
        mean["limbus_n"] = int(np.sum(np.isfinite(kept[:, col["limbus"]])))
        mean["product"] = float(np.mean([gaze_pitch_degrees(g) for g in kept[:, col["upper_gap"]]]))
        table.append((clip.stem, j["mpiigaze"]["pitch"], j["ethxgaze"]["pitch"], len(rows), len(kept), mean, sd))

    print("per clip (means over open-eye, facing frames; judge = median pitch on the original clip, 60 instants)")
    print(f"{'clip':26s} {'MPII':>6s} {'ETH':>6s} {'n':>4s} {'prod°':>6s} {'upgap':>6s} {'logap':>6s} {'betw':>5s}"
          f" {'vert':>6s} {'open':>5s} {'hpitch':>6s} {'lkDn':>5s} {'(sd)':>5s} {'lkUp':>5s} {'blink':>5s} {'sqnt':>5s} {'limbus':>6s} {'(n)':>4s}"
          f" {'fitUp':>6s} {'fitLo':>6s}")  # fmt: skip
    for stem, mpii, eth, n, k, m, s in table:
        print(f"{stem[:26]:26s} {mpii:+6.2f} {eth:+6.2f} {k:4d} {m['product']:+6.2f} {m['upper_gap']:6.3f}"
              f" {m['lower_gap']:6.3f} {m['iris_between']:5.3f} {m['vertical']:+6.3f} {m['openness']:5.3f}"
              f" {m['head_pitch']:+6.1f} {m['look_down']:5.3f} {s['look_down']:5.3f} {m['look_up']:5.3f}"
              f" {m['blink']:5.3f} {m['squint']:5.3f} {m['limbus']:+6.3f} {m['limbus_n']:4d}"
              f" {m['fit_upper_gap']:6.3f} {m['fit_lower_gap']:6.3f}")  # fmt: skip

    print("\nblendshapes: do they move, and with what? (within each clip, open-eye facing frames)")
    for clip in clips:
        kept = open_facing(np.load(args.frames_cache / f"frames_{clip.stem}.npz")["rows"])
        r = {c: float(np.corrcoef(kept[:, col["look_down"]], kept[:, col[c]])[0, 1])
             for c in ("vertical", "upper_gap", "lower_gap", "openness")}  # fmt: skip
        print(f"{clip.stem[:26]:26s} lookDown sd {np.std(kept[:, col['look_down']]):.3f}; corr with landmark iris"
              f" offset {r['vertical']:+.2f}, upper gap {r['upper_gap']:+.2f}, lower gap {r['lower_gap']:+.2f},"
              f" openness {r['openness']:+.2f}")  # fmt: skip

    y = np.array([t[1] for t in table])  # MPIIGaze: the model whose zero is the lens
    names = [t[0] for t in table]
    feats = {c: np.array([t[5][c] for t in table]) for c in [*COLUMNS, "product"]}
    lens = [i for i, t in enumerate(table) if t[1] > -1.5]
    candidates = {
        "product (fixed, not refitted)": feats["product"],
        "product refit: upper_gap, LOO": loo(feats["upper_gap"], y),
        "upper_gap, slope 20 fixed, LOO offset": loo(feats["upper_gap"], y, slope=20.0),
        "blendshape lookDown-lookUp, LOO": loo(feats["look_down"] - feats["look_up"], y),
        "upper_gap + lookDown, LOO": loo(np.column_stack([feats["upper_gap"], feats["look_down"]]), y),
        "upper_gap + lower_gap, LOO": loo(np.column_stack([feats["upper_gap"], feats["lower_gap"]]), y),
        "iris between lids, LOO": loo(feats["iris_between"], y),
        "lower_gap, LOO": loo(feats["lower_gap"], y),
        f"lower_gap, eyeball slope {EYEBALL_SLOPE:.0f} fixed, LOO offset": loo(feats["lower_gap"], y, slope=EYEBALL_SLOPE),
        "mean of product and lower_gap(fixed slope)": (feats["product"] + loo(feats["lower_gap"], y, slope=EYEBALL_SLOPE)) / 2,
        "upper_gap + head pitch, LOO": loo(np.column_stack([feats["upper_gap"], feats["head_pitch"]]), y),
        "iris offset (eye widths), LOO": loo(feats["vertical"], y),
        "limbus-fit iris centre (image), LOO": loo(feats["limbus"], y),
        "fitted upper lid gap, LOO": loo(feats["fit_upper_gap"], y),
        "fitted upper lid gap, slope 20 fixed, LOO": loo(feats["fit_upper_gap"], y, slope=20.0),
        "fitted lower lid gap, LOO": loo(feats["fit_lower_gap"], y),
        f"fitted lower lid gap, slope {EYEBALL_SLOPE:.0f} fixed, LOO": loo(feats["fit_lower_gap"], y, slope=EYEBALL_SLOPE),
        "fitted upper + lower gaps, LOO": loo(np.column_stack([feats["fit_upper_gap"], feats["fit_lower_gap"]]), y),
        "mean of upper (20) and fitted lower (28), LOO": (
            loo(feats["upper_gap"], y, slope=20.0) + loo(feats["fit_lower_gap"], y, slope=EYEBALL_SLOPE)) / 2,
        "upper_gap + openness, LOO": loo(np.column_stack([feats["upper_gap"], feats["openness"]]), y),
    }
    print("\nheld-out prediction of the judge's MPIIGaze pitch (degrees); error = prediction - judge")
    print(f"{'candidate':40s} " + " ".join(f"{n[:9]:>9s}" for n in names) + "   MAE  readersMAE  lens>-1.5")
    print(f"{'judge MPIIGaze':40s} " + " ".join(f"{v:+9.2f}" for v in y))
    for label, pred in candidates.items():
        err = pred - y
        readers = [i for i in range(len(y)) if i not in lens]
        ok = all(pred[i] > -1.5 for i in lens)
        print(f"{label:40s} " + " ".join(f"{v:+9.2f}" for v in pred)
              + f" {np.mean(np.abs(err)):5.2f} {np.mean(np.abs(err[readers])):10.2f}  {'yes' if ok else 'NO'}")  # fmt: skip


if __name__ == "__main__":
    main()
