"""Cover frames: a few evenly spaced candidate frames of a finished part for the creator
to choose from, and the frame at a chosen time as a JPEG (YouTube takes the picture
itself; TikTok and Reels take the time).

Frames are read back from the part's own MP4, so the cover is exactly a frame viewers
see, whichever render made the file.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2

CANDIDATES = 5
EDGE_MS = 300  # never the first or last instants of a part (cuts, fades)
JPEG_QUALITY = 88


class CoverError(ValueError):
    """The part cannot give a frame at that time."""


def candidate_times(duration_seconds: float) -> list[int]:
    """Milliseconds of CANDIDATES frames spread over the part, away from its edges."""
    length = int(duration_seconds * 1000)
    edge = min(EDGE_MS, length // 4)
    span = max(0, length - 2 * edge)
    return sorted({edge + span * i // (CANDIDATES - 1) for i in range(CANDIDATES)} - {length} or {0})


def frame_jpeg(path: Path, ms: int) -> bytes:
    """The first frame shown at `ms` milliseconds into the video, as a JPEG."""
    if ms < 0:
        raise CoverError("a cover time is zero or more milliseconds")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            target = ms / 1000
            if stream.time_base is not None:
                container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            chosen = None
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                chosen = frame
                if frame.time + 1e-3 >= target:
                    break
    except (av.FFmpegError, IndexError) as exc:
        raise CoverError(f"the part could not be read: {exc}") from None
    if chosen is None:
        raise CoverError("the part has no frame at that time")
    ok, jpeg = cv2.imencode(".jpg", chosen.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise CoverError("the frame could not be encoded")
    return jpeg.tobytes()
