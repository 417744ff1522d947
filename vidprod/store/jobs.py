"""SQL for jobs and segments. Each function takes a connection; callers choose
the transaction (Database.write) or a read connection (Database.read)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from vidprod.store.database import now_iso, update_row

JOB_COLUMNS = {
    "state", "stage", "progress", "source_info", "options", "plan", "error",
    "cancel_requested", "attempts", "finished_at", "files_removed_at", "gaze",
    "in_flight", "crashes", "transcript",
}  # fmt: skip
JSON_COLUMNS = ("source_info", "options", "plan", "gaze", "transcript")


def _decode_job(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    job = dict(row)
    for key in JSON_COLUMNS:
        job[key] = json.loads(job[key]) if job.get(key) else None
    job["cancel_requested"] = bool(job["cancel_requested"])
    return job


def insert_job(
    conn: sqlite3.Connection,
    *,
    job_id: str,
    source_name: str,
    source_path: str,
    source_size: int,
    source_info: dict[str, Any],
    options: dict[str, Any],
) -> None:
    stamp = now_iso()
    conn.execute(
        "INSERT INTO jobs (id, state, stage, source_name, source_path, source_size,"
        " source_info, options, created_at, updated_at)"
        " VALUES (?, 'queued', NULL, ?, ?, ?, ?, ?, ?, ?)",
        (job_id, source_name, source_path, source_size, json.dumps(source_info),
         json.dumps(options), stamp, stamp),
    )  # fmt: skip


def get_job(conn: sqlite3.Connection, job_id: str) -> dict[str, Any] | None:
    return _decode_job(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())


def list_jobs(conn: sqlite3.Connection, *, limit: int, offset: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        (limit, offset),
    ).fetchall()
    return [_decode_job(row) for row in rows]  # type: ignore[misc]


def count_jobs(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM jobs").fetchone()[0]


def count_jobs_by_state(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
    return {state: n for state, n in rows}


def unfinished_job_ids(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT id FROM jobs WHERE state IN ('queued', 'processing') ORDER BY created_at"
    ).fetchall()
    return [row[0] for row in rows]


def in_flight_job_ids(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT id FROM jobs WHERE in_flight = 1 ORDER BY created_at").fetchall()
    return [row[0] for row in rows]


def jobs_with_files_ended_before(conn: sqlite3.Connection, cutoff_iso: str) -> list[str]:
    """Finished jobs whose files are still on disk, that ended before the cutoff, none
    of whose publications is still to run and whose last publication ended before it."""
    rows = conn.execute(
        "SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled')"
        " AND files_removed_at IS NULL AND finished_at < :cutoff"
        " AND NOT EXISTS (SELECT 1 FROM publications p WHERE p.job_id = jobs.id"
        "   AND (p.state IN ('scheduled', 'publishing', 'waiting') OR p.updated_at >= :cutoff))"
        " ORDER BY finished_at",
        {"cutoff": cutoff_iso},
    ).fetchall()
    return [row[0] for row in rows]


def update_job(conn: sqlite3.Connection, job_id: str, **changes: Any) -> None:
    for key in JSON_COLUMNS:
        if key in changes and changes[key] is not None:
            changes[key] = json.dumps(changes[key])
    update_row(conn, "jobs", JOB_COLUMNS, job_id, changes)


def delete_job(conn: sqlite3.Connection, job_id: str) -> None:
    # The event log goes with the job, except events a webhook has still to deliver.
    conn.execute(
        "DELETE FROM events WHERE job_id = ? AND id NOT IN"
        " (SELECT event_id FROM webhook_deliveries WHERE state = 'pending')",
        (job_id,),
    )
    conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))  # segments cascade


def upsert_segment(conn: sqlite3.Connection, job_id: str, segment: dict[str, Any]) -> None:
    gaze = segment.get("gaze")
    conn.execute(
        "INSERT INTO segments (job_id, idx, start_seconds, end_seconds, duration_seconds,"
        " path, size_bytes, width, height, has_audio, thumbnail_path, gaze, created_at)"
        " VALUES (:job_id, :idx, :start_seconds, :end_seconds, :duration_seconds, :path,"
        " :size_bytes, :width, :height, :has_audio, :thumbnail_path, :gaze, :created_at)"
        " ON CONFLICT (job_id, idx) DO UPDATE SET start_seconds = excluded.start_seconds,"
        " end_seconds = excluded.end_seconds, duration_seconds = excluded.duration_seconds,"
        " path = excluded.path, size_bytes = excluded.size_bytes, width = excluded.width,"
        " height = excluded.height, has_audio = excluded.has_audio,"
        " thumbnail_path = excluded.thumbnail_path, gaze = excluded.gaze",
        {"thumbnail_path": None, **segment, "gaze": json.dumps(gaze) if gaze is not None else None,
         "job_id": job_id, "created_at": now_iso()},
    )


def _decode_segment(row: sqlite3.Row) -> dict[str, Any]:
    segment = {**dict(row), "has_audio": bool(row["has_audio"])}
    segment["gaze"] = json.loads(segment["gaze"]) if segment.get("gaze") else None
    return segment


def list_segments(conn: sqlite3.Connection, job_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM segments WHERE job_id = ? ORDER BY idx", (job_id,)
    ).fetchall()
    return [_decode_segment(row) for row in rows]


def get_segment(conn: sqlite3.Connection, job_id: str, idx: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT * FROM segments WHERE job_id = ? AND idx = ?", (job_id, idx)
    ).fetchone()
    return _decode_segment(row) if row else None


def delete_segments(conn: sqlite3.Connection, job_id: str) -> None:
    conn.execute("DELETE FROM segments WHERE job_id = ?", (job_id,))


def segment_summaries(conn: sqlite3.Connection, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per job: how many parts exist, and the first part with a thumbnail (or None)."""
    if not job_ids:
        return {}
    marks = ", ".join("?" for _ in job_ids)
    rows = conn.execute(
        "SELECT job_id, count(*) AS parts,"
        " min(CASE WHEN thumbnail_path IS NOT NULL THEN idx END) AS thumbnail_idx"
        f" FROM segments WHERE job_id IN ({marks}) GROUP BY job_id",
        job_ids,
    ).fetchall()
    return {row["job_id"]: {"parts": row["parts"], "thumbnail_idx": row["thumbnail_idx"]} for row in rows}
