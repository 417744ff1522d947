"""Serve a finished part with HTTP Range support (video players seek with it).

Litestar's File response has no Range support, and a single byte range is all players
ask for, so this small parser is ours (RFC 9110 §14): a multi-range request gets the
whole file, which the RFC allows.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
from litestar.response import Stream

from vidprod.store.objects import Objects
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


async def stored_file(
    objects: Objects, key: str | None, range_header: str | None, *, media_type: str, download_name: str,
    missing: tuple[int, str],
) -> Stream:
    """A stored object as a (ranged) response: read from its local file, or in ranged
    reads from remote storage through the app (the storage need not be public).
    `missing` is the problem's status and words when there is no such object."""
    if key is not None:
        path = objects.path(key)
        if path is not None:
            if path.is_file():
                return ranged_file(path, range_header, media_type=media_type, download_name=download_name)
        else:
            size = await anyio.to_thread.run_sync(objects.size, key)
            if size is not None:
                return _ranged(size, range_header, media_type, download_name,
                               lambda first, length: _read_object(objects, key, first, length))  # fmt: skip
    raise problem(*missing)


def ranged_file(path: Path, range_header: str | None, *, media_type: str, download_name: str) -> Stream:
    return _ranged(path.stat().st_size, range_header, media_type, download_name,
                   lambda first, length: _read(path, first, length))  # fmt: skip


def _ranged(size: int, range_header: str | None, media_type: str, download_name: str,
            read: Callable[[int, int], AsyncIterator[bytes]]) -> Stream:  # fmt: skip
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
        read(first, last - first + 1),
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


async def _read_object(objects: Objects, key: str, offset: int, length: int) -> AsyncIterator[bytes]:
    chunks = iter(await anyio.to_thread.run_sync(objects.read, key, offset, length))
    while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
        yield chunk
