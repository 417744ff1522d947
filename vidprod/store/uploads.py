"""SQL for resumable (tus) uploads. Each function takes a connection; callers choose
the transaction (Database.write) or a read connection (Database.read)."""

from __future__ import annotations

import sqlite3
from typing import Any

from vidprod.store.database import now_iso, update_row

UPLOAD_COLUMNS = {"received", "state", "job_id", "error_status", "error", "expires_at"}


def insert_upload(
    conn: sqlite3.Connection, *, upload_id: str, length: int, metadata: str, expires_at: str
) -> None:
    stamp = now_iso()
    conn.execute(
        "INSERT INTO uploads (id, length, metadata, created_at, updated_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (upload_id, length, metadata, stamp, stamp, expires_at),
    )


def get_upload(conn: sqlite3.Connection, upload_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
    return dict(row) if row is not None else None


def update_upload(conn: sqlite3.Connection, upload_id: str, **changes: Any) -> None:
    update_row(conn, "uploads", UPLOAD_COLUMNS, upload_id, changes)


def delete_upload(conn: sqlite3.Connection, upload_id: str) -> bool:
    return conn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,)).rowcount > 0


def uploads_expired_before(conn: sqlite3.Connection, cutoff_iso: str) -> list[str]:
    rows = conn.execute("SELECT id FROM uploads WHERE expires_at < ?", (cutoff_iso,)).fetchall()
    return [row[0] for row in rows]


def upload_exists(conn: sqlite3.Connection, upload_id: str) -> bool:
    return conn.execute("SELECT 1 FROM uploads WHERE id = ?", (upload_id,)).fetchone() is not None
