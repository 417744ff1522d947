"""Check a part against what TikTok, Instagram Reels and YouTube Shorts accept
(shared/PLATFORMS.md), reading the file back as a platform's ingest would."""

from __future__ import annotations

import struct
from pathlib import Path

import av


def top_level_boxes(data: bytes) -> list[bytes]:
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind)
        if size < 8:
            break
        offset += size
    return boxes


def platform_problems(path: Path, *, vertical: bool = True) -> list[str]:
    """Every way the file breaks the platforms' rules (empty when it is fine). Decodes
    every frame, so a part that does not play shows up here."""
    problems = []
    data = path.read_bytes()
    boxes = top_level_boxes(data)
    if b"moov" not in boxes or b"mdat" not in boxes or boxes.index(b"moov") > boxes.index(b"mdat"):
        problems.append(f"moov is not before mdat: {boxes}")
    if b"elst" in data[: data.find(b"mdat")] if b"mdat" in data else b"elst" in data:
        problems.append("has an edit list")
    with av.open(str(path)) as container:
        if len(container.streams.video) != 1 or len(container.streams.audio) != 1:
            problems.append("needs exactly one video and one audio track")
            return problems
        video, audio = container.streams.video[0], container.streams.audio[0]
        ctx = video.codec_context
        if ctx.name != "h264" or ctx.profile != "High":
            problems.append(f"video is {ctx.name} {ctx.profile}, not H.264 High")
        if ctx.pix_fmt != "yuv420p":
            problems.append(f"pixel format {ctx.pix_fmt}")
        if (ctx.color_primaries, ctx.color_trc, ctx.colorspace) != (1, 1, 1):
            problems.append("not tagged BT.709")
        if audio.codec_context.name != "aac" or audio.codec_context.profile != "LC":
            problems.append(f"audio is {audio.codec_context.name} {audio.codec_context.profile}")
        if audio.codec_context.sample_rate != 48000:
            problems.append(f"audio at {audio.codec_context.sample_rate} Hz")
        rate = float(video.average_rate or 0)
        if not 23 <= rate <= 60:
            problems.append(f"{rate:.2f} fps")
        if video.width > 1920 or video.width % 2 or video.height % 2:
            problems.append(f"size {video.width}x{video.height}")
        if vertical and video.width * 16 != video.height * 9:
            problems.append(f"not 9:16: {video.width}x{video.height}")
        duration = container.duration / av.time_base
        if duration and len(data) * 8 / duration > 25e6:
            problems.append("over 25 Mbit/s")
        if b"open_gop=0" not in data[data.find(b"mdat") :][:200000]:
            problems.append("x264 was not set to closed GOPs")
        frames, steps = 0, set()
        for packet in container.demux(video):
            if packet.duration:
                steps.add(packet.duration)
            for _ in packet.decode():
                frames += 1
        if frames == 0:
            problems.append("no picture decodes")
        if len(steps) > 1:
            problems.append(f"variable frame durations {sorted(steps)}")
    return problems
