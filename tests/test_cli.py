"""The command line as a user runs it: `vidprod process` in a real subprocess, its stderr
read as a terminal (a pty) and as a pipe."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.conftest import shared_media
from vidprod.media.faces import in_child

NATIVE_CHATTER = ("W0000", "INFO: Created TensorFlow Lite", "Logging before InitGoogle")


def _process_command(source: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "vidprod", "process", str(source), "-o", str(out), "--gaze", "--gaze-strength", "1"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "VIDPROD_DATA_DIR": str(tmp_path / "data"), "VIDPROD_OUTPUT_HEIGHT": "640",
            "COLUMNS": "120"}  # fmt: skip


def test_process_in_a_pipe_prints_plain_progress_lines_and_no_mediapipe_chatter(tmp_path):
    source = shared_media("talking_heads/retalking_face_2.mp4")  # a real face: MediaPipe runs
    done = subprocess.run(_process_command(source, tmp_path / "out"), env=_env(tmp_path),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "part-001.mp4").is_file()
    for chatter in NATIVE_CHATTER:
        assert chatter not in done.stderr
    lines = done.stderr.splitlines()
    assert "Finding the natural pauses…" in lines
    assert "Rendering 1 part with eye contact…" in lines
    steps = [line for line in lines if line.startswith("Rendering 1 part with eye contact: ") and "%" in line]
    assert len(steps) >= 3, lines  # a line each tenth
    assert all("× real time" in line and " s left" in line for line in steps[1:])
    assert lines[-1].startswith("Rendering 1 part with eye contact: done in ")
    assert "\x1b[" not in done.stderr  # no terminal codes in a log
    assert "part-001.mp4" in done.stdout and "eye contact:" in done.stdout


def test_process_in_a_terminal_draws_a_progress_bar(tmp_path):
    source = shared_media("talking_heads/retalking_face_2.mp4")
    leader, follower = pty.openpty()
    child = subprocess.Popen(_process_command(source, tmp_path / "out"), env=_env(tmp_path),
                             stdout=subprocess.DEVNULL, stderr=follower)  # fmt: skip
    os.close(follower)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert child.wait(300) == 0
    screen = seen.decode("utf-8", "replace")
    for chatter in NATIVE_CHATTER:
        assert chatter not in screen
    assert "Rendering 1 part with eye contact" in screen
    assert "━" in screen  # rich's bar
    assert "× real time" in screen
    assert "100%" in screen


def _noisy_child() -> str:
    os.write(2, b"W0000 00:00:1.0 123 graph.cc:1] chatter\n")
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    os.write(2, b"E0000 00:00:1.0 123 graph.cc:2] a real native error\n")
    print("a Python warning", file=sys.stderr)
    return "done"


def test_a_mediapipe_child_drops_native_chatter_but_keeps_errors(capfd):
    assert in_child(_noisy_child) == "done"
    err = capfd.readouterr().err
    assert "chatter" not in err and "TensorFlow Lite" not in err
    assert "E0000 00:00:1.0 123 graph.cc:2] a real native error" in err
    assert "a Python warning" in err
