"""Eye contact as an independent gaze estimator sees it (../shared/gazejudge, evaluation
only): every real talking head of ../shared/testmedia/talking_heads rendered with and
without eye contact at default settings, read by both of the judge's models.

Skips where ../shared or onnxruntime is absent. The renders and readings are made once
(bench/gaze_judge.py's steps) and shared by the tests below."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from bench.gaze_judge import AT_LENS, BELOW, CLIPS, JUDGE, MODELS, judge, render

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not JUDGE.is_file() or not CLIPS.is_dir(), reason="needs ../shared/gazejudge and its clips"),
    pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs onnxruntime (dev group)"),
]


@pytest.fixture(scope="module")
def readings(tmp_path_factory) -> dict[str, dict]:
    """Per clip: the judged input pitch (MPIIGaze), the change output minus the render
    without eye contact per model, and the product's report."""
    out: dict[str, dict] = {}
    work = tmp_path_factory.mktemp("judge")
    for clip in sorted(CLIPS.glob("*.mp4")):
        on, off = work / clip.stem / "on", work / clip.stem / "off"
        report = render(clip, on, gaze=True)
        render(clip, off, gaze=False)
        result = judge(clip, on / "part-001.mp4", off / "part-001.mp4")
        out[clip.stem] = {
            "pitch_in": result["mpiigaze"]["pitch_input"],
            "change": {m: result[m]["pitch_change_output_minus_reference"] for m in MODELS},
            "report": report,
        }
        print(clip.stem, out[clip.stem]["pitch_in"], out[clip.stem]["change"], report["summary"])  # type: ignore[index]
    return out


def _below(readings: dict[str, dict]) -> dict[str, dict]:
    return {name: r for name, r in readings.items() if r["pitch_in"] <= BELOW}


def test_the_developer_set_has_readers_and_lens_lookers(readings):
    assert len(_below(readings)) >= 5
    assert sum(r["pitch_in"] > AT_LENS for r in readings.values()) >= 2


def test_people_looking_into_the_lens_are_left_alone(readings):
    for name, r in readings.items():
        if r["pitch_in"] > AT_LENS:
            assert all(abs(r["change"][m]) < 0.5 for m in MODELS), (name, r["change"])
            report = r["report"]
            assert report["frames_corrected"] <= 0.05 * report["frames_seen"], (name, report["summary"])


def test_every_reader_is_turned_towards_the_lens(readings):
    """No reader is left as filmed or turned the wrong way, by either model."""
    for name, r in _below(readings).items():
        assert r["report"]["frames_corrected"] >= 0.4 * r["report"]["frames_seen"], (name, r["report"]["summary"])
        assert all(r["change"][m] > 0 for m in MODELS), (name, r["change"])


@pytest.mark.xfail(strict=True, reason="issue 19's bar is not met yet: see bench/gaze_judge.py's table")
def test_every_reader_reads_as_looking_into_the_lens(readings):
    """Issue 19's bar: every reader moves by at least +2.5° by both models, and +4° on
    average by MPIIGaze."""
    below = _below(readings)
    assert all(r["change"][m] >= 2.5 for r in below.values() for m in MODELS)
    assert sum(r["change"]["mpiigaze"] for r in below.values()) / len(below) >= 4


JUDGE_FILES = ("mpiigaze_resnet_preact", "eth-xgaze_resnet18", "face_landmark_legacy")


def test_the_judge_is_never_imported_by_the_product():
    """The judge (CC BY-NC-SA networks) is for evaluation only: no product module names
    it or its model files, or imports onnxruntime itself (faster-whisper's voice filter
    runs on onnxruntime inside that library, which is not the judge)."""
    root = Path(__file__).resolve().parents[1] / "vidprod"
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "gazejudge" not in text and not any(name in text for name in JUDGE_FILES), path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "onnxruntime" for n in names), path
