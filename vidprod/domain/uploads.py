"""Resumable (tus) uploads: what may be created, how far each has got, when it expires.

The one rule that makes resuming safe: an upload's recorded offset (`received`) is
raised only after the bytes below it were fsynced, and a new append first truncates
the file to that offset. So after a crash the offset a client is told is never past
what is on disk, and bytes that were written but never recorded are simply sent again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import IO, Any

from vidprod.config import Settings
from vidprod.domain.disk import disk_room_problem
from vidprod.store import Database
from vidprod.store import uploads as q

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
# Cheap enough to verify while the bytes stream through (hashlib, no extra pass).
CHECKSUM_ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "md5": hashlib.md5,
}
MAX_METADATA_CHARS = 16 << 10


class UploadError(Exception):
    """A request about an upload that cannot be served; status and words for the uploader."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def too_large_message(limit_bytes: int) -> str:
    return f"The file is larger than this server accepts ({limit_bytes // (1024 * 1024)} MB)."


def parse_metadata(header: str) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs (the value may be left out)."""
    if len(header) > MAX_METADATA_CHARS:
        raise UploadError(400, "Upload-Metadata is too long.")
    pairs: dict[str, str] = {}
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, encoded = item.partition(" ")
        encoded = encoded.strip()
        if not key.isascii() or " " in encoded or key in pairs:
            raise UploadError(400, "Upload-Metadata must be comma-separated 'key base64-value' pairs, each key once.")
        try:
            pairs[key] = base64.b64decode(encoded, validate=True).decode("utf-8") if encoded else ""
        except (binascii.Error, UnicodeDecodeError):
            raise UploadError(
                400, f"The Upload-Metadata value of '{key}' is not base64-encoded UTF-8 text."
            ) from None
    return pairs


def http_date(timestamp: float) -> str:
    """An RFC 7231 date (Upload-Expires)."""
    return formatdate(timestamp, usegmt=True)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Upload:
    id: str
    length: int
    received: int
    metadata_header: str
    state: str  # receiving, done or failed
    job_id: str | None
    error_status: int | None
    error: str | None
    expires_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Upload:
        return cls(
            id=row["id"], length=row["length"], received=row["received"],
            metadata_header=row["metadata"], state=row["state"], job_id=row["job_id"],
            error_status=row["error_status"], error=row["error"],
            expires_at=datetime.fromisoformat(row["expires_at"]).timestamp(),
        )  # fmt: skip

    @property
    def metadata(self) -> dict[str, str]:
        return parse_metadata(self.metadata_header)

    @property
    def filename(self) -> str:
        """The name the browser gave (tus-js-client sends `filename`; some clients `name`)."""
        meta = self.metadata
        name = meta.get("filename") or meta.get("name") or ""
        return Path(name.replace("\\", "/")).name or "upload"

    @property
    def all_received(self) -> bool:
        return self.received == self.length


class TusUploads:
    def __init__(self, db: Database, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.directory = settings.tus_dir

    def path(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.part"

    def next_expiry(self) -> float:
        return self.clock() + self.settings.upload_expire_hours * 3600

    def room_problem(self, incoming_bytes: int) -> str | None:
        return disk_room_problem(self.directory, incoming_bytes, self.settings.min_free_mb << 20)

    def create(self, length: int, metadata_header: str) -> Upload:
        """A new, empty upload of `length` bytes; refused when too large, empty or
        when the disk would fall below the floor."""
        if length > self.settings.max_upload_bytes:
            raise UploadError(413, too_large_message(self.settings.max_upload_bytes))
        if length == 0:
            raise UploadError(422, "The file is empty.")
        parse_metadata(metadata_header)
        self.directory.mkdir(parents=True, exist_ok=True)
        if short := self.room_problem(length):
            raise UploadError(507, short)
        upload_id = uuid.uuid4().hex
        # The file first: a row never points at nothing; an orphan file is swept by expiry.
        fd = os.open(self.path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        expires = self.next_expiry()
        self.db.write(lambda conn: q.insert_upload(
            conn, upload_id=upload_id, length=length, metadata=metadata_header, expires_at=_iso(expires)
        ))  # fmt: skip
        return self.get(upload_id)

    def get(self, upload_id: str) -> Upload:
        """The upload; 404 when unknown or terminated, 410 once an unfinished one expired."""
        row = self.db.read(lambda conn: q.get_upload(conn, upload_id))
        if row is None:
            raise UploadError(404, "There is no upload with this id (it may have been cancelled or cleaned up).")
        upload = Upload.from_row(row)
        if upload.state == "receiving" and upload.expires_at <= self.clock():
            raise UploadError(410, "This upload was left unfinished for too long and has expired; start it again.")
        return upload

    def open_appender(self, upload: Upload) -> Appender:
        return Appender(self, upload)

    def record(self, upload_id: str, received: int) -> None:
        """Called only once the bytes up to `received` are fsynced."""
        self.db.write(lambda conn: q.update_upload(
            conn, upload_id, received=received, expires_at=_iso(self.next_expiry())
        ))  # fmt: skip

    def mark_done(self, upload_id: str, job_id: str) -> None:
        self.db.write(lambda conn: q.update_upload(
            conn, upload_id, state="done", job_id=job_id, expires_at=_iso(self.next_expiry())
        ))  # fmt: skip

    def mark_failed(self, upload_id: str, status: int, error: str) -> None:
        self.db.write(lambda conn: q.update_upload(
            conn, upload_id, state="failed", error_status=status, error=error,
            expires_at=_iso(self.next_expiry()),
        ))  # fmt: skip

    def terminate(self, upload_id: str) -> None:
        """Forget the upload and its bytes (a job it became stays)."""
        if not self.db.write(lambda conn: q.delete_upload(conn, upload_id)):
            raise UploadError(404, "There is no upload with this id.")
        self.path(upload_id).unlink(missing_ok=True)

    def remove_expired(self) -> int:
        """Unfinished uploads past their expiry lose their bytes and rows; finished ones
        their record. Files no row knows (a crash between file and row) go too.
        Returns how many unfinished uploads were removed."""
        now = self.clock()
        removed = 0
        for upload_id in self.db.read(lambda conn: q.uploads_expired_before(conn, _iso(now))):
            self.path(upload_id).unlink(missing_ok=True)
            row = self.db.read(lambda conn, i=upload_id: q.get_upload(conn, i))
            self.db.write(lambda conn, i=upload_id: q.delete_upload(conn, i))
            removed += bool(row and row["state"] == "receiving")
        cutoff = now - self.settings.upload_expire_hours * 3600
        for path in self.directory.glob("*.part") if self.directory.exists() else ():
            try:
                if path.stat().st_mtime < cutoff and not self.db.read(
                    lambda conn, i=path.stem: q.upload_exists(conn, i)
                ):
                    path.unlink()
            except FileNotFoundError:
                pass
        return removed


class Appender:
    """One request's bytes appended to one upload's file, made durable step by step."""

    def __init__(self, uploads: TusUploads, upload: Upload) -> None:
        self.uploads = uploads
        self.upload_id = upload.id
        self.start = self.recorded = self.position = upload.received
        path = uploads.path(upload.id)
        try:
            self.file: IO[bytes] = open(path, "r+b")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise UploadError(410, "This upload's data is gone from the server; start it again.") from None
        if os.fstat(self.file.fileno()).st_size < self.recorded:
            self.file.close()
            raise UploadError(410, "This upload's data is damaged on the server; start it again.")
        # Bytes past the recorded offset were never confirmed to anyone: drop them.
        self.file.truncate(self.recorded)
        self.file.seek(self.recorded)

    @property
    def unrecorded(self) -> int:
        return self.position - self.recorded

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.position += len(data)

    def checkpoint(self) -> int:
        """fsync, then record: the recorded offset is never past what is on disk."""
        if self.position != self.recorded:
            self.file.flush()
            os.fdatasync(self.file.fileno())
            self.uploads.record(self.upload_id, self.position)
            self.recorded = self.position
        return self.recorded

    def discard(self, back_to: int) -> None:
        """Drop what this request wrote past `back_to` (never below what was recorded)."""
        back_to = max(back_to, self.recorded)
        self.file.flush()
        self.file.truncate(back_to)
        self.file.seek(back_to)
        self.position = back_to

    def close(self) -> None:
        self.file.close()
