"""What an independent gaze estimator reads of the re-render's two moves, apart (issue 19).

The re-render turns an eye up by moving its iris (the eyeball model) and raising its
upper lid (the iris move plus `uncover`, kept to the iris seen above its centre on a
narrow eye, so the product's own lid-gap reading sees the turn). This runs the
product's GazeCorrector, at default settings, on each reader's source frames with the
iris move and the lid rise scaled apart:

- as rendered (iris 1, lid 1);
- iris only (iris 1, lid 0): the lid stays where it was;
- lid only (iris 0, lid 1): the iris stays, the lid rises as rendered;
- lid 1.5x (iris 1, lid 1.5), which the band's fold limit caps where the skin is short.

and judges ~24 instants of each in memory against the unedited frames: the median change
of pitch per model (MPIIGaze / ETH-XGaze) over the instants the edit changed. In memory,
on source frames, without the render's framing and encode, and only over edited
instants, so the figures sit above `bench/gaze_judge.py`'s (whose medians count the
instants left alone as 0); compare variants within one run.

The judge (../shared/gazejudge/judge.py) is for evaluation only, never a dependency of
vidprod: it is loaded here from ../shared, with onnxruntime from the dev group.

    uv run python bench/gaze_response.py [CLIP_STEM ...]   # default: the six readers
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidprod.media.faces import face_model_bytes
from vidprod.media.gaze import corrector
from vidprod.media.gaze.corrector import GazeCorrector, GazeSettings, with_look_ahead
from vidprod.media.gaze.rerender import EyeEdit, edit_eye

JUDGE = ROOT.parent / "shared" / "gazejudge" / "judge.py"
CLIPS = ROOT.parent / "shared" / "testmedia" / "talking_heads"
READERS = ("hdtf_RD_Radio2_000", "liveportrait_d18", "liveportrait_d20", "liveportrait_d9_glasses",
           "retalking_face_1_vfr", "retalking_face_2")  # fmt: skip
VARIANTS = {"as rendered": (1.0, 1.0), "iris only": (1.0, 0.0), "lid only": (0.0, 1.0), "lid 1.5x": (1.0, 1.5)}
MODELS = ("mpiigaze", "ethxgaze")
INSTANTS = 24
BLINK_EAR = 0.12  # the judge's eye aspect ratio under which an instant is a blink


def load_judge():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gazejudge", JUDGE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Judge(list(MODELS))


def copied(frame: av.VideoFrame) -> av.VideoFrame:
    """A fresh frame with the same pixels and time (the corrector edits in place), and
    without the source's colour tags, as every figure here is read from such copies:
    a BT.709-tagged source converts to BGR differently from its untagged copy."""
    copy = av.VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
    copy.pts, copy.time_base = frame.pts, frame.time_base
    return copy


def corrected(frames: list[av.VideoFrame], model: bytes, iris: float, lid: float,
              picked: set[int]) -> tuple[dict[int, np.ndarray], str]:  # fmt: skip
    """The picked frames after the product's correction with its two moves scaled."""

    def scaled(y: np.ndarray, u: np.ndarray, v: np.ndarray, edit: EyeEdit) -> int:
        return edit_eye(y, u, v, replace(edit, shift=edit.shift * iris, lift=edit.lift * lid))

    corrector.edit_eye = scaled  # the corrector's call into the re-render, for this run
    try:
        out = {}
        with GazeCorrector(model, GazeSettings()) as gaze:
            # primed and announced ahead as the render does
            copies = [copied(frame) for frame in frames]
            for i, result in enumerate(gaze(f) for f in with_look_ahead(copies, gaze)):
                if i in picked:
                    out[i] = result.to_ndarray(format="bgr24")
            summary = gaze.report()["summary"]
    finally:
        corrector.edit_eye = edit_eye
    return out, summary


def main() -> None:
    if not JUDGE.exists():
        sys.exit(f"{JUDGE} not found: this bench needs ../shared/gazejudge")
    stems = sys.argv[1:] or list(READERS)
    judge, model = load_judge(), face_model_bytes()
    print(f"median pitch change (degrees) over edited instants, {' / '.join(MODELS)}")
    print(f"{'clip':26s} " + " ".join(f"{name:>16s}" for name in VARIANTS))
    for stem in stems:
        with av.open(str(CLIPS / f"{stem}.mp4")) as container:
            frames = list(container.decode(video=0))
        picked = set(np.linspace(5, len(frames) - 1, INSTANTS).astype(int).tolist())
        unedited = {i: copied(frames[i]).to_ndarray(format="bgr24") for i in picked}
        before = {i: judge.rate(unedited[i]) for i in picked}
        cells, summary = [], ""
        for iris, lid in VARIANTS.values():
            after, summary = corrected(frames, model, iris, lid, picked)
            change: dict[str, list[float]] = {m: [] for m in MODELS}
            for i in sorted(picked):
                if np.array_equal(after[i], unedited[i]):
                    continue  # left alone
                a, b = before[i], judge.rate(after[i])
                if a is None or b is None or a["ear"] < BLINK_EAR:
                    continue
                for m in MODELS:
                    change[m].append(b[m][2] - a[m][2])  # pitch in camera coordinates
            n = len(change[MODELS[0]])
            cells.append(" / ".join(f"{np.median(change[m]):+.2f}" if n else "  -  " for m in MODELS) + f" n{n}")
        print(f"{stem:26s} " + " ".join(f"{c:>16s}" for c in cells))
        print(f"{'':26s} ({summary})")
    judge.close()


if __name__ == "__main__":
    main()
