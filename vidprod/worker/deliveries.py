"""Webhook sending on a Huey queue and threads of its own, so a render never holds up a
delivery and a slow receiver never holds up another (each endpoint is one task at a time).

A task names an endpoint; the domain service sends its due deliveries in order. New
deliveries are noticed after each database commit (no polling); retries come back as
Huey tasks with an eta. The outbox rows are the truth: on start the queue is emptied
and every endpoint with pending deliveries is looked at again.
"""

from __future__ import annotations

import logging
import threading

from vidprod.config import Settings
from vidprod.domain.webhooks import WebhookService
from vidprod.worker.queue import EmbeddedQueue

log = logging.getLogger(__name__)

ERROR_BACKOFF_SECONDS = 30.0  # after an unexpected error (not a failed delivery)


class DeliveryWorker(EmbeddedQueue):
    """Stopping finishes the request in flight (at most the 15 s deadline), sends no more.
    Periodic tasks (housekeeping) run on this queue too: it never waits on a render."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("vidprod-io", settings.io_queue_path, settings.webhook_workers, periodic=True)
        self.service: WebhookService | None = None
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._again: set[str] = set()  # kicked while running: look once more before leaving
        self._scheduled: dict[str, float] = {}  # endpoint -> earliest eta already queued
        self._seen_delivery = 0
        self._task = self.huey.task(name="deliver_webhooks")(self._deliver)

    def bind(self, service: WebhookService) -> None:
        self.service = service

    def kick(self, endpoint_id: str) -> None:
        self._task(endpoint_id)

    def on_commit(self) -> None:
        """After any commit: queue the endpoints that got new deliveries."""
        if self.service is None or self.stopping.is_set():
            return
        try:
            with self._lock:
                endpoints, self._seen_delivery = self.service.new_deliveries(self._seen_delivery)
        except Exception:  # never fail the writer's commit; recover() finds them on start
            log.exception("could not look for new webhook deliveries")
            return
        for endpoint_id in endpoints:
            self.kick(endpoint_id)

    def recover(self) -> list[str]:
        assert self.service is not None
        self.huey.flush()
        with self._lock:
            _, self._seen_delivery = self.service.new_deliveries(0)
        endpoints = self.service.endpoints_with_pending()
        for endpoint_id in endpoints:
            self.kick(endpoint_id)
        if endpoints:
            log.info("webhook deliveries pending for %d endpoint(s)", len(endpoints))
        return endpoints

    def _deliver(self, endpoint_id: str) -> None:
        assert self.service is not None, "DeliveryWorker.bind() was not called"
        now = self.service.clock()
        with self._lock:
            if self._scheduled.get(endpoint_id, float("inf")) <= now:
                del self._scheduled[endpoint_id]
            if endpoint_id in self._running:
                self._again.add(endpoint_id)
                return
            self._running.add(endpoint_id)
        wake: float | None = None
        try:
            while not self.stopping.is_set():
                try:
                    wake = self.service.deliver_next(endpoint_id)
                except Exception:
                    log.exception("webhook delivery to endpoint %s broke", endpoint_id)
                    wake = self.service.clock() + ERROR_BACKOFF_SECONDS
                if wake is not None and wake <= self.service.clock():
                    continue
                with self._lock:
                    if endpoint_id in self._again:
                        self._again.discard(endpoint_id)
                        continue
                    self._running.discard(endpoint_id)  # under the lock: a kick now runs anew
                    break
        finally:
            with self._lock:
                self._running.discard(endpoint_id)
        if wake is not None and not self.stopping.is_set():
            self._schedule(endpoint_id, wake)

    def _schedule(self, endpoint_id: str, wake: float) -> None:
        assert self.service is not None
        with self._lock:
            if self._scheduled.get(endpoint_id, float("inf")) <= wake:
                return  # an earlier look is queued already; it will find this one
            self._scheduled[endpoint_id] = wake
        self._task.schedule(args=(endpoint_id,), delay=max(0.0, wake - self.service.clock()))

    def pending_tasks(self) -> int:
        return self.huey.pending_count() + self.huey.scheduled_count()
