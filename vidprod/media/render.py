"""The single render pass: decode → upright SDR → per-frame hook → 9:16 → encode, a new
file at each cut.

One demux of the source feeds both tracks. Output frames sit on a constant-rate grid
anchored at the first frame: each grid slot shows the latest source frame at or before
it, which turns variable-rate phone video into constant-rate video and lets parts tile
the timeline exactly. A part's span is whole grid slots; its audio is the same span,
resampled to 48 kHz stereo and sliced sample-exactly (silence where the source has
none). A new encoder per part starts each part on a keyframe at its cut.

MP4s carry no edit lists (Instagram's spec): B-frame delay is expressed with negative
composition offsets, and the AAC encoder's 1024 priming samples are compensated by
starting each part's audio 1024 samples after the cut, so sound and picture line up
for players that ignore priming. The 21 ms this drops sit inside the pause we cut at.

A part is written under a temporary name and renamed when complete: a crash or stop
never leaves a half-written part under a final name.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from vidprod.media.color import (
    ColorFacts,
    HlgCorrection,
    PqToneMapper,
    sdr_filter_steps,
)
from vidprod.media.cuts import PlannedPart
from vidprod.media.faces import in_child
from vidprod.media.framing import (
    TARGET,
    FaceTrack,
    Landscape,
    Reframer,
    plan_framing,
    track_face,
)
from vidprod.media.ratecap import keep_to_cap
from vidprod.media.probe import InvalidMedia, clockwise_rotation, damaged, video_stream
from vidprod.media.scan import DEFAULT_RATE
from vidprod.media.thumbnails import ThumbnailPicker, choose_thumbnails

log = logging.getLogger(__name__)

AUDIO_RATE = 48000
AUDIO_LAYOUT = "stereo"
AUDIO_BIT_RATE = 160_000
AAC_PRIMING = 1024  # FFmpeg's AAC encoder's initial padding

# Settings every target platform accepts (see shared/DESIGN.md), chosen so the same
# frames always encode to the same pixels, on any machine under any load:
# - no VBV here: with maxrate/bufsize on more than one thread, x264 sizes each row's
#   quantiser from how far the frames beside it have got (on a busy machine, 5 encodes
#   of one clip gave 4 results); the bit rate cap is kept by ratecap.keep_to_cap;
# - no MB-tree: it reads memory x264 never wrote (the first encode in a process came
#   out different from the next ones; with glibc's malloc perturbation, all alike). It
#   saves ~10 % of bits at equal quality, so CRF 24 instead of 21: on two real clips
#   18-22 % larger than CRF 21 with MB-tree, SSIM a little higher (0.99756 / 0.99775
#   against 0.99738 / 0.99745);
# - frame threads pinned: each count encodes differently, and x264 takes 1.5 per core
#   it may use. 3 is what it picks on the 2-core machines the product is sized for.
# rc-lookahead 8 instead of veryfast's 10: 13 MB less at 1080p for the same quality per
# bit (real clip: 2.3 % smaller, 0.13 dB lower PSNR), which keeps a render under 350 MB.
VIDEO_OPTIONS = {
    "preset": "veryfast",
    "crf": "24",
    "profile": "high",
    "level": "4.1",
    "bf": "2",
    "g": "60",
    "rc-lookahead": "8",
    "x264-params": "open-gop=0:mbtree=0",
    "threads": "3",
}
MUXER_OPTIONS = {"movflags": "+faststart+negative_cts_offsets", "use_editlist": "0"}

# When resuming, seek this far before the first part still to render, so audio packets
# stored just before the video keyframe are not skipped.
SEEK_MARGIN = Fraction(1)

# Called once per shown frame, in order. A hook may also have `look_ahead(frame)`: the
# render then calls it with each upright frame as soon as it is decoded, LOOK_AHEAD
# frames before that frame goes through the hook (gaze starts its landmarks early);
# `prime(frames)`, called once before the first frame with an iterator over the upright
# frames from the first one to render on (decoded separately; the hook reads as many
# as it needs: gaze reads the speaker's gaze from the first second); and
# `open_eyes(pictures)`, answering faces.open_eyes for the thumbnails (or None); and
# `begin_part(index)`, called before the first frame of each part rendered goes through
# the hook (gaze keeps each part's figures, so a part made again replaces its own). A
# source frame shown on both sides of a cut goes through the hook once, in the first.
FrameHook = Callable[[av.VideoFrame], av.VideoFrame]
# Four: gaze landmarks run as sparsely as every third frame (gaze.corrector.SPARSEST),
# and the frame after a measured one needs the next measured one's answer. Announced
# four ahead, that picture went to the landmark process three frames before it is
# needed (three ahead, two frames before, and the render waited for it: p95 11.5 ms
# a frame at 1080x1920 on 2 cores; now 4 ms). Costs three decoded frames of memory
# (9 MB at 1080x1920).
LOOK_AHEAD = 4


class RenderStopped(Exception):
    """should_stop() asked the render to stop; finished parts are kept, open ones removed."""


@dataclass(frozen=True)
class RenderOptions:
    rate: Fraction = DEFAULT_RATE
    landscape: Landscape = "blur"
    size: tuple[int, int] = TARGET  # the 9:16 output
    frame_hook: FrameHook | None = None
    # The verified face model, for thumbnails (open eyes) and the face-following crop;
    # None: the sharpest frame, a centred crop.
    face_model: bytes | None = None
    thumbnails: bool = True
    # Drawn on each 9:16 output frame with its time on the source's clock (burned-in
    # captions); None: nothing.
    overlay: Callable[[av.VideoFrame, float], av.VideoFrame] | None = None


@dataclass(frozen=True)
class RenderedPart:
    index: int
    path: Path
    start: Fraction  # on the source clock, snapped to the output frame grid
    end: Fraction
    width: int
    height: int
    size_bytes: int
    thumbnail: Path | None

    @property
    def duration(self) -> Fraction:
        return self.end - self.start


def part_filename(index: int) -> str:
    return f"part-{index + 1:03d}.mp4"


def thumbnail_filename(index: int) -> str:
    return f"part-{index + 1:03d}.jpg"


def render_parts(
    source: Path,
    parts: Sequence[PlannedPart],
    out_dir: Path,
    options: RenderOptions = RenderOptions(),
    *,
    skip: Collection[int] = (),
    on_progress: Callable[[float], None] | None = None,
    on_part: Callable[[RenderedPart], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[RenderedPart]:
    """Render every part not in `skip` into out_dir; returns them in order.

    on_progress gets the fraction (0-1) of the source timeline passed; on_part is called
    as soon as each part's file is complete; should_stop is asked between frames.
    """
    if not any(p.index not in skip for p in parts):
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    # The encoder's and decoder's threads keep every core busy; OpenCV's own pool on
    # the small crops the frame hook works on only adds hand-offs and spinning
    # (~6 ms of CPU a frame with eye contact on, bench/gaze.py on 2 cores).
    cv2.setNumThreads(1)
    render = _Render(source, parts, set(skip), out_dir, options, on_progress, on_part, should_stop)
    return render.run()


@dataclass(frozen=True)
class _Span:
    """A part on the output grid: grid slots [first, stop) and audio samples [a, b)."""

    part: PlannedPart
    first: int
    stop: int
    start: Fraction
    end: Fraction
    sample_start: int
    sample_end: int


class _Render:
    def __init__(self, source: Path, parts: Sequence[PlannedPart], skip: set[int],
                 out_dir: Path, options: RenderOptions,
                 on_progress: Callable[[float], None] | None,
                 on_part: Callable[[RenderedPart], None] | None,
                 should_stop: Callable[[], bool] | None) -> None:  # fmt: skip
        self.source = source
        self.options = options
        self.out_dir = out_dir
        self.on_progress = on_progress or (lambda fraction: None)
        self.on_part = on_part or (lambda part: None)
        self.should_stop = should_stop or (lambda: False)
        rate = options.rate
        self.rate = rate
        self.origin = parts[0].start
        slots = [math.ceil((p.start - self.origin) * rate) for p in parts]
        slots.append(math.ceil((parts[-1].end - self.origin) * rate))
        self.spans = []
        for p, first, stop in zip(parts, slots, slots[1:]):
            start, end = self.origin + first / rate, self.origin + stop / rate
            self.spans.append(_Span(p, first, stop, start, end,
                                    round(start * AUDIO_RATE), round(end * AUDIO_RATE)))
        self.todo = {s.part.index for s in self.spans if s.part.index not in skip}
        self.total_slots = slots[-1]
        self.writers: dict[int, _PartWriter] = {}
        self.done: list[RenderedPart] = []
        self.finished: set[int] = set()
        self.pickers: list[ThumbnailPicker] = []

    def run(self) -> list[RenderedPart]:
        try:
            self._prepare()
            with av.open(str(self.source)) as container:
                self._run(container)
            if self.options.face_model is not None:
                try:
                    check = getattr(self.options.frame_hook, "open_eyes", None)
                    choose_thumbnails(self.pickers, self.options.face_model, check)
                except Exception:  # an enhancement: the sharpest frames stay as thumbnails
                    log.exception("face check for thumbnails failed; keeping the sharpest frames")
        except BaseException:
            for writer in self.writers.values():
                writer.abort()
            self.writers.clear()
            raise
        return sorted(self.done, key=lambda p: p.index)

    def _prepare(self) -> None:
        with av.open(str(self.source)) as container:
            video = video_stream(container)
            first = next(container.decode(video))
            sar = video.sample_aspect_ratio or Fraction(1)
        self.normalize = Normalize(first, video.time_base)
        width, height = self.normalize.size
        if self.normalize.rotation in (90, 270):
            sar = 1 / sar
        self.framing = plan_framing(width, height, sar, self.options.landscape, self.options.size)
        track: FaceTrack | None = None
        if self.framing.mode == "crop" and self.options.face_model is not None:
            try:
                track = in_child(track_face, self.source, self.normalize.rotation, self.options.face_model)
            except Exception:  # an enhancement: fall back to a centred crop
                log.exception("face tracking failed; cropping the centre")
        self.reframer = Reframer(self.framing, width, height, sar, track)

    def _run(self, container: av.container.InputContainer) -> None:
        video = video_stream(container)
        video.thread_type = "AUTO"
        # Each decoding thread holds frames of its own. Up to 1080p, one per core measured
        # faster and lighter than FFmpeg's cores + 1 (138 vs 130 fps, 7 MB less); above
        # it a 4K frame is 12 MB, and one thread saved 41 MB for 2 % more time.
        large = video.codec_context.width * video.codec_context.height > 1920 * 1088
        video.codec_context.thread_count = 1 if large else (os.cpu_count() or 2)
        audio = container.streams.audio[0] if container.streams.audio else None
        self.video_tb = video.time_base
        first_todo = self.spans[min(self.todo)]
        if first_todo.start - SEEK_MARGIN > self.origin:
            target = first_todo.start - SEEK_MARGIN
            container.seek(int(target / video.time_base), stream=video, backward=True)

        self.slot = 0  # next grid slot to fill
        self.span_index = 0
        self.held: av.VideoFrame | None = None  # latest source frame, not yet shown
        self.held_t: Fraction | None = None
        self.held_out: av.VideoFrame | None = None  # its processed form, made on first use
        self.held_upright = False  # already through self.normalize
        self.look_ahead = getattr(self.options.frame_hook, "look_ahead", None)
        self.begin_part = getattr(self.options.frame_hook, "begin_part", None)
        self.hook_part: int | None = None  # the part the hook was last told of
        # decoded (and announced) frames not yet held: (frame, t, upright)
        self.announced: deque[tuple[av.VideoFrame, Fraction, bool]] = deque()
        todo_spans = [s for s in self.spans if s.part.index in self.todo]
        self.shown_from = todo_spans[0].start - 1 / self.rate
        self.shown_until = todo_spans[-1].end
        self.audio_slicer = _AudioSlicer(self) if audio is not None else None
        prime = getattr(self.options.frame_hook, "prime", None)
        if prime is not None:
            prime(self._upright_frames(first_todo.start))

        streams = [video] + ([audio] if audio is not None else [])
        try:
            for packet in container.demux(streams):
                if packet.is_corrupt:
                    raise InvalidMedia(f"The {packet.stream.type} track is damaged.")
                if packet.stream is video:
                    for frame in packet.decode():
                        self._source_frame(frame)
                else:
                    for frame in packet.decode():
                        self.audio_slicer.add(frame)
        except av.FFmpegError:
            raise damaged(float(self.held_t) if self.held_t is not None else None) from None
        while self.announced:
            self._hold(*self.announced.popleft())
        self._fill_until(self.total_slots)
        while self.span_index < len(self.spans):
            self._end_video_span()
        if self.audio_slicer is not None:
            self.audio_slicer.flush()
        for index in sorted(self.writers):
            self.writers[index].audio_eof()
            self._maybe_close(index)

    def _upright_frames(self, start: Fraction) -> Iterator[av.VideoFrame]:
        """The source's frames from `start` on, upright, from a container of their own
        (a fresh Normalize: its tone mapping must not see frames out of order)."""
        with av.open(str(self.source)) as container:
            video = video_stream(container)
            video.thread_type = "AUTO"
            if start - SEEK_MARGIN > self.origin:
                container.seek(int((start - SEEK_MARGIN) / video.time_base), stream=video, backward=True)
            upright: Normalize | None = None
            for frame in container.decode(video):
                if frame.pts is None or frame.pts * video.time_base < start - 1 / self.rate:
                    continue
                upright = upright or Normalize(frame, video.time_base)
                yield upright.apply(frame)

    # --- video -------------------------------------------------------------------

    def _source_frame(self, frame: av.VideoFrame) -> None:
        if self.should_stop():
            raise RenderStopped()
        if frame.pts is None:
            return
        t = frame.pts * self.video_tb
        if self.look_ahead is None:
            self._hold(frame, t, False)
            return
        upright = self._will_show(t)
        if upright:
            frame = self.normalize.apply(frame)
            self.look_ahead(frame)
        self.announced.append((frame, t, upright))
        if len(self.announced) >= LOOK_AHEAD:
            self._hold(*self.announced.popleft())

    def _hold(self, frame: av.VideoFrame, t: Fraction, upright: bool) -> None:
        if self.held is not None:
            # The held frame shows until this one: fill every grid slot before t with it.
            self._fill_until(math.ceil((t - self.origin) * self.rate))
        self.held, self.held_t, self.held_out, self.held_upright = frame, t, None, upright
        self.on_progress(float((t - self.origin) / (self.spans[-1].end - self.origin)))

    def _will_show(self, t: Fraction) -> bool:
        """Whether a frame at t is likely to fill a grid slot: one falls between t and
        the next frame, expected as far on as this one is from the frame decoded before
        it. Only a guess for look-ahead (a wrong one costs a wasted or a late landmark
        pass, never a wrong frame)."""
        if not self.shown_from <= t < self.shown_until:
            return False
        newest = self.announced[-1][1] if self.announced else self.held_t
        if newest is None or t <= newest:
            return True
        slot = math.ceil((t - self.origin) * self.rate)
        return self.origin + slot / self.rate < 2 * t - newest

    def _fill_until(self, stop_slot: int) -> None:
        stop_slot = min(stop_slot, self.total_slots)
        while self.slot < stop_slot and self.held is not None:
            # One picture may fill many slots (a long gap between frames): stop between
            # slots, not only between source frames.
            if self.should_stop():
                raise RenderStopped()
            while self.slot >= self.spans[self.span_index].stop:
                self._end_video_span()
            span = self.spans[self.span_index]
            if span.part.index in self.todo and span.part.index not in self.finished:
                if self.begin_part is not None and self.hook_part != span.part.index:
                    self.hook_part = span.part.index
                    self.begin_part(span.part.index)
                out = self._processed()
                writer = self._writer(span)
                writer.add_video(out, self.slot - span.first)
            self.slot += 1

    def _processed(self) -> av.VideoFrame:
        if self.held_out is None:
            assert self.held is not None and self.held_t is not None
            frame = self.held if self.held_upright else self.normalize.apply(self.held)
            if self.options.frame_hook is not None:
                frame = self.options.frame_hook(frame)
            self.held_out = self.reframer.apply(frame, float(self.held_t))
            if self.options.overlay is not None:
                self.held_out = self.options.overlay(self.held_out, float(self.held_t))
        return self.held_out

    def _end_video_span(self) -> None:
        span = self.spans[self.span_index]
        if span.part.index in self.writers:
            self.writers[span.part.index].video_eof()
            self._maybe_close(span.part.index)
        self.span_index += 1

    # --- parts -------------------------------------------------------------------

    def _writer(self, span: _Span) -> _PartWriter:
        writer = self.writers.get(span.part.index)
        if writer is None:
            picker = None
            if self.options.thumbnails:
                every = max(1, int(self.rate / 4))  # about four candidates a second
                picker = ThumbnailPicker(every)
                self.pickers.append(picker)
            writer = _PartWriter(self.out_dir, span, (self.framing.width, self.framing.height),
                                 self.rate, picker)
            self.writers[span.part.index] = writer
        return writer

    def _maybe_close(self, index: int) -> None:
        writer = self.writers[index]
        if writer.video_done and writer.audio_done:
            del self.writers[index]
            rendered = writer.close()
            self.finished.add(index)
            self.done.append(rendered)
            self.on_part(rendered)


class Normalize:
    """Display rotation and conversion to 8-bit BT.709 limited-range yuv420p, in FFmpeg
    filters (PyAV never auto-rotates) or the PQ tone mapper. A no-op for frames that are
    already right. Set up from a clip's first decoded frame. `colour=False`: rotation
    and the even crop only, colours as decoded (the gaze harness)."""

    def __init__(self, first: av.VideoFrame, time_base: Fraction, *, colour: bool = True) -> None:
        self.rotation = clockwise_rotation(first.rotation)
        facts = ColorFacts.of(first)
        self.tone_mapper = PqToneMapper() if colour and facts.hdr == "pq" else None
        self.hlg = HlgCorrection() if colour and facts.hdr == "hlg" else None
        # What enters the filter graph: the decoded frame, or the tone mapper's output.
        width, height, pixel_format = first.width, first.height, first.format
        if self.tone_mapper is not None:
            width, height = self.tone_mapper.output_size(width, height)
            pixel_format = av.VideoFormat("yuv420p")
        steps: list[tuple[str, str]] = []
        if self.rotation == 90:
            steps.append(("transpose", "clock"))
        elif self.rotation == 270:
            steps.append(("transpose", "cclock"))
        elif self.rotation == 180:
            steps += [("hflip", ""), ("vflip", "")]
        upright = (height, width) if self.rotation in (90, 270) else (width, height)
        self.size = (upright[0] - upright[0] % 2, upright[1] - upright[1] % 2)
        if self.size != upright:
            steps.append(("crop", f"{self.size[0]}:{self.size[1]}:0:0"))
        if colour and self.tone_mapper is None:
            steps += sdr_filter_steps(facts)
        self.graph: av.filter.Graph | None = None
        if steps:
            graph = av.filter.Graph()
            node = graph.add_buffer(
                width=width, height=height, format=pixel_format, time_base=time_base
            )
            for name, args in steps:
                step = graph.add(name, args)
                node.link_to(step)
                node = step
            sink = graph.add("buffersink")
            node.link_to(sink)
            graph.configure()
            self.graph = graph

    def apply(self, frame: av.VideoFrame) -> av.VideoFrame:
        if self.tone_mapper is not None:
            frame = self.tone_mapper.apply(frame)
        if self.graph is None:
            return frame
        self.graph.push(frame)
        out = self.graph.pull()
        if self.hlg is not None:
            self.hlg.apply(out)
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
        for span in render.spans:
            index = span.part.index
            if span.sample_end <= first or span.sample_start >= last:
                continue
            if index not in render.todo or index in render.finished:
                continue
            writer = render._writer(span)
            if writer.audio_done:
                continue
            lo, hi = max(span.sample_start, first), min(span.sample_end, last)
            writer.add_audio(lo - span.sample_start, samples[:, lo - first : hi - first])
            if last >= span.sample_end:
                writer.audio_eof()
                render._maybe_close(index)


class _PartWriter:
    """One part's MP4: an H.264 encoder and an AAC encoder muxed into a temporary file."""

    def __init__(self, out_dir: Path, span: _Span, size: tuple[int, int], rate: Fraction,
                 picker: ThumbnailPicker | None) -> None:  # fmt: skip
        self.span = span
        self.size = size
        self.rate = rate
        self.picker = picker
        self.path = out_dir / part_filename(span.part.index)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.container = av.open(str(self.tmp), "w", format="mp4", options=dict(MUXER_OPTIONS))
        video = self.container.add_stream("libx264", rate=rate, options=dict(VIDEO_OPTIONS))
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = 1 / rate
        video.thread_type = "AUTO"
        ctx = video.codec_context
        ctx.color_primaries = ctx.color_trc = ctx.colorspace = 1  # BT.709
        ctx.color_range = 1  # limited ("tv") range
        self.video = video
        audio = self.container.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = AUDIO_LAYOUT
        audio.bit_rate = AUDIO_BIT_RATE
        self.audio = audio
        # Samples the encoder takes: the span less the priming the decoder will add back.
        self.total_samples = span.sample_end - span.sample_start - AAC_PRIMING
        self.samples_written = 0
        self.video_done = False
        self.audio_done = False

    def add_video(self, frame: av.VideoFrame, index: int) -> None:
        frame.pts = index
        frame.time_base = 1 / self.rate
        frame.pict_type = av.video.frame.PictureType.NONE
        for packet in self.video.encode(frame):
            self.container.mux(packet)
        if self.picker is not None:
            length = float(self.span.end - self.span.start)
            self.picker.offer(frame, index / float(self.rate), length)

    def video_eof(self) -> None:
        if self.video_done:
            return
        for packet in self.video.encode(None):
            self.container.mux(packet)
        self.video_done = True

    def add_audio(self, offset: int, samples: np.ndarray) -> None:
        """Samples starting `offset` samples into the span."""
        offset -= AAC_PRIMING
        if offset < 0:
            samples = samples[:, -offset:]
            offset = 0
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
        keep_to_cap(self.tmp, VIDEO_OPTIONS, MUXER_OPTIONS)
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        thumbnail = None
        if self.picker is not None:
            thumbnail = self.path.with_name(thumbnail_filename(self.span.part.index))
            if not self.picker.write(thumbnail):
                thumbnail = None
        os.replace(self.tmp, self.path)
        return RenderedPart(
            index=self.span.part.index,
            path=self.path,
            start=self.span.start,
            end=self.span.end,
            width=self.size[0],
            height=self.size[1],
            size_bytes=self.path.stat().st_size,
            thumbnail=thumbnail,
        )

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away either way
            pass
        self.tmp.unlink(missing_ok=True)
