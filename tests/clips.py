"""Real encoded test clips made on the fly with PyAV (nothing is committed).

The picture moves every frame (so an encoder cannot cheat) and carries the frame number
as a bar code in its top rows, so tests can tell which source frame a part starts with.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 48000


def make_clip(
    path: Path,
    *,
    seconds: float = 4.0,
    size: tuple[int, int] = (320, 240),
    fps: int = 30,
    audio: bool = True,
    gop: int = 30,
    faststart: bool = True,
) -> Path:
    width, height = size
    options = {"movflags": "+faststart"} if faststart and path.suffix in (".mp4", ".mov") else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "g": str(gop)})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=AUDIO_RATE)
            sound.layout = "stereo"
        frames = int(round(seconds * fps))
        columns, rows = np.arange(width), np.arange(height)
        image = np.empty((height, width, 3), np.uint8)
        for i in range(frames):
            image[..., 0] = ((columns + i * 4) % 256)[None, :]
            image[..., 1] = ((rows + i * 2) % 256)[:, None]
            image[..., 2] = (i * 3) % 256
            image[:8] = frame_barcode(i, width)[None, :, None]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if sound is not None:
            total = int(round(seconds * AUDIO_RATE))
            t = np.arange(total) / AUDIO_RATE
            signal = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = np.stack([signal[start : start + 1024]] * 2)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate = AUDIO_RATE
                frame.pts = start
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
    return path


BARCODE_BITS = 12


def frame_barcode(index: int, width: int) -> np.ndarray:
    """A row of 12 black/white cells spelling the frame index in binary."""
    cell = width // BARCODE_BITS
    row = np.zeros(width, np.uint8)
    for bit in range(BARCODE_BITS):
        if index >> bit & 1:
            row[bit * cell : (bit + 1) * cell] = 255
    return row


def read_barcode(frame: av.VideoFrame) -> int:
    gray = frame.to_ndarray(format="gray")[2:6].mean(axis=0)
    cell = gray.shape[0] // BARCODE_BITS
    return sum(
        1 << bit
        for bit in range(BARCODE_BITS)
        if gray[bit * cell + cell // 4 : (bit + 1) * cell - cell // 4].mean() > 128
    )


def truncate(source: Path, dest: Path, fraction: float) -> Path:
    data = source.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def media_facts(path: Path) -> dict:
    """What a player would see: durations, sizes, audio presence, first frame."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        first = next(container.decode(video))
        return {
            "duration": container.duration / av.time_base,
            "video_duration": float(video.duration * video.time_base),
            "audio_duration": float(audio.duration * audio.time_base) if audio else None,
            "width": video.width,
            "height": video.height,
            "codec": video.codec_context.name,
            "audio_codec": audio.codec_context.name if audio else None,
            "first_frame": first,
        }
