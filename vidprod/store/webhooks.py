"""SQL for webhook endpoints, the delivery outbox and the log of attempts."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from vidprod.store.database import now_iso, update_row

ENDPOINT_COLUMNS = {
    "url", "description", "event_types", "enabled", "disabled_reason", "secret",
    "previous_secret", "previous_expires_at",
}  # fmt: skip
DELIVERY_COLUMNS = {"state", "step", "next_attempt_at", "last_status", "last_error"}


def _endpoint(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    endpoint = dict(row)
    endpoint["event_types"] = json.loads(row["event_types"]) if row["event_types"] else None
    endpoint["enabled"] = bool(row["enabled"])
    return endpoint


def insert_endpoint(
    conn: sqlite3.Connection,
    *,
    endpoint_id: str,
    url: str,
    description: str,
    event_types: list[str] | None,
    enabled: bool,
    secret: str,
    job_id: str | None = None,
) -> None:
    stamp = now_iso()
    conn.execute(
        "INSERT INTO webhook_endpoints (id, url, description, event_types, enabled, secret,"
        " job_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (endpoint_id, url, description, json.dumps(event_types) if event_types is not None else None,
         int(enabled), secret, job_id, stamp, stamp),
    )  # fmt: skip


# An endpoint with how its deliveries stand.
_WITH_COUNTS = (
    "SELECT e.*,"
    " (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id"
    "  AND d.state = 'pending') AS pending,"
    " (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id"
    "  AND d.state = 'failed') AS failed"
    " FROM webhook_endpoints e"
)


def get_endpoint(conn: sqlite3.Connection, endpoint_id: str) -> dict[str, Any] | None:
    return _endpoint(conn.execute(f"{_WITH_COUNTS} WHERE e.id = ?", (endpoint_id,)).fetchone())


def list_endpoints(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The operator's endpoints (not jobs' own), with how their deliveries stand."""
    rows = conn.execute(
        f"{_WITH_COUNTS} WHERE e.job_id IS NULL ORDER BY e.created_at, e.id"
    ).fetchall()
    return [_endpoint(row) for row in rows]  # type: ignore[misc]


def all_endpoint_secrets(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every endpoint's (id, secret, previous_secret), jobs' own included."""
    rows = conn.execute("SELECT id, secret, previous_secret FROM webhook_endpoints").fetchall()
    return [dict(row) for row in rows]


def update_endpoint(conn: sqlite3.Connection, endpoint_id: str, **changes: Any) -> None:
    if "event_types" in changes and changes["event_types"] is not None:
        changes["event_types"] = json.dumps(changes["event_types"])
    if "enabled" in changes:
        changes["enabled"] = int(changes["enabled"])
    update_row(conn, "webhook_endpoints", ENDPOINT_COLUMNS, endpoint_id, changes)


def delete_endpoint(conn: sqlite3.Connection, endpoint_id: str) -> None:
    conn.execute("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,))  # deliveries cascade


def endpoints_with_pending(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT d.endpoint_id FROM webhook_deliveries d"
        " JOIN webhook_endpoints e ON e.id = d.endpoint_id"
        " WHERE d.state = 'pending' AND e.enabled"
    ).fetchall()
    return [row[0] for row in rows]


def count_due(conn: sqlite3.Connection, before: float) -> int:
    return conn.execute(
        "SELECT count(*) FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
        " WHERE d.state = 'pending' AND e.enabled AND d.next_attempt_at <= ?",
        (before,),
    ).fetchone()[0]


def endpoints_with_deliveries_after(conn: sqlite3.Connection, delivery_id: int) -> tuple[list[str], int]:
    """Endpoints that got deliveries with ids above `delivery_id`, and the highest id seen."""
    rows = conn.execute(
        "SELECT endpoint_id, max(id) FROM webhook_deliveries WHERE id > ? GROUP BY endpoint_id",
        (delivery_id,),
    ).fetchall()
    return [row[0] for row in rows], max([delivery_id, *(row[1] for row in rows)])


def head_delivery(conn: sqlite3.Connection, endpoint_id: str) -> dict[str, Any] | None:
    """The endpoint's oldest pending delivery: events go out in the order they happened."""
    row = conn.execute(
        "SELECT * FROM webhook_deliveries WHERE endpoint_id = ? AND state = 'pending'"
        " ORDER BY event_id LIMIT 1",
        (endpoint_id,),
    ).fetchone()
    return dict(row) if row else None


def get_delivery(conn: sqlite3.Connection, delivery_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM webhook_deliveries WHERE id = ?", (delivery_id,)).fetchone()
    return dict(row) if row else None


def list_deliveries(
    conn: sqlite3.Connection, endpoint_id: str, *, state: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT d.*, ev.type AS event_type, ev.uid AS event_uid, ev.job_id AS job_id"
        " FROM webhook_deliveries d JOIN events ev ON ev.id = d.event_id"
        " WHERE d.endpoint_id = :endpoint AND (:state IS NULL OR d.state = :state)"
        " ORDER BY d.event_id DESC LIMIT :limit OFFSET :offset",
        {"endpoint": endpoint_id, "state": state, "limit": limit, "offset": offset},
    ).fetchall()
    return [dict(row) for row in rows]


def update_delivery(conn: sqlite3.Connection, delivery_id: int, **changes: Any) -> None:
    update_row(conn, "webhook_deliveries", DELIVERY_COLUMNS, delivery_id, changes)


def requeue_failed(conn: sqlite3.Connection, endpoint_id: str) -> int:
    cursor = conn.execute(
        "UPDATE webhook_deliveries SET state = 'pending', step = 0, next_attempt_at = 0,"
        " updated_at = ? WHERE endpoint_id = ? AND state = 'failed'",
        (now_iso(), endpoint_id),
    )
    return cursor.rowcount


def add_attempt(
    conn: sqlite3.Connection,
    delivery_id: int,
    *,
    status: int | None,
    latency_ms: int,
    response: str | None,
    error: str | None,
) -> None:
    conn.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempted_at, status, latency_ms, response,"
        " error) VALUES (?, ?, ?, ?, ?, ?)",
        (delivery_id, now_iso(), status, latency_ms, response, error),
    )


def list_attempts(conn: sqlite3.Connection, delivery_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    if not delivery_ids:
        return {}
    marks = ",".join("?" * len(delivery_ids))
    rows = conn.execute(
        f"SELECT * FROM webhook_attempts WHERE delivery_id IN ({marks}) ORDER BY id", delivery_ids
    ).fetchall()
    attempts: dict[int, list[dict[str, Any]]] = {d: [] for d in delivery_ids}
    for row in rows:
        attempts[row["delivery_id"]].append(dict(row))
    return attempts
