"""Receive a multipart upload straight to disk, never holding the body in memory.

Litestar's own form parsing spools files to an anonymous temporary file that we would
then have to copy (seconds for a 1 GB video); parsing the stream ourselves with the
`multipart` package's push parser writes the bytes once, into the data volume, so the
file can be renamed into place the moment the last byte arrives.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio
import anyio.to_thread
from litestar import Request
from litestar.exceptions import InternalServerException
from multipart import (
    MultipartError,
    MultipartSegment,
    PushMultipartParser,
    parse_options_header,
)

from vidprod.domain.disk import disk_room_problem

log = logging.getLogger(__name__)

WRITE_CHUNK = 1 << 20  # batch small network chunks into 1 MiB writes; free disk is checked at each
SYNC_EVERY = 64 << 20  # flush to disk as we go, so the final fsync is short
CUT_OFF = "The connection closed before the upload ended; nothing of it was kept."
MAX_FIELD_BYTES = 64 << 10
FILE_FIELD = "file"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
NO_FILENAME = (
    "The 'file' field came without a file name, so it is not a file. Send the video as a"
    " file (filename=\"...\" in the part's header, on one line): a line break in the file's"
    " name cuts that header short. Rename the file and try again."
)


class UploadRejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ReceivedUpload:
    path: Path  # the staged file, in the data dir; the caller adopts or deletes it
    filename: str
    size: int
    fields: dict[str, str] = field(default_factory=dict)


def discard_stale_uploads(staging_dir: Path) -> int:
    """Remove staged files left by a process that died mid-upload; call before serving."""
    removed = 0
    for path in staging_dir.glob("upload-*.part"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def too_large_message(limit_bytes: int) -> str:
    return f"The file is larger than this server accepts ({limit_bytes // (1024 * 1024)} MB)."


async def receive_upload(
    request: Request, staging_dir: Path, limit_bytes: int, floor_bytes: int, *, stall_seconds: float = 60
) -> ReceivedUpload:
    """Stream the multipart body to a staged file. Refused with 507, before anything is
    stored, while receiving or once all arrived, when the disk would fall below
    `floor_bytes` free; with 408 when nothing arrives for `stall_seconds`."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != "multipart/form-data" or not options.get("boundary"):
        raise UploadRejected(
            415, "Send the video as multipart/form-data with the file in a field named 'file'."
        )
    text = request.headers.get("content-length", "")
    declared = int(text) if text.isascii() and text.isdigit() else None  # None: chunked
    if declared is not None and declared > limit_bytes + (1 << 20):
        raise UploadRejected(413, too_large_message(limit_bytes))

    staging_dir.mkdir(parents=True, exist_ok=True)
    expected = declared or 0
    if short := disk_room_problem(staging_dir, expected, floor_bytes):
        raise UploadRejected(507, short)
    staged = staging_dir / f"upload-{uuid.uuid4().hex}.part"
    receiver = _Receiver(staged, limit_bytes, floor_bytes)
    try:
        parser = PushMultipartParser(
            options["boundary"],
            content_length=-1 if declared is None else declared,
            max_segment_count=16,
        )
        with parser:
            async for chunk in _chunks(request, stall_seconds):
                for event in parser.parse(chunk):
                    await receiver.feed(event)
            for event in parser.parse(b""):
                await receiver.feed(event)
        return await receiver.finish()
    except MultipartError as exc:
        receiver.discard()
        raise UploadRejected(400, f"The upload is not valid multipart/form-data ({exc}).") from None
    except BaseException:
        receiver.discard()  # a rejected, broken or abandoned upload leaves nothing behind
        raise


async def _chunks(request: Request, stall_seconds: float) -> AsyncIterator[bytes]:
    """The body's chunks; uvicorn has no timeout for a client that stops sending mid-body,
    and Litestar reports a client that went away as a 500 (InternalServerException)."""
    stream = request.stream()
    while True:
        try:
            with anyio.fail_after(stall_seconds):
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadRejected(
                408, f"Nothing arrived for {stall_seconds:g} s, so the upload was stopped. Send it again."
            ) from None
        except InternalServerException as exc:
            if "disconnected" not in str(exc.detail):
                raise
            log.info("the client went away mid-upload; its bytes were dropped")
            raise UploadRejected(400, CUT_OFF) from None
        yield chunk


class _Receiver:
    def __init__(self, staged: Path, limit_bytes: int, floor_bytes: int) -> None:
        self.staged = staged
        self.limit = limit_bytes
        self.floor = floor_bytes
        self.file: IO[bytes] | None = None
        self.filename = ""
        self.size = 0
        self.since_sync = 0
        self.buffer = bytearray()
        self.fields: dict[str, str] = {}
        self.current: MultipartSegment | None = None
        self.field_value = bytearray()
        self.got_file = False

    async def feed(self, event: MultipartSegment | bytes | bytearray | None) -> None:
        if isinstance(event, MultipartSegment):
            self.current = event
            if event.name == FILE_FIELD and event.filename is None:
                # A line break in the name ends the part's header early and loses the
                # filename: say so rather than "field 'file' is too long".
                raise UploadRejected(400, NO_FILENAME)
            if event.name == FILE_FIELD:
                if self.got_file:
                    raise UploadRejected(400, "Send one file per upload.")
                self.got_file = True
                name = CONTROL_CHARACTERS.sub(" ", event.filename).replace("\\", "/")
                self.filename = Path(name).name.strip() or "upload"
                self.file = await anyio.to_thread.run_sync(open, self.staged, "xb")
        elif event is None:
            if self.current is not None and self.current.name == FILE_FIELD and self.file:
                await self._flush()
            elif self.current is not None and self.current.name:
                self.fields[self.current.name] = self.field_value.decode("utf-8", "replace")
            self.current = None
            self.field_value.clear()
        elif self.current is not None:
            if self.current.name == FILE_FIELD and self.file is not None:
                self.size += len(event)
                if self.size > self.limit:
                    raise UploadRejected(413, too_large_message(self.limit))
                self.buffer += event
                if len(self.buffer) >= WRITE_CHUNK:
                    await self._flush()
            else:
                self.field_value += event
                if len(self.field_value) > MAX_FIELD_BYTES:
                    raise UploadRejected(400, f"The form field '{self.current.name}' is too long.")

    async def _flush(self) -> None:
        assert self.file is not None
        data, self.buffer = bytes(self.buffer), bytearray()
        if data:
            await anyio.to_thread.run_sync(self.file.write, data)
            self.since_sync += len(data)
        if self.since_sync >= SYNC_EVERY:
            self.since_sync = 0
            await anyio.to_thread.run_sync(self._sync)
        # A chunked body declares no size: check the room as it grows (statvfs, cheap).
        if short := disk_room_problem(self.staged.parent, 0, self.floor):
            raise UploadRejected(507, short)

    def _sync(self) -> None:
        assert self.file is not None
        self.file.flush()
        os.fdatasync(self.file.fileno())

    async def finish(self) -> ReceivedUpload:
        if self.file is None:
            raise UploadRejected(400, "No file was sent: put the video in a field named 'file'.")
        await self._flush()  # checks the room once more, with every byte on disk
        await anyio.to_thread.run_sync(self._sync)
        self.file.close()
        self.file = None
        if self.size == 0:
            self.discard()
            raise UploadRejected(422, "The file is empty.")
        return ReceivedUpload(self.staged, self.filename, self.size, self.fields)

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.staged.unlink(missing_ok=True)
