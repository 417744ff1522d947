"""Real encoded test clips made on the fly with PyAV (nothing is committed).

The picture moves every frame (so an encoder cannot cheat) and carries the frame number
as a bar code in its top rows, so tests can tell which source frame a part starts with.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 48000


def make_clip(
    path: Path,
    *,
    seconds: float = 4.0,
    size: tuple[int, int] = (360, 640),
    fps: int = 30,
    audio: bool | str = True,
    pauses: tuple[tuple[float, float], ...] = (),
    gop: int = 30,
    faststart: bool = True,
    pixel_format: str = "yuv420p",
    codec: str = "libx264",
    sar: Fraction | None = None,
    beeps: tuple[float, ...] = (),
    voice: np.ndarray | None = None,
) -> Path:
    """A clip whose picture moves every frame and carries its frame number as a bar code.

    audio: True for a 440 Hz tone, "speech" for speech-like bursts with silent `pauses`
    ((start, length) in seconds), False for none. `beeps`: at each of these times a white
    box in one frame and (in place of the other audio) a 30 ms 1 kHz beep, to check sync.
    `voice`: mono samples at AUDIO_RATE (e.g. from `spoken`) from the start, silence after."""
    flash_frames = {int(round(t * fps)) for t in beeps}
    width, height = size
    options = {"movflags": "+faststart"} if faststart and path.suffix in (".mp4", ".mov") else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream(codec, rate=fps, options={"preset": "ultrafast", "g": str(gop)})
        video.width, video.height, video.pix_fmt = width, height, pixel_format
        if sar is not None:
            video.codec_context.sample_aspect_ratio = sar
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=AUDIO_RATE)
            sound.layout = "stereo"
        columns, rows = np.arange(width), np.arange(height)
        image = np.empty((height, width, 3), np.uint8)

        def pictures():  # type: ignore[no-untyped-def]
            for i in range(int(round(seconds * fps))):
                image[..., 0] = ((columns + i * 4) % 256)[None, :]
                image[..., 1] = ((rows + i * 2) % 256)[:, None]
                image[..., 2] = (i * 3) % 256
                image[:8] = frame_barcode(i, width)[None, :, None]
                if i in flash_frames:  # small, so it is no scene change for the cut planner
                    image[16:64, :48] = 255
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                if pixel_format != "yuv420p":
                    frame = frame.reformat(format=pixel_format)
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                yield frame

        _encode_all(out, video, pictures())
        if sound is not None:
            total = int(round(seconds * AUDIO_RATE))
            if voice is not None:
                signal = np.zeros(total, np.float32)
                signal[: min(total, len(voice))] = voice[:total]
            elif beeps:
                signal = np.zeros(total, np.float32)
                burst = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(int(0.03 * AUDIO_RATE)) / AUDIO_RATE)
                for t in beeps:
                    start = int(round(t * fps)) * AUDIO_RATE // fps
                    signal[start : start + len(burst)] = burst
            elif audio == "speech":
                signal = speech_like(seconds, pauses)
            else:
                t = np.arange(total) / AUDIO_RATE
                signal = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)

            def chunks():  # type: ignore[no-untyped-def]
                for start in range(0, total, 1024):
                    chunk = np.stack([signal[start : start + 1024]] * 2)
                    frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                    frame.sample_rate = AUDIO_RATE
                    frame.pts = start
                    yield frame

            _encode_all(out, sound, chunks())
    return path


def spoken(text: str, folder: Path, words_per_minute: int = 160) -> np.ndarray:
    """`text` read by espeak-ng (Debian package espeak-ng), as mono float samples at
    AUDIO_RATE: speech whose words are known, for word error rates and timings."""
    wav = folder / "spoken.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(words_per_minute), "-w", str(wav), text],
                   check=True, capture_output=True)  # fmt: skip
    resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
    chunks = []
    with av.open(str(wav)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32)


def _encode_all(out, stream, frames) -> None:  # type: ignore[no-untyped-def]
    """Encode every frame into the container, then flush the encoder."""
    for frame in frames:
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def speech_like(seconds: float, pauses: tuple[tuple[float, float], ...], seed: int = 7) -> np.ndarray:
    """Syllable-rate bursts of voiced noise with the short gaps between words that real
    speech has (80-140 ms), over a quiet room; silent for each (start, length) pause."""
    rng = np.random.default_rng(seed)
    total = int(round(seconds * AUDIO_RATE))
    t = np.arange(total) / AUDIO_RATE
    voice = np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t)
    voice += 0.4 * rng.standard_normal(total)
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.28))
    envelope = syllables.copy()
    position = 0.0
    while position < seconds:  # short gaps between words
        position += rng.uniform(0.6, 1.4)
        gap = rng.uniform(0.08, 0.14)
        envelope[int(position * AUDIO_RATE) : int((position + gap) * AUDIO_RATE)] = 0
    for start, length in pauses:
        envelope[int(start * AUDIO_RATE) : int((start + length) * AUDIO_RATE)] = 0
    room = 0.002 * rng.standard_normal(total)
    return (0.25 * voice * envelope + room).astype(np.float32)


BARCODE_BITS = 12


def frame_barcode(index: int, width: int) -> np.ndarray:
    """A row of 12 black/white cells spelling the frame index in binary."""
    cell = width // BARCODE_BITS
    row = np.zeros(width, np.uint8)
    for bit in range(BARCODE_BITS):
        if index >> bit & 1:
            row[bit * cell : (bit + 1) * cell] = 255
    return row


def read_barcode(frame: av.VideoFrame, source_height: int = 640) -> int:
    """The frame number drawn by make_clip, read from a picture scaled to fill the width."""
    scale = frame.height / source_height
    gray = frame.to_ndarray(format="gray")[int(2 * scale) : int(6 * scale) + 1].mean(axis=0)
    cell = gray.shape[0] // BARCODE_BITS
    return sum(
        1 << bit
        for bit in range(BARCODE_BITS)
        if gray[bit * cell + cell // 4 : (bit + 1) * cell - cell // 4].mean() > 128
    )


def encode_pictures(path: Path, pictures, fps: int = 30, gop: int = 30) -> Path:  # type: ignore[no-untyped-def]
    """A silent H.264 clip of RGB pictures (all the same size)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "g": str(gop)})

        def frames():  # type: ignore[no-untyped-def]
            for i, picture in enumerate(pictures):
                if i == 0:
                    stream.height, stream.width = picture.shape[:2]
                    stream.pix_fmt = "yuv420p"
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = i
                yield frame

        _encode_all(out, stream, frames())
    return path


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


def grace_hopper() -> np.ndarray:
    """A public-domain photo that ships with matplotlib (512x600 RGB)."""
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return np.asarray(Image.open(path).convert("RGB"))


def make_hdr_clip(path: Path, transfer: str, image: np.ndarray, seconds: float = 1.0) -> Path:
    """HEVC 10-bit BT.2020 video of an SDR picture as a camera would record it in HDR:
    SDR white at the reference level (203 nits in PQ, 75 % signal in HLG)."""
    linear = (image.astype(np.float64) / 255) ** 2.4  # BT.1886 display light
    m = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
    linear = linear @ m.T  # BT.709 -> BT.2020 primaries
    if transfer == "pq":
        m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 32, 3424 / 4096, 2413 / 128, 2392 / 128
        y = np.clip(linear * 203 / 10000, 0, 1) ** m1
        signal = ((c1 + c2 * y) / (1 + c3 * y)) ** m2
        trc = 16
    else:
        a, b, c = 0.17883277, 0.28466892, 0.55991073
        e = np.clip(linear * 0.2647, 0, 1)
        signal = np.where(e <= 1 / 12, np.sqrt(3 * e), a * np.log(np.maximum(12 * e - b, 1e-9)) + c)
        trc = 18
    rgb48 = np.round(np.clip(signal, 0, 1) * 65535).astype(np.uint16)
    height, width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    rgb48 = np.ascontiguousarray(rgb48[:height, :width])
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx265", rate=30, options={"preset": "ultrafast", "crf": "12", "x265-params": "log-level=error"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p10le"
        ctx = video.codec_context
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = 9, trc, 9, 1
        base = av.VideoFrame.from_ndarray(rgb48, format="rgb48le")

        def frames():  # type: ignore[no-untyped-def]
            for i in range(int(seconds * 30)):
                frame = base.reformat(format="yuv420p10le", dst_colorspace="BT2020", dst_color_range="MPEG")
                frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range = 9, trc, 9, 1
                frame.pts = i
                yield frame

        _encode_all(out, video, frames())
    return path


def make_sparse_clip(path: Path, times: list[float], size: tuple[int, int] = (64, 64), fps: int = 30) -> Path:
    """A silent H.264 clip whose frames show at `times` (seconds) only: three frames ten
    hours apart make a tiny file that claims a day of video."""
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"

        def frames():  # type: ignore[no-untyped-def]
            for i, t in enumerate(times):
                picture = np.full((height, width, 3), (i * 70) % 256, np.uint8)
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = int(round(t * fps))
                frame.time_base = Fraction(1, fps)
                yield frame

        _encode_all(out, stream, frames())
    return path


def make_huge_frames(path: Path, size: tuple[int, int] = (16000, 16000), frames: int = 2) -> Path:
    """A PNG-in-MOV video of black 1-bit pictures: a 16000x16000 picture costs 32 MB to
    make here, and 768 MB as RGB in a decoder that does not refuse it."""
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "monob"

        def pictures():  # type: ignore[no-untyped-def]
            for i in range(frames):
                frame = av.VideoFrame(width, height, "monob")
                frame.planes[0].update(bytes(frame.planes[0].buffer_size))
                frame.pts, frame.time_base = i, Fraction(1)
                yield frame

        _encode_all(out, stream, pictures())
    return path


def write_still(path: Path, format: str, size: tuple[int, int] = (360, 640)) -> Path:
    """One JPEG or PNG picture (whatever `path` is named)."""
    from PIL import Image

    width, height = size
    picture = np.zeros((height, width, 3), np.uint8)
    picture[..., 0] = np.arange(width, dtype=np.uint8)[None, :]
    Image.fromarray(picture).save(path, format=format)
    return path


def make_song_with_cover(path: Path, seconds: float = 0.5) -> Path:
    """An MP3 with cover art: FFmpeg lists the picture as a video stream (attached_pic)."""
    import io

    from PIL import Image

    cover = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(cover, "PNG")
    with av.open(str(path), "w") as out:
        sound = out.add_stream("libmp3lame", rate=44100)
        sound.layout = "mono"
        art = out.add_stream("png")
        art.width, art.height, art.pix_fmt = 64, 64, "rgb24"
        art.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(cover.getvalue())
        packet.stream, packet.pts, packet.dts = art, 0, 0
        out.mux(packet)
        dtype = {"fltp": np.float32, "s32p": np.int32, "s16p": np.int16}[sound.codec_context.format.name]

        def chunks():  # type: ignore[no-untyped-def]
            for i in range(int(seconds * 44100 / 1152) + 1):
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1152), dtype), format=sound.codec_context.format.name, layout="mono")
                frame.sample_rate, frame.pts = 44100, i * 1152
                yield frame

        _encode_all(out, sound, chunks())
    return path


def damage_middle(source: Path, dest: Path) -> Path:
    """The file with its middle fifth overwritten by noise (a bad copy, not a short one)."""
    data = bytearray(source.read_bytes())
    noise = np.random.default_rng(1).integers(0, 256, len(data) // 5, dtype=np.uint8).tobytes()
    start = len(data) * 2 // 5
    data[start : start + len(noise)] = noise
    dest.write_bytes(bytes(data))
    return dest
