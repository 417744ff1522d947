import json
import os
import sqlite3
import stat
import threading

import pytest

from vidprod.store import Database
from vidprod.store import events as ev
from vidprod.store import jobs as q
from vidprod.store.database import migrations


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "app.db")
    database.migrate()
    yield database
    database.close()


def _job(conn, job_id="j1"):
    q.insert_job(conn, job_id=job_id, source_name="a.mp4", source_path=f"{job_id}/source.mp4",
                 source_size=10, source_info={"duration": 1.0}, options={"segment_seconds": 60})


def test_migrations_apply_once_and_set_the_version(db):
    assert db.schema_version() == migrations()[-1][0]
    assert db.migrate() == []  # nothing left to apply


def test_pragmas(db):
    mode, fk = db.read(lambda c: (c.execute("PRAGMA journal_mode").fetchone()[0],
                                  c.execute("PRAGMA foreign_keys").fetchone()[0]))
    assert (mode, fk) == ("wal", 1)


def test_write_rolls_back_everything_on_error(db):
    def half_then_fail(conn):
        _job(conn)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.write(half_then_fail)
    assert db.read(lambda c: q.get_job(c, "j1")) is None


def test_state_is_checked_by_the_schema(db):
    db.write(_job)
    with pytest.raises(sqlite3.IntegrityError):
        db.write(lambda c: q.update_job(c, "j1", state="exploded"))


def test_segments_upsert_by_index_and_cascade(db):
    db.write(_job)
    seg = dict(idx=0, start_seconds=0, end_seconds=1, duration_seconds=1, path="j1/p.mp4",
               size_bytes=5, width=2, height=2, has_audio=True)
    db.write(lambda c: q.upsert_segment(c, "j1", seg))
    db.write(lambda c: q.upsert_segment(c, "j1", {**seg, "size_bytes": 7}))
    segments = db.read(lambda c: q.list_segments(c, "j1"))
    assert [(s["idx"], s["size_bytes"]) for s in segments] == [(0, 7)]
    db.write(lambda c: q.delete_job(c, "j1"))
    assert db.read(lambda c: q.list_segments(c, "j1")) == []


def test_concurrent_writers_are_serialised(db):
    db.write(_job)

    def add_events():
        for _ in range(50):
            db.write(lambda c: ev.add_event(c, "j1", "tick"))

    threads = [threading.Thread(target=add_events) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(db.read(lambda c: ev.list_events(c, "j1"))) == 200


def test_check_writable_fails_while_another_process_holds_the_lock(db, tmp_path):
    db.check_writable()
    other = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError):
            db.check_writable(timeout_ms=100)
    finally:
        other.execute("ROLLBACK")
        other.close()
    db.check_writable()


def test_the_database_and_its_wal_are_private_whatever_the_umask(tmp_path):
    """Issue 20 finding 11: vidprod.db was world-readable when made under a lax umask."""
    old_umask = os.umask(0o022)
    try:
        database = Database(tmp_path / "app.db")
        database.migrate()
        database.write(lambda conn: _job(conn))
        older = tmp_path / "older.db"
        older.touch(mode=0o644)
        Database(older).close()
    finally:
        os.umask(old_umask)
    try:
        for path in (tmp_path / "app.db", tmp_path / "app.db-wal", tmp_path / "app.db-shm", older):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        database.close()


def test_migration_13_keeps_a_jobs_eye_contact_report_as_that_of_its_parts_without_figures(tmp_path):
    """A job reported before parts kept their own eye-contact figures still shows its
    report, and keeps it as "earlier" (the parts without figures); eye contact off stays off."""
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    for version, sql in migrations():
        if version < 13:
            conn.executescript(sql)
    conn.execute("PRAGMA user_version = 12")
    for job_id in ("j1", "j2"):
        _job(conn, job_id)
    report = {"frames_seen": 450, "frames_corrected": 412, "summary": "Eyes raised by about 8° on 412 of 450 frames."}
    conn.execute("UPDATE jobs SET gaze = ? WHERE id = 'j1'",
                 (json.dumps({"report": report, "stills": [{"label": "first", "before": "b.png", "after": "a.png"}]}),))
    conn.execute("INSERT INTO segments (job_id, idx, start_seconds, end_seconds, duration_seconds, path, size_bytes,"
                 " width, height, has_audio, created_at) VALUES ('j1', 0, 0, 15, 15, 'j1/parts/part-001.mp4', 10,"
                 " 360, 640, 1, '2026-12-01T00:00:00Z')")  # fmt: skip
    conn.commit()
    conn.close()
    database = Database(path)
    try:
        assert database.migrate() == [v for v, _ in migrations() if v >= 13]
        job, other = database.read(lambda c: (q.get_job(c, "j1"), q.get_job(c, "j2")))
        [segment] = database.read(lambda c: q.list_segments(c, "j1"))
    finally:
        database.close()
    assert job["gaze"]["report"] == job["gaze"]["earlier"] == report
    assert job["gaze"]["stills"][0]["before"] == "b.png"
    assert other["gaze"] is None and segment["gaze"] is None
