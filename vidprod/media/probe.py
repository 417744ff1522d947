"""Open an uploaded file and decide whether we can make parts from it.

Cheap enough to run before answering an upload: it reads the headers, demuxes (never
decodes) the video packets once to learn every frame's time, decodes the first video
frame, and reads the last second of packets to catch files that were cut short in
transit. The input limits are checked before anything is decoded, so a file made to
exhaust the machine (a 16000x16000 picture, three frames ten hours apart) is refused
for the cost of reading its headers and packet index.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

# How far before the stated end we seek to check that the tail of the file is there.
TAIL_CHECK_SECONDS = 1.5
# Demuxers that read single pictures (image2, png_pipe, jpeg_pipe, ...), not video.
IMAGE_FORMATS = ("image2",)


class InvalidMedia(ValueError):
    """The file is not a video we can process; the message is for the person who sent it."""


@dataclass(frozen=True)
class InputLimits:
    """What a phone talking-head video stays well inside. Beyond them a file would cost
    hours of rendering or more memory than the server has (VIDPROD_MAX_DURATION_MINUTES,
    VIDPROD_MAX_FRAME_GAP_SECONDS, VIDPROD_MAX_FRAME_PIXELS)."""

    max_seconds: float = 3600.0
    # Phones drop to ~15 fps in the dark (67 ms between pictures); seconds without a
    # picture mean a crafted or broken file, and a gap longer than a part cannot be cut.
    max_frame_gap: float = 2.0
    max_pixels: int = 4096 * 2160  # DCI 4K, either way up

    def check_size(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise InvalidMedia(
                f"The picture is {width}x{height}, larger than this server accepts "
                f"({self.max_pixels / 1e6:.1f} megapixels, such as 4096x2160). Export it at 4K or less."
            )

    def check_duration(self, seconds: float) -> None:
        if seconds > self.max_seconds:
            raise InvalidMedia(
                f"The video lasts {_minutes(seconds)}, longer than this server accepts "
                f"({_minutes(self.max_seconds)}). Trim it, or upload it in pieces."
            )

    def check_frame_times(self, times: list[Fraction]) -> None:
        """Sorted frame times: no gap between two pictures longer than allowed."""
        for before, after in zip(times, times[1:]):
            if after - before > self.max_frame_gap:
                raise InvalidMedia(
                    f"The video has no picture for {float(after - before):.1f} s (from "
                    f"{float(before):.1f} s to {float(after):.1f} s); this server accepts gaps of at "
                    f"most {self.max_frame_gap:g} s. Re-export it as ordinary video."
                )


def _minutes(seconds: float) -> str:
    if seconds >= 5940:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes" if seconds >= 60 else f"{seconds:.1f} s"


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


def video_stream(container: av.container.InputContainer) -> av.VideoStream:
    """The file's video track; cover art (an attached picture) is not one."""
    streams = [
        s for s in container.streams.video
        if not s.disposition & av.stream.Disposition.attached_pic
    ]  # fmt: skip
    if not streams:
        if container.streams.audio:
            art = " (its picture is cover art, not video)" if container.streams.video else ""
            raise InvalidMedia(f"The file holds sound only: it has no video track{art}.")
        raise InvalidMedia("The file has no video track.")
    return streams[0]


def probe(path: Path, limits: InputLimits | None = None) -> SourceInfo:
    limits = limits or InputLimits()
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise InvalidMedia(f"This is not a video file we can read ({_reason(exc)}).") from None
    with container:
        video = video_stream(container)
        audio = container.streams.audio[0] if container.streams.audio else None
        if container.format.name in IMAGE_FORMATS or container.format.name.endswith("_pipe"):
            raise InvalidMedia("This is a still picture, not a video. Upload a video file.")
        limits.check_size(video.codec_context.width, video.codec_context.height)
        declared = _duration(container, video)
        if declared is not None:
            limits.check_duration(float(declared))
        times = frame_times(container, video)
        if len(times) < 2:
            raise InvalidMedia("The file holds a single picture, not a video. Upload a video file.")
        limits.check_duration(float(times[-1] - times[0]))
        limits.check_frame_times(times)
        first = _first_frame(container, video)
        limits.check_size(first.width, first.height)
        duration = declared
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


def damaged(where: float | None) -> InvalidMedia:
    """FFmpeg's "[Errno 1094995529] Invalid data found..." in words for the creator."""
    at = f" at about {where:.1f} s" if where is not None else ""
    return InvalidMedia(
        f"The file is damaged{at}: part of its data cannot be read. "
        "Export or copy it again from the original and upload that."
    )


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.rstrip(".").split(": '")[0]


def frame_times(container: av.container.InputContainer, video: av.VideoStream) -> list[Fraction]:
    """Every video frame's time, sorted, from the packets alone (nothing decoded); the
    container is left rewound to its start."""
    times: list[Fraction] = []
    try:
        for packet in container.demux(video):
            if packet.pts is not None and packet.size:
                times.append(packet.pts * video.time_base)
    except av.FFmpegError as exc:
        where = f" after {float(max(times)):.1f} s" if times else ""
        raise InvalidMedia(
            f"The file is damaged{where}: its data cannot be read ({_reason(exc)}). "
            "Export or copy it again from the original."
        ) from None
    container.seek(0)
    times.sort()
    return times


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
