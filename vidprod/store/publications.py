"""SQL for publications: one part going to one account."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from vidprod.store.database import now_iso, update_row

PUBLICATION_COLUMNS = {
    "title", "caption", "hashtags", "options", "state", "due_at", "next_attempt_at", "attempts", "reschedules", "remote", "post_id", "post_url",
    "error_code", "error_message", "trace_id", "published_at",
}  # fmt: skip


def _decode(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    publication = dict(row)
    for name in ("options", "remote", "hashtags"):
        publication[name] = json.loads(publication[name])
    return publication


def insert_publication(conn: sqlite3.Connection, publication: dict[str, Any]) -> None:
    stamp = now_iso()
    row = {
        **publication,
        "options": json.dumps(publication["options"]),
        "hashtags": json.dumps(publication.get("hashtags", [])),
        "state": "scheduled",
        "next_attempt_at": publication["due_at"],
        "created_at": stamp,
        "updated_at": stamp,
    }
    names = ", ".join(row)
    conn.execute(
        f"INSERT INTO publications ({names}) VALUES ({', '.join('?' for _ in row)})",
        tuple(row.values()),
    )


def get_publication(conn: sqlite3.Connection, publication_id: str) -> dict[str, Any] | None:
    return _decode(conn.execute("SELECT * FROM publications WHERE id = ?", (publication_id,)).fetchone())


def update_publication(conn: sqlite3.Connection, publication_id: str, **changes: Any) -> None:
    for name in ("remote", "options", "hashtags"):
        if name in changes:
            changes[name] = json.dumps(changes[name])
    update_row(conn, "publications", PUBLICATION_COLUMNS, publication_id, changes)


def list_publications(
    conn: sqlite3.Connection, *, job_id: str | None = None, state: str | None = None,
    limit: int = 200, offset: int = 0,
) -> list[dict[str, Any]]:
    where, args = [], []
    if job_id is not None:
        where.append("job_id = ?")
        args.append(job_id)
    if state is not None:
        where.append("state = ?")
        args.append(state)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(
        f"SELECT * FROM publications {clause} ORDER BY due_at, segment_idx, platform LIMIT ? OFFSET ?",
        (*args, limit, offset),
    ).fetchall()
    return [_decode(row) for row in rows]  # type: ignore[misc]


def queue(
    conn: sqlite3.Connection, states: tuple[str, ...], limit: int, *, newest_first: bool = False
) -> list[dict[str, Any]]:
    """Posts in `states` across every video by the time they were due, each with its
    video's name."""
    order = "DESC" if newest_first else "ASC"
    marks = ", ".join("?" for _ in states)
    rows = conn.execute(
        "SELECT p.*, j.source_name AS job_name FROM publications p JOIN jobs j ON j.id = p.job_id"
        f" WHERE p.state IN ({marks}) ORDER BY p.due_at {order}, p.segment_idx, p.platform"
        " LIMIT ?",
        (*states, limit),
    ).fetchall()
    return [_decode(row) for row in rows]  # type: ignore[misc]


def open_for(conn: sqlite3.Connection, job_id: str, segment_idx: int, account_id: str) -> str | None:
    """The state of this part's live publication to this account (published, scheduled,
    publishing or waiting), or None."""
    row = conn.execute(
        "SELECT state FROM publications WHERE job_id = ? AND segment_idx = ? AND account_id = ?"
        " AND state NOT IN ('cancelled', 'dead')",
        (job_id, segment_idx, account_id),
    ).fetchone()
    return row[0] if row else None


def due_ids(conn: sqlite3.Connection, now: float) -> list[str]:
    """Publications whose time has come (and those interrupted mid-publish)."""
    rows = conn.execute(
        "SELECT id FROM publications WHERE state IN ('scheduled', 'publishing')"
        " AND next_attempt_at <= ? ORDER BY next_attempt_at",
        (now,),
    )
    return [row["id"] for row in rows]


def set_state_for_account(
    conn: sqlite3.Connection, account_id: str, from_states: tuple[str, ...], to_state: str, **changes: Any
) -> list[str]:
    """Move an account's publications in `from_states` to `to_state`; returns their ids."""
    marks = ", ".join("?" for _ in from_states)
    rows = conn.execute(
        f"SELECT id FROM publications WHERE account_id = ? AND state IN ({marks})",
        (account_id, *from_states),
    ).fetchall()
    ids = [row["id"] for row in rows]
    for publication_id in ids:
        update_publication(conn, publication_id, state=to_state, **changes)
    return ids


def resume_for_account(conn: sqlite3.Connection, account_id: str, now: float) -> list[str]:
    """The account's waiting publications are scheduled again: due now, or at their own
    time when that is later (a post moved while it waited keeps its new time)."""
    rows = conn.execute(
        "SELECT id FROM publications WHERE account_id = ? AND state = 'waiting'", (account_id,)
    ).fetchall()
    conn.execute(
        "UPDATE publications SET state = 'scheduled', next_attempt_at = MAX(?, due_at), updated_at = ?"
        " WHERE account_id = ? AND state = 'waiting'",
        (now, now_iso(), account_id),
    )
    return [row["id"] for row in rows]


def park_for_reconnect(conn: sqlite3.Connection, account_id: str) -> list[str]:
    """The account's open publications wait for a reconnect. The one being sent gives
    its try back in the same write: a lost grant is not the post's failure."""
    ids = set_state_for_account(conn, account_id, ("scheduled",), "waiting")
    sending = conn.execute(
        "SELECT id, attempts FROM publications WHERE account_id = ? AND state = 'publishing'", (account_id,)
    ).fetchall()
    for row in sending:
        update_publication(conn, row["id"], state="waiting", attempts=max(0, row["attempts"] - 1))
    return ids + [row["id"] for row in sending]


UPLOAD_CHOICE_EVENTS = "('publication.scheduled', 'publication.refused')"


def upload_choice_handled(conn: sqlite3.Connection, job_id: str) -> bool:
    """Whether the posts chosen at upload were scheduled (or refused) already."""
    return conn.execute(
        f"SELECT 1 FROM events WHERE job_id = ? AND type IN {UPLOAD_CHOICE_EVENTS} LIMIT 1", (job_id,)
    ).fetchone() is not None


# Done jobs whose upload chose posts that were neither scheduled nor refused yet.
_AWAITING_UPLOAD_CHOICE = (
    "SELECT id FROM jobs j WHERE state = 'done' AND files_removed_at IS NULL"
    " AND json_extract(options, '$.publish') IS NOT NULL"
    f" AND NOT EXISTS (SELECT 1 FROM events e WHERE e.job_id = j.id AND e.type IN {UPLOAD_CHOICE_EVENTS})"
)


def jobs_awaiting_upload_choice(conn: sqlite3.Connection) -> list[str]:
    return [row["id"] for row in conn.execute(_AWAITING_UPLOAD_CHOICE).fetchall()]


def open_for_job(conn: sqlite3.Connection, job_id: str, due_before: float) -> bool:
    """A post of the job being sent or due before `due_before`, or the upload's chosen
    posts not yet scheduled."""
    return conn.execute(
        "SELECT 1 FROM publications WHERE job_id = ?"
        " AND (state = 'publishing' OR (state = 'scheduled' AND next_attempt_at < ?))"
        f" UNION ALL {_AWAITING_UPLOAD_CHOICE} AND j.id = ? LIMIT 1",
        (job_id, due_before, job_id),
    ).fetchone() is not None


def unsent_for_job(conn: sqlite3.Connection, job_id: str) -> bool:
    """Whether a post of this job is still to go out (scheduled, waiting for its account,
    or being uploaded)."""
    return conn.execute(
        "SELECT 1 FROM publications WHERE job_id = ? AND state IN ('scheduled', 'waiting', 'publishing')",
        (job_id,),
    ).fetchone() is not None


def publishing_for_job(conn: sqlite3.Connection, job_id: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM publications WHERE job_id = ? AND state = 'publishing'", (job_id,)
    ).fetchone() is not None


def waiting_with_connected_account(conn: sqlite3.Connection) -> list[str]:
    """Publications still waiting although their account was connected again."""
    rows = conn.execute(
        "SELECT p.id FROM publications p JOIN accounts a ON a.id = p.account_id"
        " WHERE p.state = 'waiting' AND a.state = 'connected'"
    )
    return [row["id"] for row in rows]


def states_by_job(conn: sqlite3.Connection, job_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per job: how many of its posts are in each state."""
    if not job_ids:
        return {}
    marks = ", ".join("?" for _ in job_ids)
    rows = conn.execute(
        f"SELECT job_id, state, count(*) FROM publications WHERE job_id IN ({marks}) GROUP BY job_id, state",
        job_ids,
    ).fetchall()
    states: dict[str, dict[str, int]] = {}
    for job_id, state, count in rows:
        states.setdefault(job_id, {})[state] = count
    return states


def live_for_job(conn: sqlite3.Connection, job_id: str) -> bool:
    """Whether a post of the job is scheduled, on its way, waiting or published."""
    return conn.execute(
        "SELECT 1 FROM publications WHERE job_id = ? AND state NOT IN ('cancelled', 'dead') LIMIT 1", (job_id,)
    ).fetchone() is not None
