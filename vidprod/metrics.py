"""Prometheus metrics. HTTP requests are counted by Litestar's Prometheus middleware
(route template, method, status, latency histogram); the app's own figures are here.
Counters live in the process-wide registry; the figures read from the database at
scrape time come from a collector registered for the app's lifetime."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

PROCESSING_SECONDS = Histogram(
    "vidprod_processing_seconds",
    "Time a job spent in each stage.",
    ["stage"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600),
)
FRAMES_RENDERED = Counter("vidprod_frames_rendered_total", "Video frames encoded into parts.")
RENDER_FPS = Histogram(
    "vidprod_render_fps",
    "Frames per second of each finished render.",
    buckets=(5, 10, 15, 20, 30, 45, 60, 90, 120),
)
PUBLICATIONS = Counter(
    "vidprod_publications_total", "Publication attempts by platform and outcome.", ["platform", "outcome"]
)
WEBHOOK_DELIVERIES = Counter(
    "vidprod_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (succeeded, retrying, failed, disabled).",
    ["outcome"],
)


class AppCollector(Collector):
    """Figures read when Prometheus scrapes: jobs by state, queue depth, free disk."""

    def __init__(
        self,
        jobs_by_state: Callable[[], dict[str, int]],
        queue_depth: Callable[[], dict[str, int]],
        data_dir: Path,
    ) -> None:
        self.jobs_by_state = jobs_by_state
        self.queue_depth = queue_depth
        self.data_dir = data_dir

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("vidprod_jobs", "Jobs by state.", labels=["state"])
        counts = self.jobs_by_state()
        for state in ("queued", "processing", "done", "failed", "cancelled"):
            jobs.add_metric([state], counts.get(state, 0))
        yield jobs
        depth = GaugeMetricFamily("vidprod_queue_depth", "Tasks waiting in each queue.", labels=["queue"])
        for queue, count in self.queue_depth().items():
            depth.add_metric([queue], count)
        yield depth
        yield GaugeMetricFamily(
            "vidprod_disk_free_bytes", "Free bytes on the data volume.", value=shutil.disk_usage(self.data_dir).free
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # not collected at registration: the database may not be open yet


def register(collector: AppCollector) -> Callable[[], None]:
    """Register for the app's lifetime; returns the function that unregisters it."""
    REGISTRY.register(collector)
    return lambda: REGISTRY.unregister(collector)
