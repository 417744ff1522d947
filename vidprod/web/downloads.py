"""Serve a finished part with HTTP Range support (video players seek with it).

Litestar's File response has no Range support, and a single byte range is all players
ask for, so this small parser is ours (RFC 9110 §14): a multi-range request gets the
whole file, which the RFC allows.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from litestar.response import Stream

from vidprod.web.problems import problem

CHUNK = 256 << 10
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(first, last) inclusive; None for "send it all"; "unsatisfiable" for a 416."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match[1] and not match[2]):
        return None  # malformed or multi-range: ignore it and send the whole file
    if not match[1]:  # suffix: the last N bytes
        length = int(match[2])
        if length == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    first = int(match[1])
    last = int(match[2]) if match[2] else size - 1
    if first >= size or last < first:
        return "unsatisfiable"
    return first, min(last, size - 1)


def ranged_file(path: Path, range_header: str | None, *, media_type: str, download_name: str) -> Stream:
    size = path.stat().st_size
    wanted = parse_range(range_header, size)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'inline; filename="{download_name}"',
    }
    if wanted == "unsatisfiable":
        raise problem(416, "The requested range is outside the file.", headers={"Content-Range": f"bytes */{size}"})
    if wanted is None:
        first, last, status = 0, size - 1, 200
    else:
        first, last = wanted  # type: ignore[misc]
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    return Stream(
        _read(path, first, last - first + 1),
        status_code=status,
        media_type=media_type,
        headers=headers,
    )


async def _read(path: Path, offset: int, length: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as f:
        await f.seek(offset)
        while length > 0:
            chunk = await f.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
