"""Renders on other machines: `vidprod worker` processes fed through Redis (Huey's
RedisHuey), reading and writing media in S3-compatible storage, holding no database.

Two queues: "render" carries a job's render fields from the primary to any worker;
"reports" carries what a render did (progress, plan, each part, the outcome) back to the
primary, whose one consumer thread applies them in order to SQLite, the only writer.

Huey has no acknowledgements, so a render is guarded by a lease in Redis, one key a job:
    "queued"    the primary queued a render task (set before the task is sent)
    <worker>    a worker holds it; it expires unless renewed (the heartbeat)
    "finished"  the worker is done and the outcome is on its way to the primary
    "released"  the worker stopped on SIGTERM and let go
The primary's watch queues again every unfinished job whose key is gone (its worker
died: counted as a crash) or released: the next worker resumes from the last part recorded.
Only a "queued" key can be claimed, so a duplicate task is dropped, and nothing is ever
flushed: restarting any process leaves the others' work where it is.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

import redis
from huey import RedisHuey

from vidprod import logs
from vidprod.config import Settings
from vidprod.domain.jobs import CRASHED, MAX_CRASHES, JobService
from vidprod.domain.rendering import Renderer
from vidprod.media.render import RenderStopped
from vidprod.media.speech import TranscriptionStopped
from vidprod.net.fly_machines import WorkerMachines
from vidprod.store import events as ev
from vidprod.store import jobs as q
from vidprod.store.objects import Objects
from vidprod.worker.queue import EmbeddedConsumer

log = logging.getLogger(__name__)

FINISHED_KEEP_SECONDS = 24 * 3600  # a "finished" key outlives any report in flight

_CLAIM = "if redis.call('GET', KEYS[1]) == 'queued' then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end return 0"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end return 0"
_HAND_OVER = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end"
    " return 0"
)


class Leases:
    """The lease keys and cancel flags of render jobs in Redis."""

    def __init__(self, url: str, seconds: int) -> None:
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.ttl_ms = seconds * 1000
        self._claim = self.redis.register_script(_CLAIM)
        self._renew = self.redis.register_script(_RENEW)
        self._hand_over = self.redis.register_script(_HAND_OVER)

    @staticmethod
    def _key(job_id: str) -> str:
        return f"vidprod:lease:{job_id}"

    def holder(self, job_id: str) -> str | None:
        return self.redis.get(self._key(job_id))

    def mark_queued(self, job_id: str) -> None:
        self.redis.set(self._key(job_id), "queued")
        self.redis.delete(f"vidprod:cancel:{job_id}")

    def claim(self, job_id: str, worker: str) -> bool:
        return bool(self._claim(keys=[self._key(job_id)], args=[worker, self.ttl_ms]))

    def renew(self, job_id: str, worker: str) -> bool:
        return bool(self._renew(keys=[self._key(job_id)], args=[worker, self.ttl_ms]))

    def finish(self, job_id: str, worker: str) -> None:
        self._hand_over(keys=[self._key(job_id)], args=[worker, "finished", FINISHED_KEEP_SECONDS])

    def release(self, job_id: str, worker: str) -> None:
        """Let go without an outcome (shutdown): the primary queues the job again."""
        self._hand_over(keys=[self._key(job_id)], args=[worker, "released", FINISHED_KEEP_SECONDS])

    def close(self, job_id: str) -> None:
        self.redis.delete(self._key(job_id), f"vidprod:cancel:{job_id}")

    def request_cancel(self, job_id: str) -> None:
        self.redis.set(f"vidprod:cancel:{job_id}", "1", ex=FINISHED_KEEP_SECONDS)

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.redis.exists(f"vidprod:cancel:{job_id}"))


class RenderQueues:
    """The two Redis queues and their tasks; the primary and the workers both build one
    (Huey finds a task by its module and name, so both sides register the same ones)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.queue_url is not None
        self.render_huey = RedisHuey("vidprod-render", url=settings.queue_url, results=False, utc=True)
        self.reports_huey = RedisHuey("vidprod-reports", url=settings.queue_url, results=False, utc=True)
        self.leases = Leases(settings.queue_url, settings.lease_seconds)
        self.on_render: Any = None  # set by the worker
        self.on_report: Any = None  # set by the primary
        self.render = self.render_huey.task(name="render")(self._render)
        self.report = self.reports_huey.task(name="report")(self._report)

    def _render(self, task: dict[str, Any]) -> None:
        assert self.on_render is not None, "this process does not render"
        self.on_render(task)

    def _report(self, worker: str, job_id: str, kind: str, payload: dict[str, Any]) -> None:
        assert self.on_report is not None, "this process does not apply reports"
        self.on_report(worker, job_id, kind, payload)


# --- the primary ------------------------------------------------------------------


class RemoteRenders:
    """The primary's side: queues render tasks, applies the reports, and watches leases.
    Same face as worker.queue.Worker (the embedded renders) for the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queues = RenderQueues(settings)
        self.queues.on_report = self._apply
        self.huey = self.queues.render_huey  # pending_count() for /metrics and the status
        self.leases = self.queues.leases
        self.workers = 0  # renders run elsewhere
        self.stopping = threading.Event()
        self.service: JobService | None = None
        self._consumer: EmbeddedConsumer | None = None
        self._watch: threading.Thread | None = None
        self.machines: WorkerMachines | None = None  # Fly: stopped worker Machines to start
        if settings.fly_machines_url:
            self.machines = WorkerMachines(
                settings.fly_machines_url, os.environ["FLY_APP_NAME"], os.environ["FLY_API_TOKEN"]
            )

    def bind(self, service: JobService) -> None:
        self.service = service
        service.on_cancel = self.leases.request_cancel

    def enqueue(self, job_id: str) -> None:
        assert self.service is not None
        job = self.service.find(job_id)
        if job is None:
            return
        self.leases.mark_queued(job_id)
        self.queues.render(self.service.render_task(job))

    def recover(self) -> list[str]:
        """Nothing is flushed: the watch queues again the unfinished jobs nobody holds."""
        return self.requeue_orphans()

    def requeue_orphans(self) -> list[str]:
        assert self.service is not None
        requeued = []
        for job_id in self.service.unfinished():
            # Asked before the lease is read: once this says no, the job's own queueing
            # has marked the lease, so a holder of None below really is an orphan.
            if self.service.being_queued(job_id):
                continue
            holder = self.leases.holder(job_id)
            if holder not in (None, "released"):
                continue
            job = self.service.find(job_id)
            if job is None:
                continue
            if job["state"] == "processing" and holder is None:  # its worker died mid-render
                crashes = job["crashes"] + 1
                self.service.db.write(lambda conn, j=job_id, c=crashes: q.update_job(conn, j, crashes=c))
                if crashes >= MAX_CRASHES:
                    log.warning("job %s: its worker died %d times; failing it", job_id, crashes)
                    self.service._fail_with(job_id, CRASHED.format(crashes=crashes))
                    continue
            self.enqueue(job_id)
            requeued.append(job_id)
        if requeued:
            log.info("queued again %d job(s) no worker holds: %s", len(requeued), ", ".join(requeued))
        return requeued

    def _apply(self, worker: str, job_id: str, kind: str, payload: dict[str, Any]) -> None:
        """One report from a worker, applied in the order it was sent."""
        service = self.service
        assert service is not None
        token = logs.job_id.set(job_id)
        try:
            if kind == "claimed":
                service.db.write(lambda conn: _claimed(conn, job_id, worker))
                return
            job = service.find(job_id)
            if job is None or job["state"] != "processing":
                return  # cancelled, failed or deleted meanwhile: the report is stale
            if kind == "completed":
                service.report.completed(job_id, **payload)
                self.leases.close(job_id)
            elif kind == "failed":
                service._fail_with(job_id, payload["reason"])
                self.leases.close(job_id)
            elif kind == "cancelled":
                service._finish_cancel(job_id)
                self.leases.close(job_id)
            elif kind in ("stage", "transcript", "plan", "progress", "part", "frames", "gaze"):
                getattr(service.report, kind)(job_id, **payload)
            else:
                log.warning("job %s: unknown report %r from %s ignored", job_id, kind, worker)
        finally:
            logs.job_id.reset(token)

    def start(self) -> None:
        self.stopping.clear()
        self._consumer = EmbeddedConsumer(
            self.queues.reports_huey, workers=1, worker_type="thread",  # one thread: reports in order
            initial_delay=0.05, backoff=1.5, max_delay=0.5,
        )  # fmt: skip
        self._consumer.start()
        self._watch = threading.Thread(target=self._watch_leases, name="lease-watch", daemon=True)
        self._watch.start()

    def _watch_leases(self) -> None:
        interval = max(0.5, self.settings.lease_seconds / 3)
        while not self.stopping.wait(interval):
            try:
                self.requeue_orphans()
                if self.machines is not None and (waiting := self.huey.pending_count()):
                    self.machines.start_for(waiting)
            except Exception:  # Redis or the Machines API away for a moment: the next round tries again
                log.exception("lease watch")

    def stop(self) -> None:
        self.stopping.set()
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None

    def state(self) -> dict[str, Any]:
        running = self._consumer is not None and not self.stopping.is_set()
        return {
            "state": "running" if running else "stopped",
            "depth": self.huey.pending_count(),
            "active": 0,
            "workers": 0,
        }


def _claimed(conn: Any, job_id: str, worker: str) -> None:
    job = q.get_job(conn, job_id)
    if job is None or job["state"] not in ("queued", "processing") or job["cancel_requested"]:
        return
    attempt = job["attempts"] + 1
    q.update_job(conn, job_id, state="processing", stage="planning", attempts=attempt)
    ev.add_event(conn, job_id, "job.processing", {"attempt": attempt})


# --- a worker ---------------------------------------------------------------------


class QueueReport:
    """A worker's RenderReport: every call becomes a report task for the primary."""

    def __init__(self, queues: RenderQueues, worker: str) -> None:
        self.queues = queues
        self.worker = worker

    def _send(self, job_id: str, kind: str, **payload: Any) -> None:
        self.queues.report(self.worker, job_id, kind, payload)

    def stage(self, job_id: str, stage: str) -> None:
        self._send(job_id, "stage", stage=stage)

    def transcript(self, job_id: str, record: dict[str, Any]) -> None:
        self._send(job_id, "transcript", record=record)

    def plan(self, job_id: str, stored: dict[str, Any]) -> None:
        self._send(job_id, "plan", stored=stored)

    def progress(self, job_id: str, percent: float, announce: int | None) -> None:
        self._send(job_id, "progress", percent=percent, announce=announce)

    def part(self, job_id: str, segment: dict[str, Any]) -> None:
        self._send(job_id, "part", segment=segment)

    def frames(self, job_id: str, count: int) -> None:
        self._send(job_id, "frames", count=count)

    def gaze(self, job_id: str, record: dict[str, Any]) -> None:
        self._send(job_id, "gaze", record=record)

    def completed(self, job_id: str, parts: int) -> None:
        self._send(job_id, "completed", parts=parts)

    def cancel_requested(self, job_id: str) -> bool:
        return self.queues.leases.cancel_requested(job_id)


class RenderWorker:
    """`vidprod worker`: renders tasks from Redis with `settings.workers` threads."""

    def __init__(self, settings: Settings, objects: Objects) -> None:
        self.settings = settings
        self.name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.queues = RenderQueues(settings)
        self.queues.on_render = self.render
        self.leases = self.queues.leases
        self.stopping = threading.Event()
        self.renderer = Renderer(settings, objects, self.stopping)
        self.report = QueueReport(self.queues, self.name)
        self.active = 0
        self.last_busy = time.monotonic()
        self._lock = threading.Lock()
        self._consumer: EmbeddedConsumer | None = None

    def render(self, task: dict[str, Any]) -> None:
        job_id = task["id"]
        if not self.leases.claim(job_id, self.name):
            log.info("job %s: held or finished by another worker; task dropped", job_id)
            return
        with self._lock:
            self.active += 1
        token = logs.job_id.set(job_id)
        lost = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job_id, lost), daemon=True)
        try:
            if self.leases.cancel_requested(job_id):
                self.report._send(job_id, "cancelled")
                self.leases.finish(job_id, self.name)
                return
            self.report._send(job_id, "claimed")
            beat.start()
            log.info("job %s: rendering (%d part(s) already done)", job_id, len(task["done"]))
            self.renderer.render(task, task["done"], self.report, should_stop_too=lost.is_set)
            self.leases.finish(job_id, self.name)
        except (RenderStopped, TranscriptionStopped):
            if lost.is_set():
                log.warning("job %s: lease lost; another worker resumes it", job_id)
            elif self.stopping.is_set():
                log.info("job %s: stopped by shutdown; another worker resumes it", job_id)
                self.leases.release(job_id, self.name)
            else:
                self.report._send(job_id, "cancelled")
                self.leases.finish(job_id, self.name)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            reason = f"Processing failed: {exc}" if str(exc) else f"Processing failed ({type(exc).__name__})."
            self.report._send(job_id, "failed", reason=reason)
            self.leases.finish(job_id, self.name)
        finally:
            lost.set()  # ends the heartbeat
            logs.job_id.reset(token)
            with self._lock:
                self.active -= 1
                self.last_busy = time.monotonic()

    def _heartbeat(self, job_id: str, lost: threading.Event) -> None:
        interval = self.settings.lease_seconds / 3
        while not lost.wait(interval):
            try:
                if not self.leases.renew(job_id, self.name):
                    lost.set()
            except redis.RedisError:
                log.warning("job %s: lease not renewed (Redis unreachable); trying again", job_id)

    def start(self) -> None:
        self._consumer = EmbeddedConsumer(
            self.queues.render_huey, workers=self.settings.workers, worker_type="thread",
            initial_delay=0.05, backoff=1.5, max_delay=0.5,
        )  # fmt: skip
        self._consumer.start()
        log.info("render worker %s: %d thread(s) on the Redis queue", self.name, self.settings.workers)

    def idle_for(self) -> float:
        """Seconds with nothing rendering and nothing queued (0 while busy)."""
        with self._lock:
            if self.active:
                return 0.0
            since = self.last_busy
        if self.queues.render_huey.pending_count():
            return 0.0
        return time.monotonic() - since

    def stop(self) -> None:
        """Stop at the next frame, let go of the leases, wait for the threads."""
        self.stopping.set()
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None
