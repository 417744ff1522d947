"""Just enough of the MP4 container to judge an upload the way the platforms do: the
order of the top-level boxes (Instagram wants `moov` before `mdat`) and the duration
in `mvhd`. Only box headers are read, never the media."""

from __future__ import annotations

import struct
from pathlib import Path


def top_level_boxes(path: Path) -> list[tuple[str, int, int]]:
    """(type, offset, size) of each top-level box; stops at the first malformed one."""
    boxes: list[tuple[str, int, int]] = []
    end = path.stat().st_size
    with open(path, "rb") as file:
        offset = 0
        while offset + 8 <= end:
            file.seek(offset)
            size, kind = struct.unpack(">I4s", file.read(8))
            if size == 1:  # a 64-bit size follows the type
                size = struct.unpack(">Q", file.read(8))[0]
            elif size == 0:  # the box runs to the end of the file
                size = end - offset
            if size < 8 or offset + size > end:
                break
            boxes.append((kind.decode("latin-1"), offset, size))
            offset += size
    return boxes


def problem(path: Path, *, faststart: bool) -> str | None:
    """Why the file is not an MP4 the platform takes, or None."""
    kinds = [kind for kind, _, _ in top_level_boxes(path)]
    if not kinds or kinds[0] != "ftyp":
        return "The file is not an MP4 or MOV file (no ftyp box at the start)."
    if "moov" not in kinds:
        return "The file has no moov box (the upload may be incomplete)."
    if "mdat" not in kinds:
        return "The file has no mdat box (no media data)."
    if faststart and kinds.index("moov") > kinds.index("mdat"):
        return "The moov box comes after mdat: the video is not optimized for streaming (write it with faststart)."
    return None


def duration_seconds(path: Path) -> float | None:
    """The movie duration from `mvhd`, or None when it cannot be read."""
    for kind, offset, size in top_level_boxes(path):
        if kind != "moov":
            continue
        with open(path, "rb") as file:
            file.seek(offset)
            moov = file.read(min(size, 1 << 20))  # mvhd is the first child in practice
        at = moov.find(b"mvhd")
        if at < 4:
            return None
        version = moov[at + 4]
        if version == 1:
            timescale, duration = struct.unpack(">IQ", moov[at + 24 : at + 36])
        else:
            timescale, duration = struct.unpack(">II", moov[at + 16 : at + 24])
        return duration / timescale if timescale else None
    return None
