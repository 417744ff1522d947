"""SQL for connected accounts, OAuth flows in progress and per-account usage counts."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from vidprod.store.database import now_iso, update_row

ACCOUNT_COLUMNS = {
    "name", "state", "state_reason", "tokens", "expires_at", "blocked_until",
    "blocked_reason", "profile",
}  # fmt: skip


def _decode(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    account = dict(row)
    account["profile"] = json.loads(account["profile"])
    account["sandbox"] = bool(account["sandbox"])
    return account


def upsert_account(
    conn: sqlite3.Connection,
    *,
    account_id: str,
    platform: str,
    remote_id: str,
    name: str,
    sandbox: bool,
    tokens: str,
    expires_at: float | None,
) -> str:
    """Insert, or reconnect the account already known by (platform, remote id); returns
    the id that holds it now."""
    stamp = now_iso()
    conn.execute(
        "INSERT INTO accounts (id, platform, remote_id, name, sandbox, state, tokens,"
        " expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'connected', ?, ?, ?, ?)"
        " ON CONFLICT (platform, remote_id, sandbox) DO UPDATE SET name = excluded.name,"
        " state = 'connected', state_reason = NULL, tokens = excluded.tokens,"
        " expires_at = excluded.expires_at, updated_at = excluded.updated_at",
        (account_id, platform, remote_id, name, int(sandbox), tokens, expires_at, stamp, stamp),
    )  # fmt: skip
    row = conn.execute(
        "SELECT id FROM accounts WHERE platform = ? AND remote_id = ? AND sandbox = ?",
        (platform, remote_id, int(sandbox)),
    ).fetchone()
    return row["id"]


def get_account(conn: sqlite3.Connection, account_id: str) -> dict[str, Any] | None:
    return _decode(conn.execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone())


def list_accounts(conn: sqlite3.Connection, *, include_disconnected: bool = False) -> list[dict[str, Any]]:
    where = "" if include_disconnected else "WHERE state != 'disconnected'"
    rows = conn.execute(f"SELECT * FROM accounts {where} ORDER BY platform, name").fetchall()
    return [_decode(row) for row in rows]  # type: ignore[misc]


def update_account(conn: sqlite3.Connection, account_id: str, **changes: Any) -> None:
    if "profile" in changes:
        changes["profile"] = json.dumps(changes["profile"])
    update_row(conn, "accounts", ACCOUNT_COLUMNS, account_id, changes)


def add_flow(conn: sqlite3.Connection, state: str, platform: str, verifier: str | None, at: float) -> None:
    conn.execute(
        "INSERT INTO oauth_flows (state, platform, code_verifier, created_at) VALUES (?, ?, ?, ?)",
        (state, platform, verifier, at),
    )


def take_flow(conn: sqlite3.Connection, state: str, not_before: float) -> dict[str, Any] | None:
    """Remove and return a flow (single use); stale ones are dropped on the way."""
    conn.execute("DELETE FROM oauth_flows WHERE created_at < ?", (not_before,))
    row = conn.execute("SELECT * FROM oauth_flows WHERE state = ?", (state,)).fetchone()
    conn.execute("DELETE FROM oauth_flows WHERE state = ?", (state,))
    return dict(row) if row else None


def record_usage(conn: sqlite3.Connection, account_id: str, platform: str, kind: str, at: float) -> None:
    conn.execute(
        "INSERT INTO platform_usage (account_id, platform, kind, at) VALUES (?, ?, ?, ?)",
        (account_id, platform, kind, at),
    )


def usage_since(
    conn: sqlite3.Connection, *, kind: str, since: float, account_id: str | None = None,
    platform: str | None = None,
) -> list[float]:
    """Times of usage rows after `since`, oldest first, for one account or one platform."""
    if account_id is not None:
        rows = conn.execute(
            "SELECT at FROM platform_usage WHERE account_id = ? AND kind = ? AND at > ? ORDER BY at",
            (account_id, kind, since),
        )
    else:
        rows = conn.execute(
            "SELECT at FROM platform_usage WHERE platform = ? AND kind = ? AND at > ? ORDER BY at",
            (platform, kind, since),
        )
    return [row["at"] for row in rows]


def forget_usage_before(conn: sqlite3.Connection, before: float) -> int:
    return conn.execute("DELETE FROM platform_usage WHERE at < ?", (before,)).rowcount
