"""When the app may stop itself (scale to zero on Fly.io).

Fly's proxy would stop a machine in the middle of a render, so its auto-stop is off and
the app decides instead: it exits when no request came for the whole idle window, none
is in flight (an upload or an open job page is a request in flight), no job is queued
or running, and no webhook delivery or publication is due within the window. Work due later waits
for the next start: any request wakes the machine (a cron hitting /health does).
Health checks and metric scrapes are probes, not users: they never keep it awake.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vidprod.domain.jobs import JobService
    from vidprod.domain.publishing import PublicationService
    from vidprod.domain.webhooks import WebhookService

PROBE_PATHS = ("/health", "/metrics")


class IdleWatch:
    def __init__(
        self,
        window_seconds: float,
        busy: Callable[[float], list[str]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """busy(window) names the work that keeps the app up (empty when there is none)."""
        self.window = window_seconds
        self.busy = busy
        self.clock = clock
        self.last_activity = clock()
        self.in_flight = 0
        self._lock = threading.Lock()

    def request_started(self, path: str) -> bool:
        """Count a request; returns whether it counts (probes do not)."""
        if path in PROBE_PATHS:
            return False
        with self._lock:
            self.in_flight += 1
            self.last_activity = self.clock()
        return True

    def request_finished(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self.last_activity = self.clock()

    def reasons_to_stay(self) -> list[str]:
        with self._lock:
            in_flight, quiet = self.in_flight, self.clock() - self.last_activity
        reasons = []
        if in_flight:
            reasons.append(f"{in_flight} request(s) in flight")
        if quiet < self.window:
            reasons.append(f"last request {quiet:.0f} s ago")
        return reasons + self.busy(self.window)

    def should_exit(self) -> bool:
        return self.window > 0 and not self.reasons_to_stay()


def pending_work(
    jobs: JobService, webhooks: WebhookService, publications: PublicationService, within: float
) -> list[str]:
    """Work that keeps the app up: jobs queued or running, webhooks and publications due
    within `within` seconds (one due later wakes the app through a cron request)."""
    reasons = []
    if unfinished := jobs.unfinished():
        reasons.append(f"{len(unfinished)} job(s) queued or running")
    if due := webhooks.due_within(within):
        reasons.append(f"{due} webhook delivery(ies) due")
    if due := publications.due_within(within):
        reasons.append(f"{due} publication(s) due")
    return reasons
