"""Subtitle files for a part: the transcript's words grouped into short cues, with times
relative to the part's start, written as SRT (`srt`) and WebVTT (`webvtt-py`)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import srt
import webvtt

from vidprod.media.speech import Word

# A cue is one readable line: at most this many characters (the common broadcast
# line length), at most this long, and it ends where the speaker pauses or a
# sentence ends.
MAX_CUE_CHARS = 42
MAX_CUE_SECONDS = 5.0
PAUSE_BREAK_SECONDS = 0.6
MIN_CUE_SECONDS = 0.05  # players drop cues that end where they start


@dataclass(frozen=True)
class Cue:
    start: float  # seconds from the part's start
    end: float
    text: str


def words_in(words: Sequence[Word], start: float, end: float) -> list[Word]:
    """The words spoken inside [start, end) (by their middle), times relative to `start`
    and clipped to the part, so a word a cut touches belongs to one part only."""
    inside = []
    for word in words:
        middle = (word.start + word.end) / 2
        if start <= middle < end:
            inside.append(Word(
                word.text,
                max(word.start, start) - start,
                min(word.end, end) - start,
                word.confidence,
            ))  # fmt: skip
    return inside


def cues_for(words: Sequence[Word], start: float, end: float) -> list[Cue]:
    """The part's words grouped into cues; each cue starts when its first word starts
    and ends when its last word ends."""
    cues: list[Cue] = []
    group: list[Word] = []

    def close() -> None:
        text = " ".join(w.text for w in group)
        cue_end = max(group[-1].end, group[0].start + MIN_CUE_SECONDS)
        cues.append(Cue(group[0].start, min(cue_end, end - start), text))
        group.clear()

    for word in words_in(words, start, end):
        if group:
            last = group[-1]
            length = sum(len(w.text) + 1 for w in group) + len(word.text)
            if (
                last.ends_sentence
                or word.start - last.end > PAUSE_BREAK_SECONDS
                or length > MAX_CUE_CHARS
                or word.end - group[0].start > MAX_CUE_SECONDS
            ):
                close()
        group.append(word)
    if group:
        close()
    return cues


def srt_text(cues: Sequence[Cue]) -> str:
    return srt.compose([
        srt.Subtitle(i + 1, timedelta(seconds=c.start), timedelta(seconds=c.end), c.text)
        for i, c in enumerate(cues)
    ])  # fmt: skip


def vtt_text(cues: Sequence[Cue]) -> str:
    document = webvtt.WebVTT(captions=[
        webvtt.Caption(_vtt_time(c.start), _vtt_time(c.end), c.text) for c in cues
    ])  # fmt: skip
    return document.content


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def write_subtitles(words: Sequence[Word], start: float, end: float, mp4: Path) -> tuple[Path, Path]:
    """part-NNN.srt and part-NNN.vtt beside the part's part-NNN.mp4; each file appears
    whole or not at all."""
    cues = cues_for(words, start, end)
    paths = mp4.with_suffix(".srt"), mp4.with_suffix(".vtt")
    for path, text in zip(paths, (srt_text(cues), vtt_text(cues))):
        _write_whole(path, text)
    return paths


def _write_whole(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
