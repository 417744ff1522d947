"""The live event stream's generator: woken by commits from other threads, keep-alives
when quiet, and an end once the job has finished."""

from __future__ import annotations

import asyncio
import threading
import time

from vidprod.domain.jobs import JobService
from vidprod.store import Database
from vidprod.store import events as ev
from vidprod.store import jobs as q
from vidprod.web.live import CommitSignal, job_event_messages


def test_keepalives_when_quiet_and_events_from_worker_threads_without_polling(settings):
    db = Database(settings.database_path)
    db.migrate()
    jobs = JobService(db, settings, enqueue=lambda job_id: None)
    db.write(
        lambda c: (
            q.insert_job(c, job_id="j1", source_name="a.mp4", source_path="j1/source.mp4",
                         source_size=1, source_info={}, options={}),
            ev.add_event(c, "j1", "job.created", {}),
        )
    )  # fmt: skip

    async def run() -> list[tuple[float, str, str | None]]:
        signal = CommitSignal(asyncio.get_running_loop())
        db.add_commit_listener(signal.notify)
        seen: list[tuple[float, str, str | None]] = []
        started = time.monotonic()
        messages = job_event_messages(jobs, signal, "j1", 0, keepalive_seconds=0.4)
        async for message in messages:
            seen.append((time.monotonic() - started, message.event or "", message.comment))
            kinds = [kind for _, kind, comment in seen if not comment]
            if len([s for s in seen if s[2]]) == 1 and "segment.ready" not in kinds:
                # A worker thread writes; the stream must wake before the next keep-alive.
                threading.Timer(0.05, lambda: db.write(lambda c: ev.add_event(c, "j1", "segment.ready", {"index": 0}))).start()
            if "segment.ready" in kinds and "end" not in kinds and seen[-1][1] == "segment.ready":
                db.write(lambda c: (q.update_job(c, "j1", state="done"), ev.add_event(c, "j1", "job.completed", {})))
        return seen

    try:
        seen = asyncio.run(asyncio.wait_for(run(), 10))
    finally:
        db.close()
    kinds = [comment or kind for _, kind, comment in seen]
    assert kinds == ["job.created", "progress", "keep-alive", "segment.ready", "job.completed", "end"]
    keepalive_at = seen[2][0]
    assert 0.35 <= keepalive_at < 1.0, "a comment after a quiet keep-alive interval"
    woke_after = seen[3][0] - keepalive_at
    assert woke_after < 0.3, f"the commit woke the stream ({woke_after:.2f} s), not the next keep-alive"
