"""Where media files live: local files under the data dir, or S3-compatible storage.

Keys are the relative paths the database stores ("<job>/source.mp4",
"<job>/parts/part-001.mp4"), so the embedded default is exactly the media folder it
always was. Code that makes files writes them in `work_dir()` and hands each finished
one to `put()`: on local storage that folder *is* the media folder and `put` only
renames into place; on S3 it is scratch space and `put` uploads, then deletes the copy.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse


class Objects(Protocol):
    remote: bool

    def work_dir(self, prefix: str) -> Path:
        """A folder to write the files of `prefix` into before `put`."""

    def put(self, key: str, path: Path) -> None:
        """Store the finished file at `path` under `key` (the file is moved, not copied)."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small object (a cover picture) whole or not at all."""

    def local_copy(self, key: str) -> contextlib.AbstractContextManager[Path]:
        """The object as a local file for the duration of the block."""

    def size(self, key: str) -> int | None:
        """The object's size in bytes; None when there is none."""

    def read(self, key: str, first: int, length: int) -> Iterator[bytes]:
        """`length` bytes from `first` on, in chunks."""

    def path(self, key: str) -> Path | None:
        """The object's local file when storage is local (served as is), else None."""

    def move(self, key: str, new_key: str) -> None:
        """Rename an object (moving a part's cut renumbers the parts after it)."""

    def delete_prefix(self, prefix: str) -> None:
        """Every object whose key starts with `prefix` (a "<job>/" or "<job>/parts/")."""

    def keys(self, prefix: str) -> list[str]:
        """The keys under `prefix`, sorted."""

    def drop_work(self, prefix: str) -> None:
        """Whatever `work_dir(prefix)` still holds once a render is over, when that
        folder is scratch space (never the stored files themselves)."""


CHUNK = 256 << 10


def _checked(key: str) -> str:
    if not key or key.startswith("/") or ".." in Path(key).parts:
        raise ValueError(f"not a storage key: {key!r}")
    return key


class LocalObjects:
    """The media folder in the data dir (the embedded default)."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def work_dir(self, prefix: str) -> Path:
        folder = self.root / _checked(prefix)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def put(self, key: str, path: Path) -> None:
        target = self.root / _checked(key)
        if path.resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)  # same filesystem: staging and scratch live in the data dir

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self.root / _checked(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        partial.write_bytes(data)
        partial.replace(target)  # never a half-written file under the key

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        yield self.root / _checked(key)

    def size(self, key: str) -> int | None:
        path = self.root / _checked(key)
        return path.stat().st_size if path.is_file() else None

    def read(self, key: str, first: int, length: int) -> Iterator[bytes]:
        with open(self.root / _checked(key), "rb") as f:
            f.seek(first)
            while length > 0 and (chunk := f.read(min(CHUNK, length))):
                length -= len(chunk)
                yield chunk

    def path(self, key: str) -> Path | None:
        return self.root / _checked(key)

    def move(self, key: str, new_key: str) -> None:
        target = self.root / _checked(new_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        (self.root / _checked(key)).replace(target)

    def delete_prefix(self, prefix: str) -> None:
        target = self.root / _checked(prefix)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        folder = self.root / _checked(prefix)
        if not folder.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in folder.rglob("*") if p.is_file())

    def drop_work(self, prefix: str) -> None:
        pass  # the work folder is the media folder itself


class S3Objects:
    """A bucket and key prefix on any S3-compatible service, through boto3; the endpoint,
    region and keys come from the usual AWS_* variables (AWS_ENDPOINT_URL_S3, ...)."""

    remote = True

    def __init__(self, url: str, scratch: Path) -> None:
        import boto3  # only when S3 storage is configured
        from botocore.config import Config

        parsed = urlparse(url)
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.scratch = scratch
        self.client = boto3.client(
            "s3", config=Config(retries={"mode": "standard", "max_attempts": 5}, signature_version="s3v4")
        )

    def _key(self, key: str) -> str:
        key = _checked(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def work_dir(self, prefix: str) -> Path:
        folder = self.scratch / _checked(prefix)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def drop_work(self, prefix: str) -> None:
        shutil.rmtree(self.scratch / _checked(prefix), ignore_errors=True)

    def put(self, key: str, path: Path) -> None:
        # upload_file sends large files in parts and retries them; the object appears
        # whole or not at all.
        self.client.upload_file(str(path), self.bucket, self._key(key))
        path.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        self.scratch.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=self.scratch, prefix="copy-"))
        try:
            target = folder / Path(key).name
            self.client.download_file(self.bucket, self._key(key), str(target))
            yield target
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def read(self, key: str, first: int, length: int) -> Iterator[bytes]:
        if length <= 0:
            return
        answer = self.client.get_object(
            Bucket=self.bucket, Key=self._key(key), Range=f"bytes={first}-{first + length - 1}"
        )
        body = answer["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def path(self, key: str) -> Path | None:
        return None

    def move(self, key: str, new_key: str) -> None:
        # S3 has no rename: a server-side copy (managed, so parts over 5 GB work too),
        # then the old key goes.
        self.client.copy({"Bucket": self.bucket, "Key": self._key(key)}, self.bucket, self._key(new_key))
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        keys = [self._key(k) for k in self.keys(prefix)]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def keys(self, prefix: str) -> list[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
        for page in pages:
            found.extend(item["Key"][strip:] for item in page.get("Contents", []))
        return sorted(found)


def open_objects(storage_url: str | None, media_dir: Path, scratch: Path) -> Objects:
    """Local files under media_dir when no URL is set, else the s3:// bucket."""
    if not storage_url:
        return LocalObjects(media_dir)
    return S3Objects(storage_url, scratch)
