"""The SQLite connection: WAL, foreign keys, busy timeout, migrations.

Writes are funnelled through one connection behind one lock (as datasette does), so
web handlers and worker threads never fight over SQLite's single writer; reads use a
connection per thread. We use the stdlib sqlite3 module rather than aiosqlite because
the Huey worker threads are synchronous: one set of query functions `fn(conn)` serves
both sides, and the web layer calls the domain service on a worker thread.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000


# SQLite's largest integer: a larger id, offset or page cannot match a row, and Python's
# sqlite3 raises OverflowError binding one, so the web layer refuses them first.
MAX_INTEGER = 2**63 - 1


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def update_row(
    conn: sqlite3.Connection, table: str, columns: Iterable[str], row_id: object, changes: dict[str, Any]
) -> None:
    """UPDATE one row by id, setting only known columns (names are never user input) and
    stamping updated_at."""
    unknown = set(changes) - set(columns)
    if unknown:
        raise ValueError(f"not {table} columns: {sorted(unknown)}")
    assignments = ", ".join(f"{key} = ?" for key in changes)
    conn.execute(
        f"UPDATE {table} SET {assignments}, updated_at = ? WHERE id = ?",
        (*changes.values(), now_iso(), row_id),
    )


def make_private_dir(path: Path) -> None:
    """Create a folder only this user can enter (0700), tightening an existing one we own."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
            path.chmod(0o700)
    except OSError:  # a mount that keeps its own modes (LiteFS's FUSE): leave it
        pass


def make_private_file(path: Path) -> None:
    """Create the file 0600 if missing, tighten it if not; SQLite gives its -wal and -shm
    files the database file's mode, so the whole database stays this user's."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError:  # read-only replica or a FUSE mount that keeps its own modes
        pass


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def migrations() -> list[tuple[int, str]]:
    """(version, sql) of every migration shipped in the package, in order."""
    found = []
    for item in resources.files("vidprod.store").joinpath("migrations").iterdir():
        name = item.name
        if name.endswith(".sql"):
            found.append((int(name.split("_", 1)[0]), item.read_text()))
    return sorted(found)


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        make_private_file(path)  # it holds sealed tokens and the event log
        self._write_lock = threading.Lock()
        self._writer = connect(path)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._commit_listeners: list[Callable[[], None]] = []

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Call listener() after every committed write (from the writing thread)."""
        self._commit_listeners.append(listener)

    def migrate(self) -> list[int]:
        """Apply every migration newer than the database, each in its own transaction."""
        applied = []
        for version, sql in migrations():
            with self.transaction() as conn:
                # Read inside the transaction: another process may have migrated first.
                if conn.execute("PRAGMA user_version").fetchone()[0] >= version:
                    continue
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")
            applied.append(version)
        return applied

    def check_writable(self, timeout_ms: int = 1000) -> None:
        """Prove the database takes a write now; raises sqlite3.Error if it cannot."""
        with self.transaction(busy_timeout_ms=timeout_ms) as conn:
            conn.execute("INSERT OR REPLACE INTO heartbeat (id, at) VALUES (1, datetime('now'))")

    def schema_version(self) -> int:
        return self.read(lambda conn: conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self, busy_timeout_ms: int | None = None) -> Iterator[sqlite3.Connection]:
        """The one way to write: BEGIN IMMEDIATE ... COMMIT on the single write connection,
        rolled back on any error; commit listeners are told afterwards."""
        with self._write_lock:
            if busy_timeout_ms is not None:
                self._writer.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                try:
                    yield self._writer
                except BaseException:
                    self._writer.execute("ROLLBACK")
                    raise
                self._writer.execute("COMMIT")
            finally:
                if busy_timeout_ms is not None:
                    self._writer.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        for listener in self._commit_listeners:
            listener()

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn(conn) in one write transaction: all of it commits, or none of it."""
        with self.transaction() as conn:
            return fn(conn)

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return fn(conn)

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._write_lock:
            self._writer.close()


def _statements(sql: str) -> Iterator[str]:
    # executescript() would COMMIT our transaction; split on complete statements instead.
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    if buffer.strip() and not buffer.strip().startswith("--"):
        yield buffer
