"""Find a scene change in a short stretch of video: the fallback cut when nobody pauses.

Decodes only the window asked about (seek, then decode), shrinks each frame to 64x36
grey and compares neighbours. Run only for windows without a pause, so its cost is paid
rarely.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidprod.media.probe import video_stream

# A change counts when the mean absolute difference is large in absolute terms and
# stands well above the usual frame-to-frame change in the window (motion, noise).
MIN_DIFFERENCE = 20.0
MIN_CONTRAST = 4.0


def find_scene_change(path: Path, lo: Fraction, hi: Fraction) -> Fraction | None:
    """Time of the first frame of the strongest scene change in [lo, hi], or None."""
    with av.open(str(path)) as container:
        video = video_stream(container)
        video.thread_type = "AUTO"
        tb = video.time_base
        container.seek(int(lo / tb), stream=video, backward=True)
        previous = None
        changes: list[tuple[float, Fraction]] = []
        for frame in container.decode(video):
            if frame.pts is None:
                continue
            t = frame.pts * tb
            if t > hi:
                break
            small = frame.reformat(width=64, height=36, format="gray").to_ndarray().astype(np.int16)
            if previous is not None and t >= lo:
                changes.append((float(np.abs(small - previous).mean()), t))
            previous = small
    if len(changes) < 3:
        return None
    differences = np.array([d for d, _ in changes])
    typical = float(np.median(differences)) + 1.0
    score, t = max(changes, key=lambda c: c[0])
    if score >= MIN_DIFFERENCE and score / typical >= MIN_CONTRAST:
        return t
    return None
