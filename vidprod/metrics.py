"""Prometheus metrics. HTTP requests are counted by Litestar's Prometheus middleware
(route template, method, status, latency histogram); the app's own figures are here.

Totals that outlive the process (frames rendered, publications, webhook deliveries) are
kept in the database and read at scrape time, so a machine that stops right after a job
loses none of them; every known label set is exported from zero, so a first event is a
change from 0, not a new series. Timings stay in the process-wide registry.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, get_args

from prometheus_client import REGISTRY, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from vidprod.publish import platforms
from vidprod.publish.base import FailureKind
from vidprod.store import metric_totals

PROCESSING_SECONDS = Histogram(
    "vidprod_processing_seconds",
    "Time a job spent in each stage.",
    ["stage"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600),
)
RENDER_FPS = Histogram(
    "vidprod_render_fps",
    "Frames per second of each finished render.",
    buckets=(5, 10, 15, 20, 30, 45, 60, 90, 120),
)
for _stage in ("transcribing", "planning", "rendering"):
    PROCESSING_SECONDS.labels(_stage)  # exported at zero before the first job


@dataclass(frozen=True)
class Total:
    """A counter kept in the database; `known` are the label sets exported from zero."""

    name: str
    doc: str
    labels: tuple[str, ...] = ()
    known: tuple[tuple[str, ...], ...] = ((),)


FRAMES_RENDERED = Total("vidprod_frames_rendered", "Video frames encoded into parts.")
PUBLICATIONS = Total(
    "vidprod_publications", "Publication attempts by platform and outcome.", ("platform", "outcome"),
    tuple(product(platforms.ORDER, ("published", "dead", *get_args(FailureKind)))),
)
WEBHOOK_DELIVERIES = Total(
    "vidprod_webhook_deliveries",
    "Webhook delivery attempts by outcome (succeeded, retrying, failed, disabled).",
    ("outcome",),
    (("succeeded",), ("retrying",), ("failed",), ("disabled",)),
)
TOTALS = (FRAMES_RENDERED, PUBLICATIONS, WEBHOOK_DELIVERIES)


def count(conn: Any, total: Total, *labels: str, amount: float = 1) -> None:
    """Add to a total inside the caller's write transaction."""
    metric_totals.add(conn, total.name, labels, amount)


def totals_families(values: dict[tuple[str, tuple[str, ...]], float]) -> Iterator[CounterMetricFamily]:
    for total in TOTALS:
        family = CounterMetricFamily(total.name, total.doc, labels=total.labels)
        seen = {labels: value for (name, labels), value in values.items() if name == total.name}
        for labels in dict.fromkeys([*total.known, *seen]):
            family.add_metric(list(labels), seen.get(labels, 0.0))
        yield family


class AppCollector(Collector):
    """Figures read when Prometheus scrapes: the totals, jobs by state, queue depth,
    free disk."""

    def __init__(
        self,
        jobs_by_state: Callable[[], dict[str, int]],
        queue_depth: Callable[[], dict[str, int]],
        data_dir: Path,
        totals: Callable[[], dict[tuple[str, tuple[str, ...]], float]],
    ) -> None:
        self.jobs_by_state = jobs_by_state
        self.queue_depth = queue_depth
        self.data_dir = data_dir
        self.totals = totals

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield from totals_families(self.totals())
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


def serve_internal(host: str, port: int) -> Callable[[], None]:
    """The registry on its own port, without the admin token, for a scraper on the
    private network (Fly's `[metrics]` sends no header); that port is never routed by
    the public proxy. Returns the function that stops it."""
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
