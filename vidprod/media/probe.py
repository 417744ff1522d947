"""Open an uploaded file and decide whether we can make parts from it.

Cheap enough to run before answering an upload (tens of milliseconds): it reads the
headers, decodes the first video frame, and reads the last second of packets to catch
files that were cut short in transit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

# How far before the stated end we seek to check that the tail of the file is there.
TAIL_CHECK_SECONDS = 1.5


class InvalidMedia(ValueError):
    """The file is not a video we can process; the message is for the person who sent it."""


@dataclass(frozen=True)
class SourceInfo:
    container: str
    duration: float  # seconds
    width: int  # as displayed, after rotation
    height: int
    rotation: int  # degrees clockwise to turn the stored picture to show it upright
    video_codec: str
    pixel_format: str
    frame_rate: float
    frame_count: int  # estimated where the container does not say
    has_audio: bool
    audio_codec: str | None
    sample_rate: int | None
    channels: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def clockwise_rotation(display_rotation: float | None) -> int:
    """Turn FFmpeg's display-matrix angle (counter-clockwise) into the clockwise
    rotation that shows the picture upright: -90 -> 90, 90 -> 270, ±180 -> 180."""
    if not display_rotation:
        return 0
    return int(round(-display_rotation / 90.0)) % 4 * 90


def probe(path: Path) -> SourceInfo:
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise InvalidMedia(f"This is not a video file we can read ({_reason(exc)}).") from None
    with container:
        if not container.streams.video:
            raise InvalidMedia("The file has no video track.")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        first = _first_frame(container, video)
        duration = _duration(container, video)
        if duration is not None and duration <= 0:
            raise InvalidMedia("The video is empty (its duration is zero).")
        rate = video.guessed_rate or video.average_rate or Fraction(30)
        if duration is not None:
            _check_tail(container, video, duration, rate)
        rotation = clockwise_rotation(first.rotation)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        frame_count = video.frames or (int(round(duration * rate)) if duration else 0)
        return SourceInfo(
            container=container.format.name,
            duration=float(duration) if duration is not None else 0.0,
            width=width,
            height=height,
            rotation=rotation,
            video_codec=video.codec_context.name,
            pixel_format=first.format.name,
            frame_rate=float(rate),
            frame_count=frame_count,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio else None,
            sample_rate=audio.codec_context.sample_rate if audio else None,
            channels=audio.codec_context.channels if audio else None,
        )


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.rstrip(".").split(": '")[0]


def _first_frame(container: av.container.InputContainer, video: av.VideoStream) -> av.VideoFrame:
    try:
        for frame in container.decode(video):
            return frame
    except av.FFmpegError as exc:
        raise InvalidMedia(f"The video track cannot be decoded ({_reason(exc)}).") from None
    raise InvalidMedia("The video track holds no pictures.")


def _duration(container: av.container.InputContainer, video: av.VideoStream) -> Fraction | None:
    if video.duration is not None and video.time_base is not None:
        return Fraction(video.duration) * video.time_base
    if container.duration is not None:
        return Fraction(container.duration, av.time_base)
    return None  # e.g. a browser recording without a duration header


def _check_tail(
    container: av.container.InputContainer,
    video: av.VideoStream,
    duration: Fraction,
    rate: Fraction,
) -> None:
    start = Fraction(video.start_time or 0) * video.time_base
    end = start + duration
    seek_to = max(start, end - Fraction(TAIL_CHECK_SECONDS).limit_denominator(1000))
    try:
        container.seek(int(seek_to / video.time_base), stream=video, backward=True)
        last_video_end = None
        for packet in container.demux():
            if packet.size == 0:
                continue
            if packet.is_corrupt:
                raise InvalidMedia(_cut_short(end))
            if packet.stream is video and packet.pts is not None:
                packet_end = (packet.pts + (packet.duration or 0)) * video.time_base
                if last_video_end is None or packet_end > last_video_end:
                    last_video_end = packet_end
    except av.FFmpegError as exc:
        raise InvalidMedia(f"{_cut_short(end)} ({_reason(exc)})") from None
    # Allow two frames of slack for containers that round their stated duration.
    if last_video_end is None or last_video_end < end - 2 / rate:
        raise InvalidMedia(_cut_short(end))


def _cut_short(end: Fraction) -> str:
    return (
        f"The file is cut short: it says it lasts {float(end):.1f} s but the end is missing. "
        "Upload it again in full."
    )
