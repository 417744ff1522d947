"""One cheap pass over the source before rendering: every video frame's time and the
audio loudness, the facts cut planning needs.

Video packets are only demuxed (not decoded); audio is decoded and downmixed to 16 kHz
mono, reduced to one RMS level per 10 ms. A 10 min file takes well under a second.
Being a full pass over the file, this is also where damage that appeared after the
upload is caught: a cut-short packet or frames missing from the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidprod.media.probe import InputLimits, InvalidMedia, damaged, video_stream

LOUDNESS_RATE = 16000
HOP_SECONDS = 0.01
HOP = int(LOUDNESS_RATE * HOP_SECONDS)

# Rates kept when the source holds them steadily; anything else becomes 30 fps.
KEPT_RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001),
              Fraction(30), Fraction(60000, 1001), Fraction(60)]
DEFAULT_RATE = Fraction(30)


@dataclass(frozen=True)
class Timeline:
    """Presentation times of every video frame, and when the last one stops showing."""

    frame_times: list[Fraction]
    end: Fraction

    @property
    def start(self) -> Fraction:
        return self.frame_times[0]

    def output_rate(self) -> Fraction:
        """A standard rate this video holds steadily (24, 25, 30, 60 and their NTSC
        variants; 48 and 50 halve cleanly), or 30 fps for variable-rate video."""
        if len(self.frame_times) < 3:
            return DEFAULT_RATE
        steps = np.diff(np.array([float(t) for t in self.frame_times]))
        median = float(np.median(steps))
        if median <= 0 or np.mean(np.abs(steps - median) > 0.1 * median) > 0.02:
            return DEFAULT_RATE
        rate = 1 / median
        if rate > 45:  # 48 and 50 fps halve cleanly to 24 and 25
            for candidate in (Fraction(24), Fraction(25)):
                if abs(rate / (2 * candidate) - 1) < 0.005:
                    return candidate
        closest = min(KEPT_RATES, key=lambda c: abs(rate / c - 1))
        return closest if abs(rate / closest - 1) < 0.005 else DEFAULT_RATE


@dataclass(frozen=True)
class Loudness:
    """RMS level in dBFS of each 10 ms of audio, the first one starting at `start`."""

    db: np.ndarray
    start: float
    hop: float = HOP_SECONDS

    def time_of(self, index: int) -> float:
        return self.start + index * self.hop


@dataclass(frozen=True)
class SourceScan:
    timeline: Timeline
    loudness: Loudness | None  # None when the source has no audio


def scan_source(path: Path, limits: InputLimits | None = None) -> SourceScan:
    """The frame times and loudness; an input past `limits` (a file that got past the
    upload's probe, or limits lowered since) fails here, before any rendering."""
    limits = limits or InputLimits()
    with av.open(str(path)) as container:
        video = video_stream(container)
        limits.check_size(video.codec_context.width, video.codec_context.height)
        audio = container.streams.audio[0] if container.streams.audio else None
        tb = video.time_base
        times: list[Fraction] = []
        end = Fraction(0)
        meter = _LoudnessMeter() if audio is not None else None
        try:
            for packet in container.demux([video] + ([audio] if audio is not None else [])):
                if packet.size == 0:
                    if packet.stream is audio:  # flush the decoder
                        for frame in packet.decode():
                            meter.add(frame)
                    continue
                if packet.is_corrupt:
                    where = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
                    raise InvalidMedia(f"The {packet.stream.type} is damaged at {where:.1f} s.")
                if packet.stream is video:
                    if packet.pts is None:
                        continue
                    times.append(packet.pts * tb)
                    end = max(end, (packet.pts + (packet.duration or 0)) * tb)
                else:
                    for frame in packet.decode():
                        meter.add(frame)
        except av.FFmpegError:
            raise damaged(float(end) if times else None) from None
        declared = video.duration * tb if video.duration else None
    if not times:
        raise InvalidMedia("The video track holds no pictures.")
    times.sort()
    limits.check_duration(float(times[-1] - times[0]))
    limits.check_frame_times(times)
    if end <= times[-1]:
        # No packet duration: assume the last frame shows as long as the one before.
        step = times[-1] - times[-2] if len(times) > 1 else Fraction(1, 30)
        end = times[-1] + step
    if declared is not None and len(times) > 1 and end < declared - 2 * (times[-1] - times[-2]):
        raise InvalidMedia(
            f"The video stops at {float(end):.1f} s although it says it lasts "
            f"{float(declared):.1f} s: the file is damaged or incomplete."
        )
    return SourceScan(Timeline(times, end), meter.result() if meter else None)


class _LoudnessMeter:
    def __init__(self) -> None:
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=LOUDNESS_RATE)
        self.start: float | None = None
        self.pending = np.zeros(0, np.float32)
        self.levels: list[np.ndarray] = []

    def add(self, frame: av.AudioFrame) -> None:
        if self.start is None:
            if frame.pts is None:
                return
            self.start = float(frame.pts * frame.time_base)
        for out in self.resampler.resample(frame):
            samples = np.concatenate([self.pending, out.to_ndarray().reshape(-1)])
            whole = len(samples) // HOP * HOP
            if whole:
                hops = samples[:whole].reshape(-1, HOP)
                rms = np.sqrt(np.mean(hops.astype(np.float64) ** 2, axis=1))
                self.levels.append(20 * np.log10(np.maximum(rms, 1e-5)))
            self.pending = samples[whole:]

    def result(self) -> Loudness | None:
        if self.start is None or not self.levels:
            return None
        return Loudness(np.concatenate(self.levels).astype(np.float32), self.start)
