"""Eye contact as an independent gaze estimator sees it: each clip rendered with and
without eye contact (`vidprod process`, default settings), then
../shared/gazejudge/judge.py compare INPUT OUTPUT --reference NO_GAZE (both models).

Prints per clip the judged input pitch, the change output minus reference per model,
the product's own report, and which of issue 19's bars it misses:
- below the lens (MPIIGaze input <= -2.5°): change >= +2.5° by both models; their mean
  >= +4° (MPIIGaze);
- at the lens (MPIIGaze input > -1.5°): |change| < 0.5° by both, >= 95 % of frames
  left alone.

The judge is for evaluation only (never a dependency of vidprod): it runs in its own
process, with onnxruntime from the dev group.

    uv run python bench/gaze_judge.py [FOLDER]   # default ../shared/testmedia/talking_heads
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JUDGE = ROOT.parent / "shared" / "gazejudge" / "judge.py"
CLIPS = ROOT.parent / "shared" / "testmedia" / "talking_heads"
BELOW, AT_LENS = -2.5, -1.5
MODELS = ("mpiigaze", "ethxgaze")


def render(clip: Path, out: Path, gaze: bool) -> dict | None:
    subprocess.run([sys.executable, "-m", "vidprod.cli", "process", str(clip), "-o", str(out),
                    "--gaze" if gaze else "--no-gaze"], check=True, capture_output=True)  # fmt: skip
    report = out / "gaze" / "report.json"
    return json.loads(report.read_text()) if gaze else None


def judge(clip: Path, output: Path, reference: Path) -> dict:
    done = subprocess.run([sys.executable, str(JUDGE), "compare", str(clip), str(output), "--reference",
                           str(reference), "--model", "both"], check=True, capture_output=True, text=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def misses(pitch_in: float, changes: dict[str, float], report: dict) -> list[str]:
    left_alone = 1 - report["frames_corrected"] / max(1, report["frames_seen"])
    if pitch_in <= BELOW:
        return [f"{m} {changes[m]:+.2f} < +2.5" for m in MODELS if changes[m] < 2.5]
    if pitch_in > AT_LENS:
        out = [f"{m} |{changes[m]:+.2f}| >= 0.5" for m in MODELS if abs(changes[m]) >= 0.5]
        return out + ([f"only {left_alone:.0%} of frames left alone"] if left_alone < 0.95 else [])
    return []


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else CLIPS
    if not JUDGE.is_file() or not folder.is_dir():
        sys.exit(f"needs {JUDGE} and {folder}")
    below: list[float] = []
    failed = 0
    with tempfile.TemporaryDirectory() as work:
        for clip in sorted(folder.glob("*.mp4")):
            on, off = Path(work) / clip.stem / "on", Path(work) / clip.stem / "off"
            report = render(clip, on, gaze=True)
            render(clip, off, gaze=False)
            result = judge(clip, on / "part-001.mp4", off / "part-001.mp4")
            pitch_in = result["mpiigaze"]["pitch_input"]
            changes = {m: result[m]["pitch_change_output_minus_reference"] for m in MODELS}
            if pitch_in <= BELOW:
                below.append(changes["mpiigaze"])
            missed = misses(pitch_in, changes, report)  # type: ignore[arg-type]
            failed += bool(missed)
            print(f"{clip.stem:28s} judged {pitch_in:+6.2f}°  change MPIIGaze {changes['mpiigaze']:+5.2f}°"
                  f" ETH-XGaze {changes['ethxgaze']:+5.2f}° | {report['frames_corrected']}/{report['frames_seen']}"  # type: ignore[index]
                  f" frames corrected, mean {report['mean_correction_degrees']}°"  # type: ignore[index]
                  f" | {'MISSES: ' + '; '.join(missed) if missed else 'ok'}", flush=True)  # fmt: skip
    mean = sum(below) / len(below) if below else float("nan")
    print(f"below-lens clips: mean MPIIGaze change {mean:+.2f}° (bar >= +4) | {failed} clip(s) miss a bar")
    sys.exit(1 if failed or mean < 4 else 0)


if __name__ == "__main__":
    main()
