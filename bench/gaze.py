"""Eye-contact cost at 1080x1920: landmarks and re-render per frame (p50/p95), and the
whole render with gaze on against a plain ffmpeg transcode with the same encoder
settings, in one run; peak RSS of the render and of the landmark child process.

The input is the animated astronaut fixture (tests/gaze_fixtures.py) scaled to
1080x1920 and looped, so the face and its eyes (~74 px wide) are real photo pixels,
with speech-like sound.
Also our render with gaze off, and CPU seconds of each (ffmpeg, our process plus its
landmark child): on a busy machine the CPU ratio is the steadier figure. The three
run back to back in each of several rounds, and the ratio is the median round's.
Needs the ffmpeg command for the reference.

    uv run python bench/gaze.py [--seconds 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.render import REFERENCE, SPEECH, peak_rss, timed_cpu


def make_input(path: Path, seconds: int) -> Path:
    """The looped fixture with bench/render.py's speech-like sound: a talking head's
    track, so cut planning takes its usual path (without sound it falls back to a
    search for scene changes, decoding the video a second time)."""
    import av
    import cv2
    import numpy as np

    from tests.gaze_fixtures import astronaut_fixture

    fixture = astronaut_fixture()
    pictures = path.with_name("pictures.mp4")
    with av.open(str(pictures), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"crf": "16", "preset": "ultrafast", "g": "30"})
        stream.width, stream.height, stream.pix_fmt = 1080, 1920, "yuv420p"
        frames = fixture.frames + fixture.frames[::-1]  # loop without a jump
        for i in range(seconds * 30):
            rgb = cv2.resize(frames[i % len(frames)], (1080, 1920), interpolation=cv2.INTER_CUBIC)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(pictures), "-f", "lavfi", "-i",
                    f"aevalsrc='{SPEECH}':s=48000", "-t", str(seconds), "-c:v", "copy", "-c:a", "aac",
                    str(path)], check=True)  # fmt: skip
    pictures.unlink()
    return path


def reader_control(corrector):  # type: ignore[no-untyped-def]
    """The fixture's astronaut reads with her irises moved down under still lids, unlike
    a real reader: read her as a reader 5° below the lens (tests/gaze_fixtures.ReadingControl),
    so every open-eye frame is corrected, as a real reader's would be."""
    from tests.gaze_fixtures import ReadingControl

    return ReadingControl(corrector.settings.strength, pitch=-5.0)


def per_frame(source: Path) -> dict:
    """The hook alone on every decoded frame, in this process."""
    import av
    import numpy as np

    from vidprod.media.faces import face_model_bytes
    from vidprod.media.gaze import GazeCorrector, GazeSettings

    total = []
    with GazeCorrector(face_model_bytes(), GazeSettings(landmark_interval=1)) as corrector, \
            av.open(str(source)) as container:  # fmt: skip
        corrector.control = reader_control(corrector)
        for frame in container.decode(video=0):
            frame = frame.reformat(format="yuv420p")
            started = time.perf_counter()
            corrector(frame)
            total.append((time.perf_counter() - started) * 1e3)
        report = corrector.report()
    total = total[5:]  # MediaPipe's warm-up
    return {"total_p50": float(np.median(total)), "total_p95": float(np.percentile(total, 95)),
            "report": report}  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def render_child(source: Path, out: Path, gaze: bool) -> None:
    """A job's render as the worker runs it: gaze on (landmarks in a child process, as
    in a job) or off."""
    import resource

    from vidprod.cli import return_freed_memory_to_the_system
    from vidprod.media.cuts import CutRules, plan_file
    from vidprod.media.faces import face_model_bytes
    from vidprod.media.gaze import GazeCorrector, GazeSettings
    from vidprod.media.render import RenderOptions, render_parts

    return_freed_memory_to_the_system()
    model = face_model_bytes()
    started, cpu_started = time.perf_counter(), time.process_time()
    plan = plan_file(source, CutRules(limit=Fraction(60)))
    corrector = GazeCorrector(model, GazeSettings(), child=True) if gaze else None
    if corrector is not None:
        corrector.control = reader_control(corrector)
    child_rss = child_cpu = 0.0
    try:
        options = RenderOptions(rate=plan.rate, face_model=model, frame_hook=corrector)
        render_parts(source, plan.parts, out, options)
        if corrector is not None and corrector._landmarker is not None:
            pid = corrector._landmarker.pid
            child_rss = peak_rss(pid)
            child_cpu = _cpu_seconds(pid)
    finally:
        if corrector is not None:
            corrector.close()
    seconds = time.perf_counter() - started
    # waited-for children: the landmark process (joined by close()) and the thumbnails'
    # short-lived face check
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - cpu_started + children.ru_utime + children.ru_stime
    rss = peak_rss()
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss": rss, "child_rss": child_rss, "child_cpu": child_cpu,
                      "report": corrector.report() if corrector else None}))  # fmt: skip


def ours(source: Path, out: Path, gaze: bool) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", str(source), str(out), "gaze" if gaze else "plain"],
                            check=True, capture_output=True, text=True)  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        render_child(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "gaze")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="ffmpeg, gaze off, gaze on, this many times over")
    args = parser.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("needs the ffmpeg command for the reference: apt-get install ffmpeg")
    work = Path(tempfile.mkdtemp(prefix="vidprod-gaze-bench-"))
    try:
        source = make_input(work / "face-1080x1920.mp4", args.seconds)
        frames = args.seconds * 30
        print(f"input: 1080x1920 30 fps, {args.seconds} s ({frames} frames), a real face, speech-like AAC;"
              f" {os.cpu_count()} cores")
        hook = per_frame(source)
        rep = hook["report"]
        print(f"gaze per frame, landmarks on every frame (hook alone, in process): p50 {hook['total_p50']:.1f} ms,"
              f" p95 {hook['total_p95']:.1f} ms | landmarks p50 {rep['landmark_ms']['p50']} p95"
              f" {rep['landmark_ms']['p95']} ms | re-render p50 {rep['rerender_ms']['p50']} p95"
              f" {rep['rerender_ms']['p95']} ms | eyes {rep['eye_width_px']} px,"
              f" {rep['frames_corrected']} of {rep['frames_seen']} corrected")  # fmt: skip
        # ffmpeg, gaze off and gaze on back to back in each round: a shared machine's
        # speed drifts by 10-20 % over minutes, and a ratio across rounds takes that in
        rounds = []
        for _ in range(args.rounds):
            ref_s, _ref_rss, ref_cpu = timed_cpu(["ffmpeg", "-v", "error", "-y", "-threads", "0", "-i", str(source),
                                                  *REFERENCE, str(work / "ref.mp4")])  # fmt: skip
            plain = ours(source, work / "plain", gaze=False)
            gaze = ours(source, work / "gaze", gaze=True)
            rounds.append((ref_s, ref_cpu, plain, gaze))
            print(f"round {len(rounds)}: ffmpeg {ref_s:.1f} s ({frames / ref_s:.1f} fps), {ref_cpu:.1f} s CPU")
            for name, run in (("our render, gaze off", plain), ("our render, gaze on ", gaze)):
                print(f"  {name} {run['seconds']:.1f} s ({frames / run['seconds']:.1f} fps), {run['cpu']:.1f} s CPU"
                      f" | ratio {run['seconds'] / ref_s:.3f} wall, {run['cpu'] / ref_cpu:.3f} CPU"
                      f" (planning and thumbnails included)", flush=True)  # fmt: skip
        ratios = sorted(g["seconds"] / r for r, _c, _p, g in rounds)
        cpu_ratios = sorted(g["cpu"] / c for _r, c, _p, g in rounds)
        print(f"target: gaze on <= 1.3 x ffmpeg -> median {ratios[len(ratios) // 2]:.3f} wall"
              f" (rounds {', '.join(f'{r:.3f}' for r in ratios)}), median {cpu_ratios[len(cpu_ratios) // 2]:.3f} CPU")
        report = gaze["report"]
        together = (gaze["rss"] + gaze["child_rss"]) / 1e6
        print(f"peak RSS (last round): render {plain['rss'] / 1e6:.0f} MB with gaze off, {gaze['rss'] / 1e6:.0f} MB with gaze on"
              f" + landmark child {gaze['child_rss'] / 1e6:.0f} MB (its CPU {gaze['child_cpu']:.1f} s)"
              f" = {together:.0f} MB together (goal <= 700)")  # fmt: skip
        print(f"gaze in the render: landmarks every {report['landmark_interval']} frame(s) | landmarks (child CPU + picture)"
              f" p50 {report['landmark_ms']['p50']} ms | render waited for landmarks p50"
              f" {report['landmark_wait_ms']['p50']} p95 {report['landmark_wait_ms']['p95']} ms |"
              f" re-render p50 {report['rerender_ms']['p50']} ms | {report['frames_corrected']} of"
              f" {report['frames_seen']} frames corrected")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
