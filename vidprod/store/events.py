"""SQL for the event log, and its fan-out into the webhook outbox."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from vidprod.events import OPT_IN, bounded
from vidprod.store.database import now_iso


def add_event(
    conn: sqlite3.Connection, job_id: str | None, type_: str, data: dict[str, Any] | None = None
) -> int:
    """Log an event and, in the same transaction, queue a delivery for every endpoint that
    wants it (a job's own endpoint only hears its job), due at once. A disabled endpoint's
    deliveries are held: the worker skips them until it is enabled again, then sends them
    in order (README: "re-enabling sends what waited")."""
    stamp = now_iso()
    cursor = conn.execute(
        "INSERT INTO events (job_id, type, data, created_at, uid) VALUES (?, ?, ?, ?, ?)",
        (job_id, type_, json.dumps(bounded(data or {})), stamp, uuid.uuid4().hex),
    )
    event_id = int(cursor.lastrowid or 0)
    conn.execute(
        "INSERT INTO webhook_deliveries (event_id, endpoint_id, state, next_attempt_at,"
        " created_at, updated_at)"
        " SELECT :event_id, e.id, 'pending', 0, :stamp, :stamp FROM webhook_endpoints e"
        " WHERE (e.job_id IS NULL OR e.job_id IS :job_id)"
        " AND CASE WHEN e.event_types IS NULL THEN NOT :opt_in"
        " ELSE EXISTS (SELECT 1 FROM json_each(e.event_types) WHERE value = :type) END",
        {"event_id": event_id, "stamp": stamp, "job_id": job_id,
         "opt_in": type_ in OPT_IN, "type": type_},
    )  # fmt: skip
    return event_id


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    return {**dict(row), "data": json.loads(row["data"])}


def list_events(
    conn: sqlite3.Connection, job_id: str, *, after_id: int = 0
) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM events WHERE job_id = ? AND id > ? ORDER BY id", (job_id, after_id)
    ).fetchall()
    return [_decode(row) for row in rows]


def get_event(conn: sqlite3.Connection, event_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
    return _decode(row) if row else None
