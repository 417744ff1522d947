"""Publishing on a Huey queue and threads of its own (uploads are long and I/O bound;
they must not wait behind a render, nor hold up webhooks).

Each publication gets an eta task for its due time, and a dispatcher thread looks for
due rows every VIDPROD_DISPATCH_SECONDS as well: Huey loses a task killed mid-run and
eta tasks are flushed on start, so the rows, not the queue, say what is due.
"""

from __future__ import annotations

import logging
import threading

from vidprod.config import Settings
from vidprod.domain.publishing import PublicationNotFound, PublicationService
from vidprod.worker.queue import EmbeddedQueue

log = logging.getLogger(__name__)

ERROR_BACKOFF_SECONDS = 60.0  # after an unexpected error (a bug, not a platform failure)


class PublishWorker(EmbeddedQueue):
    def __init__(self, settings: Settings) -> None:
        super().__init__("vidprod-publish", settings.data_dir / "publish-queue.db", settings.publish_workers)
        self.settings = settings
        self.service: PublicationService | None = None
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._dispatcher: threading.Thread | None = None
        self._task = self.huey.task(name="publish")(self._publish)

    def bind(self, service: PublicationService) -> None:
        self.service = service

    def kick(self, publication_id: str, when: float) -> None:
        """Run the publication at `when` (on the service's clock), or now if it is due."""
        assert self.service is not None
        delay = when - self.service.clock()
        if delay <= 0:
            self._task(publication_id)
        else:
            self._task.schedule(args=(publication_id,), delay=delay)

    def dispatch(self) -> list[str]:
        """Queue every publication whose time has come and that is not running here."""
        assert self.service is not None
        self.service.resume_waiting()
        due = self.service.due_ids()
        with self._lock:
            due = [publication_id for publication_id in due if publication_id not in self._running]
        for publication_id in due:
            self._task(publication_id)
        return due

    def recover(self) -> list[str]:
        """On start: due and interrupted publications run now, the rest get timers."""
        assert self.service is not None
        self.huey.flush()
        due = self.dispatch()
        for publication_id, when in self.service.upcoming():
            if publication_id not in due:
                self.kick(publication_id, when)
        if due:
            log.info("%d publication(s) due or interrupted: running them", len(due))
        return due

    def start(self) -> None:
        super().start()
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="publish-dispatcher", daemon=True)
        self._dispatcher.start()

    def stop(self) -> None:
        super().stop()  # sets `stopping`, which also ends the dispatcher's wait
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=5)
            self._dispatcher = None

    def pending_tasks(self) -> int:
        return self.huey.pending_count() + self.huey.scheduled_count()

    def _dispatch_loop(self) -> None:
        while not self.stopping.wait(self.settings.dispatch_seconds):
            try:
                self.dispatch()
            except Exception:
                log.exception("looking for due publications failed")

    def _publish(self, publication_id: str) -> None:
        assert self.service is not None, "PublishWorker.bind() was not called"
        with self._lock:
            if publication_id in self._running:
                return
            self._running.add(publication_id)
        try:
            try:
                wake = self.service.run(publication_id)
            except PublicationNotFound:
                wake = None  # deleted with its job
            except Exception:
                log.exception("publication %s broke", publication_id)
                wake = self.service.clock() + ERROR_BACKOFF_SECONDS
        finally:
            with self._lock:
                self._running.discard(publication_id)
        if wake is not None and not self.stopping.is_set():
            self.kick(publication_id, wake)
