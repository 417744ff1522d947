"""A part's bit rate cap, kept without x264's threaded VBV.

With a VBV (maxrate/bufsize) and more than one thread, x264 sizes each row's quantiser
from how far the frames encoding beside it have got, so the same frames encode to
different pixels from run to run (measured on a busy machine: 5 encodes of one 360x640
clip, 4 different results; one thread, or no VBV, gave identical ones). A render must
give the same parts on any machine under any load, so parts are encoded by CRF alone,
on all threads, and then checked against the leaky bucket the cap describes. The rare part
that breaks it (heavy noise, confetti) is encoded again from its own frames with the
VBV on one thread: slower, but the same every time.
"""

from __future__ import annotations

import os
from pathlib import Path

import av

# Platforms take up to 25 Mbps (Instagram); the cap leaves room and keeps uploads small.
MAX_RATE = 12_000_000  # bits per second
BUFFER = 24_000_000  # bits
# x264's default initial buffer fill (vbv-init 0.9): what a part may spend at its start
INITIAL_FILL = 0.9


def vbv_excess(path: Path, rate: int = MAX_RATE, buffer: int = BUFFER) -> float:
    """How far (bits) the video track of `path` overdraws a decoder's buffer of `buffer`
    bits filled at `rate` bits/s from INITIAL_FILL: 0 or less when it keeps to the cap.
    The worst stretch of frames is the one whose bits most exceed what the rate brings
    in over it, found in one pass (a running minimum of bits less rate · time)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = sorted(((p.dts or 0) * stream.time_base, p.size * 8) for p in container.demux(stream) if p.size)
    worst = float("-inf")
    lowest = 0.0  # of spent - rate · t, before the stretch starts
    spent = 0.0
    for t, bits in packets:
        spent += bits
        worst = max(worst, spent - float(rate * t) - lowest)
        lowest = min(lowest, spent - float(rate * t))
    return worst - INITIAL_FILL * buffer


def encode_capped(source: Path, target: Path, video_options: dict[str, str], muxer_options: dict[str, str],
                  rate: int = MAX_RATE, buffer: int = BUFFER) -> None:  # fmt: skip
    """`source` again with its video encoded under the cap (x264's VBV, one thread) and
    its audio copied, to `target`."""
    options = {**video_options, "maxrate": str(rate), "bufsize": str(buffer), "threads": "1"}
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4", options=dict(muxer_options)) as out:
        video_in = src.streams.video[0]
        audio_in = src.streams.audio[0] if src.streams.audio else None
        video = out.add_stream("libx264", rate=video_in.average_rate, options=options)
        video.width, video.height, video.pix_fmt = video_in.width, video_in.height, "yuv420p"
        video.codec_context.time_base = video_in.time_base
        for name in ("color_primaries", "color_trc", "colorspace", "color_range"):
            setattr(video.codec_context, name, getattr(video_in.codec_context, name))
        audio = out.add_stream_from_template(audio_in) if audio_in is not None else None
        for packet in src.demux([s for s in (video_in, audio_in) if s is not None]):
            if packet.stream is video_in:
                for frame in packet.decode():
                    frame.pict_type = av.video.frame.PictureType.NONE
                    for encoded in video.encode(frame):
                        out.mux(encoded)
            elif packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
        for encoded in video.encode(None):
            out.mux(encoded)


def keep_to_cap(path: Path, video_options: dict[str, str], muxer_options: dict[str, str],
                rate: int = MAX_RATE, buffer: int = BUFFER) -> bool:  # fmt: skip
    """Encode the part at `path` again under the cap when it breaks it (in place, by
    rename: the part is whole at every moment); True when it did. Not synced here: in
    the render `path` is the temporary part, which is synced before it is named."""
    if vbv_excess(path, rate, buffer) <= 0:
        return False
    capped = path.with_name(path.name + ".capped")
    try:
        encode_capped(path, capped, video_options, muxer_options, rate, buffer)
        os.replace(capped, path)
    finally:
        capped.unlink(missing_ok=True)
    return True

