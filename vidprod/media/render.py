"""The single render pass: decode → upright → per-frame hook → encode, a new file per part.

One demux of the source feeds both tracks. Video frames are cut at frame-exact times (a
new encoder per part, so every part starts on a keyframe); audio is resampled to 48 kHz
stereo and sliced sample-exactly at the same times, padded with silence where the
source has none, so each part's audio lasts exactly as long as its video. A part's file
is written under a temporary name and renamed only when complete: a crash or a stop
never leaves a half-written part under a final name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidprod.media.cuts import PlannedPart
from vidprod.media.probe import InvalidMedia, clockwise_rotation

AUDIO_RATE = 48000
AUDIO_LAYOUT = "stereo"
AUDIO_BIT_RATE = 160_000

# Settings every target platform accepts (see shared/DESIGN.md).
VIDEO_OPTIONS = {
    "preset": "veryfast",
    "crf": "21",
    "profile": "high",
    "level": "4.1",
    "bf": "2",
    "g": "60",
    "maxrate": "12M",
    "bufsize": "24M",
}

# When resuming, seek this far before the first part still to render, so audio packets
# stored just before the video keyframe are not skipped.
SEEK_MARGIN = Fraction(1)

FrameHook = Callable[[av.VideoFrame], av.VideoFrame]


class RenderStopped(Exception):
    """should_stop() asked the render to stop; finished parts are kept, open ones removed."""


@dataclass(frozen=True)
class RenderedPart:
    index: int
    path: Path
    start: Fraction
    end: Fraction
    width: int
    height: int
    size_bytes: int

    @property
    def duration(self) -> Fraction:
        return self.end - self.start


def part_filename(index: int) -> str:
    return f"part-{index + 1:03d}.mp4"


def render_parts(
    source: Path,
    parts: Sequence[PlannedPart],
    out_dir: Path,
    *,
    skip: Collection[int] = (),
    frame_hook: FrameHook | None = None,
    on_progress: Callable[[float], None] | None = None,
    on_part: Callable[[RenderedPart], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[RenderedPart]:
    """Render every part not in `skip` into out_dir; returns them in order.

    on_progress gets the fraction (0-1) of the source timeline passed; on_part is called
    as soon as each part's file is complete; should_stop is asked between frames.
    """
    todo = [p for p in parts if p.index not in skip]
    if not todo:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    render = _Render(source, parts, todo, out_dir, frame_hook, on_progress, on_part, should_stop)
    return render.run()


class _Render:
    def __init__(
        self,
        source: Path,
        parts: Sequence[PlannedPart],
        todo: Sequence[PlannedPart],
        out_dir: Path,
        frame_hook: FrameHook | None,
        on_progress: Callable[[float], None] | None,
        on_part: Callable[[RenderedPart], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.source = source
        self.parts = list(parts)
        self.todo = {p.index for p in todo}
        self.out_dir = out_dir
        self.frame_hook = frame_hook
        self.on_progress = on_progress or (lambda fraction: None)
        self.on_part = on_part or (lambda part: None)
        self.should_stop = should_stop or (lambda: False)
        self.writers: dict[int, _PartWriter] = {}
        self.done: list[RenderedPart] = []
        self.timeline_start = self.parts[0].start
        self.timeline_length = self.parts[-1].end - self.timeline_start

    def run(self) -> list[RenderedPart]:
        try:
            with av.open(str(self.source)) as container:
                self._run(container)
        except BaseException:
            for writer in self.writers.values():
                writer.abort()
            self.writers.clear()
            raise
        return sorted(self.done, key=lambda p: p.index)

    def _run(self, container: av.container.InputContainer) -> None:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        audio = container.streams.audio[0] if container.streams.audio else None
        self.video_tb = video.time_base
        self.rate = video.guessed_rate or video.average_rate or Fraction(30)
        first_todo = self.parts[min(self.todo)]
        if first_todo.start - SEEK_MARGIN > self.timeline_start:
            target = first_todo.start - SEEK_MARGIN
            container.seek(int(target / video.time_base), stream=video, backward=True)

        self.upright: _Upright | None = None
        self.video_part = 0  # index into self.parts of the part the video is in
        self.pending: av.VideoFrame | None = None  # held one frame to learn its duration
        self.audio_slicer = _AudioSlicer(self) if audio is not None else None

        streams = [video] + ([audio] if audio is not None else [])
        for packet in container.demux(streams):
            if packet.is_corrupt:
                raise InvalidMedia(f"The {packet.stream.type} track is damaged.")
            if packet.stream is video:
                for frame in packet.decode():
                    self._video_frame(frame)
            else:
                for frame in packet.decode():
                    self.audio_slicer.add(frame)
        self._video_eof()
        if self.audio_slicer is not None:
            self.audio_slicer.flush()
        for index in sorted(self.writers):
            self.writers[index].audio_eof()
            self._maybe_close(index)

    # --- video -------------------------------------------------------------------

    def _video_frame(self, frame: av.VideoFrame) -> None:
        if self.should_stop():
            raise RenderStopped()
        if frame.pts is None:
            return
        if self.upright is None:
            self.upright = _Upright(frame, self.video_tb)
        t = frame.pts * self.video_tb
        if t < self.timeline_start:
            return
        while self.video_part < len(self.parts) and t >= self.parts[self.video_part].end:
            self._end_video_part()
        if self.video_part >= len(self.parts):
            return
        part = self.parts[self.video_part]
        if part.index in self.todo:
            for upright in self.upright.apply(frame):
                out = self.frame_hook(upright) if self.frame_hook else upright
                self._hold(out, part)
        self.on_progress(float((t - self.timeline_start) / self.timeline_length))

    def _hold(self, frame: av.VideoFrame, part: PlannedPart) -> None:
        if self.pending is not None:
            self._writer(part.index).add_video(self.pending, frame.pts - self.pending.pts)
        self.pending = frame

    def _end_video_part(self) -> None:
        part = self.parts[self.video_part]
        if part.index in self.todo:
            writer = self._writer(part.index)
            if self.pending is not None:
                end_pts = int(part.end / self.video_tb)
                writer.add_video(self.pending, end_pts - self.pending.pts)
                self.pending = None
            writer.video_eof()
            self._maybe_close(part.index)
        self.video_part += 1

    def _video_eof(self) -> None:
        while self.video_part < len(self.parts):
            self._end_video_part()

    # --- parts -------------------------------------------------------------------

    def _writer(self, index: int) -> _PartWriter:
        writer = self.writers.get(index)
        if writer is None:
            part = self.parts[index]
            writer = _PartWriter(
                self.out_dir / part_filename(index),
                part,
                self.output_size(),
                self.video_tb,
                self.rate,
            )
            self.writers[index] = writer
        return writer

    def output_size(self) -> tuple[int, int]:
        if self.upright is not None:
            return self.upright.size
        # Audio can arrive before the first video frame; probe the size from the file.
        with av.open(str(self.source)) as container:
            for frame in container.decode(video=0):
                return _Upright(frame, container.streams.video[0].time_base).size
        raise RuntimeError("no video frames")

    def _maybe_close(self, index: int) -> None:
        writer = self.writers[index]
        if writer.video_done and writer.audio_done:
            del self.writers[index]
            rendered = writer.close()
            self.done.append(rendered)
            self.on_part(rendered)


class _Upright:
    """Applies the display rotation and converts to even-sized yuv420p, in FFmpeg filters
    (PyAV never auto-rotates). A no-op for frames that are already right."""

    def __init__(self, first: av.VideoFrame, time_base: Fraction) -> None:
        rotation = clockwise_rotation(first.rotation)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        self.size = (width - width % 2, height - height % 2)
        steps: list[tuple[str, str]] = []
        if rotation == 90:
            steps.append(("transpose", "clock"))
        elif rotation == 270:
            steps.append(("transpose", "cclock"))
        elif rotation == 180:
            steps += [("hflip", ""), ("vflip", "")]
        if self.size != (width, height):
            steps.append(("crop", f"{self.size[0]}:{self.size[1]}:0:0"))
        if first.format.name != "yuv420p":
            steps.append(("format", "yuv420p"))
        self.graph: av.filter.Graph | None = None
        if steps:
            graph = av.filter.Graph()
            node = graph.add_buffer(
                width=first.width,
                height=first.height,
                format=first.format,
                time_base=time_base,
            )
            for name, args in steps:
                step = graph.add(name, args)
                node.link_to(step)
                node = step
            sink = graph.add("buffersink")
            node.link_to(sink)
            graph.configure()
            self.graph = graph

    def apply(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        if self.graph is None:
            return [frame]
        self.graph.push(frame)
        out = []
        while True:
            try:
                out.append(self.graph.pull())
            except (BlockingIOError, av.error.EOFError):
                return out


class _AudioSlicer:
    """Resamples the source audio and hands each part exactly the samples of its span."""

    def __init__(self, render: _Render) -> None:
        self.render = render
        self.resampler = av.AudioResampler(format="fltp", layout=AUDIO_LAYOUT, rate=AUDIO_RATE)
        self.position: int | None = None  # sample index (on the source clock) of next sample

    def add(self, frame: av.AudioFrame | None) -> None:
        if frame is not None and self.position is None:
            if frame.pts is None:
                return
            self.position = round(frame.pts * frame.time_base * AUDIO_RATE)
        for out in self.resampler.resample(frame):
            samples = out.to_ndarray()
            self._distribute(self.position, samples)
            self.position += samples.shape[1]

    def flush(self) -> None:
        if self.position is not None:
            self.add(None)

    def _distribute(self, first: int, samples: np.ndarray) -> None:
        render = self.render
        last = first + samples.shape[1]
        for part in render.parts:
            start, end = _sample_index(part.start), _sample_index(part.end)
            if end <= first or start >= last or part.index not in render.todo:
                continue
            if any(r.index == part.index for r in render.done):
                continue
            writer = render._writer(part.index)
            if writer.audio_done:
                continue
            lo, hi = max(start, first), min(end, last)
            writer.add_audio(lo - start, samples[:, lo - first : hi - first])
            if last >= end:
                writer.audio_eof()
                render._maybe_close(part.index)


def _sample_index(t: Fraction) -> int:
    return round(t * AUDIO_RATE)


class _PartWriter:
    """One part's MP4: an H.264 encoder and an AAC encoder muxed into a temporary file."""

    def __init__(
        self,
        path: Path,
        part: PlannedPart,
        size: tuple[int, int],
        time_base: Fraction,
        rate: Fraction,
    ) -> None:
        self.path = path
        self.part = part
        self.size = size
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.container = av.open(
            str(self.tmp), "w", format="mp4", options={"movflags": "+faststart"}
        )
        video = self.container.add_stream("libx264", rate=rate, options=dict(VIDEO_OPTIONS))
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.time_base = time_base
        video.codec_context.time_base = time_base
        video.thread_type = "AUTO"
        ctx = video.codec_context
        ctx.color_primaries = ctx.color_trc = ctx.colorspace = 1  # BT.709
        ctx.color_range = 1  # limited ("tv") range
        self.video = video
        audio = self.container.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = AUDIO_LAYOUT
        audio.bit_rate = AUDIO_BIT_RATE
        self.audio = audio
        self.start_pts = int(part.start / time_base)
        self.total_samples = _sample_index(part.end) - _sample_index(part.start)
        self.samples_written = 0
        self.durations: dict[int, int] = {}
        self.video_done = False
        self.audio_done = False

    def add_video(self, frame: av.VideoFrame, duration: int) -> None:
        frame.pts = frame.pts - self.start_pts
        frame.time_base = self.video.time_base
        frame.pict_type = av.video.frame.PictureType.NONE
        # libx264 drops frame durations; remember them to give the muxer the true
        # length of the last frame (otherwise each part would end one frame short).
        self.durations[frame.pts] = duration
        for packet in self.video.encode(frame):
            self._mux_video(packet)

    def _mux_video(self, packet: av.Packet) -> None:
        if packet.pts is not None:
            packet.duration = self.durations.pop(packet.pts, packet.duration)
        self.container.mux(packet)

    def video_eof(self) -> None:
        for packet in self.video.encode(None):
            self._mux_video(packet)
        self.video_done = True

    def add_audio(self, offset: int, samples: np.ndarray) -> None:
        if offset > self.samples_written:  # a gap in the source audio: fill with silence
            self._encode_audio(np.zeros((2, offset - self.samples_written), np.float32))
        elif offset < self.samples_written:  # overlap: keep what we already have
            samples = samples[:, self.samples_written - offset :]
        if samples.shape[1]:
            self._encode_audio(np.ascontiguousarray(samples, dtype=np.float32))

    def audio_eof(self) -> None:
        if self.audio_done:
            return
        missing = self.total_samples - self.samples_written
        if missing > 0:
            self._encode_audio(np.zeros((2, missing), np.float32))
        for packet in self.audio.encode(None):
            self.container.mux(packet)
        self.audio_done = True

    def _encode_audio(self, samples: np.ndarray) -> None:
        samples = samples[:, : self.total_samples - self.samples_written]
        if not samples.shape[1]:
            return
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=AUDIO_LAYOUT)
        frame.sample_rate = AUDIO_RATE
        frame.time_base = Fraction(1, AUDIO_RATE)
        frame.pts = self.samples_written
        self.samples_written += samples.shape[1]
        for packet in self.audio.encode(frame):
            self.container.mux(packet)

    def close(self) -> RenderedPart:
        self.container.close()
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)
        return RenderedPart(
            index=self.part.index,
            path=self.path,
            start=self.part.start,
            end=self.part.end,
            width=self.size[0],
            height=self.size[1],
            size_bytes=self.path.stat().st_size,
        )

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away either way
            pass
        self.tmp.unlink(missing_ok=True)
