"""Huey on its own SQLite file, consumed by threads in this process.

Tasks are thin: they name a job and call the domain service, which reads everything
else from the database. Huey has no acknowledgements (a task killed mid-run is gone),
so the database is the truth: on start the queue is emptied and every unfinished job
is queued again, and a job already running in this process is never started twice.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from huey import SqliteHuey
from huey.consumer import Consumer

from vidprod import logs
from vidprod.config import Settings
from vidprod.domain.jobs import JobService

log = logging.getLogger(__name__)


class EmbeddedConsumer(Consumer):
    """A consumer that leaves signal handling to the web server.

    Consumer.start() installs its own SIGTERM/SIGINT handlers, after which the ASGI
    server never hears SIGTERM and the process will not stop (shared/DESIGN.md)."""

    def _set_signal_handlers(self) -> None:
        pass


class EmbeddedQueue:
    """A SqliteHuey queue on its own file and the consumer threads that serve it, started
    and stopped by the app's lifespan. Subclasses add their tasks."""

    def __init__(self, name: str, path: Path, workers: int, *, periodic: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.huey = SqliteHuey(name=name, filename=str(path), results=False, utc=True)
        self.workers = workers
        self.periodic = periodic
        self.stopping = threading.Event()  # tasks look at it to stop early
        self._consumer: EmbeddedConsumer | None = None

    def start(self) -> None:
        self.stopping.clear()
        # Threads poll quickly: an idle poll is one small SQLite read.
        self._consumer = EmbeddedConsumer(
            self.huey, workers=self.workers, worker_type="thread", periodic=self.periodic,
            initial_delay=0.05, backoff=1.5, max_delay=0.5,
        )  # fmt: skip
        self._consumer.start()

    def stop(self) -> None:
        """Tell running tasks to stop, then wait for the threads to finish them."""
        self.stopping.set()
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None


class Worker(EmbeddedQueue):
    """Renders: a render stops at the next frame once `stopping` is set."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("vidprod", settings.queue_path, settings.workers)
        self.settings = settings
        self.service: JobService | None = None
        self._running: set[str] = set()
        self._running_lock = threading.Lock()
        self._consumer: EmbeddedConsumer | None = None
        self._process_task = self.huey.task(name="process_job")(self._process_job)

    def bind(self, service: JobService) -> None:
        self.service = service

    def enqueue(self, job_id: str) -> None:
        self._process_task(job_id)

    def _process_job(self, job_id: str) -> None:
        assert self.service is not None, "Worker.bind() was not called"
        with self._running_lock:
            if job_id in self._running:
                return
            self._running.add(job_id)
        token = logs.job_id.set(job_id)  # every log line of this job names it
        try:
            self.service.process(job_id)
        finally:
            logs.job_id.reset(token)
            with self._running_lock:
                self._running.discard(job_id)

    def recover(self) -> list[str]:
        """Re-queue every job whose row says it is unfinished (and that has not crashed
        the process too often)."""
        assert self.service is not None
        self.huey.flush()
        job_ids = self.service.recover()
        for job_id in job_ids:
            self.enqueue(job_id)
        if job_ids:
            log.info("re-queued %d unfinished job(s): %s", len(job_ids), ", ".join(job_ids))
        return job_ids

    def state(self) -> dict[str, Any]:
        running = self._consumer is not None and not self.stopping.is_set()
        with self._running_lock:
            active = len(self._running)
        return {
            "state": "running" if running else "stopped",
            "depth": self.huey.pending_count(),
            "active": active,
            "workers": self.workers,
        }
