"""Our render (gaze off) against a plain ffmpeg transcode with the same encoder settings,
on the same input, in one run; and the render's peak memory for 1080p and 4K input.

Needs the ffmpeg command (Debian: apt-get install ffmpeg) for the reference and to make
the inputs. Prints wall times, frames per second, the ratio ours/ffmpeg (target <= 1.05)
and peak RSS (target <= 350 MB). Runs alternate between the two and the ratio is
reported as best time over best time (this machine's timings vary by ~10 % run to run)
and as the median of the per-run ratios.

    uv run python bench/render.py [--seconds 60] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = [
    "-c:v", "libx264", "-preset", "veryfast", "-crf", "24", "-profile:v", "high",
    "-level", "4.1", "-bf", "2", "-g", "60", "-x264-params", "mbtree=0",
    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2",
    "-movflags", "+faststart",
]  # fmt: skip


# Voiced bursts at syllable rate with a 0.6 s pause every 7 s: a talking head's sound,
# so cut planning takes its usual path (a pause in each window).
SPEECH = "0.3*sin(2*PI*180*t)*(0.55+0.45*sin(2*PI*4*t))*gt(mod(t,7),0.6)"


def make_input(path: Path, size: str, seconds: int) -> Path:
    """A moving test picture with detail (testsrc2) and speech-like sound."""
    if not path.exists():
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=s={size}:r=30",
             "-f", "lavfi", "-i", f"aevalsrc='{SPEECH}':s=48000",
             "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "16",
             "-g", "30", "-c:a", "aac", "-movflags", "+faststart", str(path)],
            check=True,
        )  # fmt: skip
    return path


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of a child process."""
    seconds, rss, _cpu = timed_cpu(command, env)
    return seconds, rss


def peak_rss(pid: int | str = "self") -> int:
    """A process's peak RSS in bytes: VmHWM, which counts this program's own memory only.
    Not getrusage's ru_maxrss: Linux carries that over fork and exec from the parent, so
    a render started from bench/gaze.py after its in-process landmark pass (~520 MB)
    read as ~520 MB whatever it used (gaze off included)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1]) * 1024


def timed_cpu(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (bytes) and CPU seconds (user + system) of a child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"{command[:3]} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def ours_cold(source: Path, out: Path) -> tuple[float, int]:
    """`vidprod process` from a cold start: interpreter, imports (MediaPipe ~1.4 s), job."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "VIDPROD_DATA_DIR": str(out.parent / "data")}
    return timed([sys.executable, "-m", "vidprod", "process", str(source), "-o", str(out)], env)


def ours(source: Path, out: Path) -> tuple[float, int, int]:
    """Jobs as the server's worker runs them: one process renders the input twice. The
    second job is timed (imports, MediaPipe included, were paid by the first, as in a
    running server); RSS is the process's peak after the first job and after both."""
    shutil.rmtree(out, ignore_errors=True)
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(source), str(out)],
        check=True, capture_output=True, text=True,
    )
    seconds, first_rss, rss = result.stdout.split()
    return float(seconds), int(first_rss), int(rss)


def child(source: Path, out: Path) -> None:
    from fractions import Fraction

    from vidprod.cli import return_freed_memory_to_the_system
    from vidprod.media.cuts import CutRules, plan_file
    from vidprod.media.faces import face_model_bytes
    from vidprod.media.render import RenderOptions, render_parts

    return_freed_memory_to_the_system()  # as `vidprod serve` does at start
    model = face_model_bytes()

    def job(folder: Path) -> float:
        started = time.perf_counter()
        plan = plan_file(source, CutRules(limit=Fraction(60)))
        options = RenderOptions(rate=plan.rate, face_model=model)
        render_parts(source, plan.parts, folder, options)
        return time.perf_counter() - started

    job(out / "first")
    first_rss = peak_rss()
    seconds = job(out / "second")
    print(seconds, first_rss, peak_rss())


def reference(source: Path, out: Path, scale: str | None = None) -> tuple[float, int]:
    extra = ["-vf", f"scale={scale}"] if scale else []
    return timed(["ffmpeg", "-v", "error", "-y", "-threads", "0", "-i", str(source), *extra,
                  *REFERENCE, str(out)])  # fmt: skip


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep inputs in this folder between runs")
    args = parser.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("needs the ffmpeg command for the reference: apt-get install ffmpeg")
    work = args.keep or Path(tempfile.mkdtemp(prefix="vidprod-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        hd = make_input(work / f"talk-1080x1920-{args.seconds}s.mp4", "1080x1920", args.seconds)
        uhd = make_input(work / "talk-2160x3840-10s.mp4", "2160x3840", 10)
        frames = args.seconds * 30
        print(f"input: 1080x1920 30 fps, {args.seconds} s ({frames} frames), speech-like AAC; "
              f"{os.cpu_count()} cores")
        ratios, ref_times, our_times = [], [], []
        for run in range(1, args.runs + 1):
            ref_s, ref_rss = reference(hd, work / "ref.mp4")
            our_s, first_rss, our_rss = ours(hd, work / "ours")
            ratios.append(our_s / ref_s)
            ref_times.append(ref_s)
            our_times.append(our_s)
            print(f"run {run}: ffmpeg {ref_s:.1f} s ({frames / ref_s:.1f} fps, RSS {ref_rss / 1e6:.0f} MB)"
                  f" | ours {our_s:.1f} s ({frames / our_s:.1f} fps; peak RSS {first_rss / 1e6:.0f} MB"
                  f" after one job, {our_rss / 1e6:.0f} MB after two)"
                  f" | ratio ours/ffmpeg {our_s / ref_s:.3f}")
        ratios.sort()
        print(f"ratio ours/ffmpeg: best times {min(our_times) / min(ref_times):.3f}, median "
              f"{ratios[len(ratios) // 2]:.3f}, range {ratios[0]:.3f}-{ratios[-1]:.3f} (target <= 1.05)")
        cold_s, cold_rss = ours_cold(hd, work / "cold")
        print(f"cold `vidprod process` (interpreter and imports included): {cold_s:.1f} s, "
              f"peak RSS {cold_rss / 1e6:.0f} MB")
        ref_s, _ = reference(uhd, work / "ref4k.mp4", scale="1080:1920")
        our_s, first_rss, our_rss = ours(uhd, work / "ours4k")
        print(f"4K input (2160x3840, 10 s, downscaled to 1080x1920): ffmpeg {ref_s:.1f} s | ours "
              f"{our_s:.1f} s, peak RSS {first_rss / 1e6:.0f} MB after one job, {our_rss / 1e6:.0f} MB"
              f" after two | ratio {our_s / ref_s:.3f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
