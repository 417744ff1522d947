"""SQL for browser sign-ins (the session cookie names a row here; signing out deletes it)."""

from __future__ import annotations

import sqlite3

from vidprod.store.database import now_iso


def add(conn: sqlite3.Connection, id_hash: str, expires_at: float) -> None:
    conn.execute(
        "INSERT INTO sessions (id_hash, created_at, expires_at) VALUES (?, ?, ?)",
        (id_hash, now_iso(), expires_at),
    )


def is_live(conn: sqlite3.Connection, id_hash: str, now: float) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sessions WHERE id_hash = ? AND expires_at > ?", (id_hash, now)
    ).fetchone()
    return row is not None


def remove(conn: sqlite3.Connection, id_hash: str) -> None:
    conn.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))


def remove_expired(conn: sqlite3.Connection, now: float) -> int:
    return conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,)).rowcount
