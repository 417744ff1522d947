"""SQL for the running totals behind the Prometheus counters."""

from __future__ import annotations

import json
import sqlite3


def add(conn: sqlite3.Connection, name: str, labels: tuple[str, ...], amount: float) -> None:
    conn.execute(
        "INSERT INTO metric_totals (name, labels, value) VALUES (?, ?, ?)"
        " ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value",
        (name, json.dumps(list(labels)), amount),
    )


def all_totals(conn: sqlite3.Connection) -> dict[tuple[str, tuple[str, ...]], float]:
    rows = conn.execute("SELECT name, labels, value FROM metric_totals").fetchall()
    return {(row[0], tuple(json.loads(row[1]))): row[2] for row in rows}
