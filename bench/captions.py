"""Transcription speed and memory: a 60 s clip of known speech (espeak-ng reading a
paragraph, repeated) transcribed by the child process the jobs use.

Prints the real-time fraction (transcription time / audio time; goal <= 0.2 on 2 cores)
with and without the child's start (Python, CTranslate2 and the model load), the child's
peak RSS (all of it is extra: goal <= 250 MB), the word error rate, and the render time
with burned-in captions against without (1080x1920 parts; goal <= 1.05).

Needs espeak-ng (Debian: apt-get install espeak-ng).

    uv run python bench/captions.py [--seconds 60] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jiwer  # noqa: E402
import numpy as np  # noqa: E402

from tests.clips import AUDIO_RATE, make_clip, spoken  # noqa: E402
from tests.test_captions import NORMALISE, TEXT  # noqa: E402
from vidprod.media.speech import transcribe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vidprod-bench-captions-") as work:
        folder = Path(work)
        voice = spoken(TEXT, folder)
        repeats = int(np.ceil(args.seconds * AUDIO_RATE / len(voice)))
        signal = np.concatenate([voice] * repeats)[: int(args.seconds * AUDIO_RATE)]
        clip = make_clip(folder / "talk.mp4", seconds=args.seconds, size=(360, 640), voice=signal)
        reference = " ".join([TEXT] * repeats)
        print(f"{args.seconds:.0f} s of espeak-ng speech, {os.cpu_count()} cores, {args.runs} runs")
        results = []
        for run in range(args.runs):
            started = time.monotonic()
            result = transcribe(clip)
            wall = time.monotonic() - started
            results.append((wall, result))
            print(f"  run {run + 1}: {wall:.2f} s wall ({result.load_seconds:.2f} s start and model load,"
                  f" {result.transcribe_seconds:.2f} s transcribing), child peak RSS"
                  f" {result.child_peak_rss_mb:.0f} MB, {len(result.words)} words")
        best_wall = min(w for w, _ in results)
        best_work = min(r.transcribe_seconds for _, r in results)
        peak = max(r.child_peak_rss_mb for _, r in results)
        heard = " ".join(w.text for w in results[0][1].words)
        # The clip ends mid-paragraph: compare against the words spoken by then.
        spoken_words = reference.split()[: len(heard.split()) + 2]
        error_rate = jiwer.wer(" ".join(spoken_words), heard, reference_transform=NORMALISE,
                               hypothesis_transform=NORMALISE)  # fmt: skip
        print(f"real-time fraction: {best_work / args.seconds:.3f} transcribing (goal <= 0.2),"
              f" {best_wall / args.seconds:.3f} with the child's start")
        print(f"extra peak RSS (the larger of the two children): {peak:.0f} MB (goal <= 250 MB)")
        print(f"word error rate: {error_rate:.3f}")
        render_ratio(clip, results[0][1].words, folder, args.runs)


def render_ratio(clip: Path, words: list, folder: Path, runs: int) -> None:
    from vidprod.media.burnin import CaptionBurner
    from vidprod.media.cuts import CutRules, plan_file
    from vidprod.media.render import RenderOptions, render_parts

    plan = plan_file(clip, CutRules())
    times: dict[str, list[float]] = {"without": [], "with": []}
    for run in range(runs):  # alternating, best of each
        for name in ("without", "with"):
            overlay = CaptionBurner(words) if name == "with" else None
            options = RenderOptions(rate=plan.rate, thumbnails=False, overlay=overlay)
            started = time.monotonic()
            render_parts(clip, plan.parts, folder / f"{name}-{run}", options)
            times[name].append(time.monotonic() - started)
    best = {k: min(v) for k, v in times.items()}
    print(f"render with captions {best['with']:.1f} s, without {best['without']:.1f} s:"
          f" ratio {best['with'] / best['without']:.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
