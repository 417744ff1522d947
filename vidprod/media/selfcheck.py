"""Proof that the native libraries behind the media code load on this machine: a
missing system library (MediaPipe's libEGL, for one) otherwise shows only when the
first job runs, as eye contact and face checks silently switched off."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np

from vidprod.media.faces import FaceFinder

SIZE = 64


def check_native_libraries(model: bytes) -> str:
    """Encode one frame and a little sound the way parts are encoded (H.264, AAC in
    MP4), decode them back, and run MediaPipe's FaceLandmarker on the picture. Raises
    whatever fails to load; returns a line saying what was proved."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=30)
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        frame = av.VideoFrame.from_ndarray(np.full((SIZE, SIZE, 3), 128, np.uint8), format="rgb24")
        frame.pts, frame.time_base = 0, Fraction(1, 30)
        samples = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        samples.sample_rate, samples.pts = 48000, 0
        for stream, item in ((video, frame), (sound, samples)):
            for packet in [*stream.encode(item), *stream.encode(None)]:
                out.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
    if decoded.shape != (SIZE, SIZE, 3):
        raise RuntimeError(f"decoded a {decoded.shape} picture from a {SIZE}x{SIZE} frame")
    with FaceFinder(model) as finder:
        finder.find(decoded)  # a flat grey picture: no face, but the graph ran
    return f"PyAV {av.__version__} (H.264, AAC, MP4) and MediaPipe's FaceLandmarker load and run"
