"""How long cut planning takes on a 10-minute 1080x1920 video with speech-like audio
(target < 3 s): one demux of the video track and one decode of the audio.

Needs the ffmpeg command to make the input (Debian: apt-get install ffmpeg).

    uv run python bench/plan.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.render import SPEECH
from vidprod.media.cuts import CutRules, plan_file


def make_input(work: Path, minutes: int) -> Path:
    minute = work / "minute.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=1080x1920:r=30",
         "-f", "lavfi", "-i", f"aevalsrc='{SPEECH}':s=48000", "-t", "60",
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-g", "60",
         "-c:a", "aac", "-b:a", "128k", str(minute)],
        check=True,
    )  # fmt: skip
    listing = work / "list.txt"
    listing.write_text("".join(f"file '{minute}'\n" for _ in range(minutes)))
    long = work / "long.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
         "-c", "copy", "-movflags", "+faststart", str(long)],
        check=True,
    )  # fmt: skip
    return long


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("needs the ffmpeg command to make the input: apt-get install ffmpeg")
    work = Path(tempfile.mkdtemp(prefix="vidprod-bench-"))
    try:
        source = make_input(work, args.minutes)
        size = source.stat().st_size / 1e6
        for run in (1, 2):
            started = time.perf_counter()
            plan = plan_file(source, CutRules(limit=Fraction(60)))
            seconds = time.perf_counter() - started
            reasons = [p.reason for p in plan.parts]
            print(f"run {run}: planned {args.minutes} min ({size:.0f} MB) in {seconds:.2f} s "
                  f"(target < 3 s): {len(plan.parts)} parts, cut at "
                  + ", ".join(f"{float(p.end):.1f} s ({p.reason})" for p in plan.parts[:-1]))
            assert reasons.count("pause") == len(plan.parts) - 1, reasons
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
