"""Live job events for open pages: Server-Sent Events fed by database commits.

Worker threads write event rows through the one write funnel; after each commit the
funnel calls CommitSignal.notify(), which wakes the async streams on the server's loop.
A woken stream reads the rows after the last id it sent: no stream polls the database
in a loop, and a client that reconnects with Last-Event-ID misses and repeats nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread
from litestar.response import ServerSentEvent, ServerSentEventMessage

from vidprod.domain.jobs import JobService
from vidprod.events import payload

KEEPALIVE_SECONDS = 15.0  # under Fly's 60 s idle timeout, and proxies' shorter ones
FINISHED = ("done", "failed", "cancelled")


class CommitSignal:
    """Wakes every subscribed stream when a write commits; notify() works from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiters: set[asyncio.Event] = set()
        self.closed = False

    def close(self) -> None:
        """The server is stopping: streams end now (their clients resume with
        Last-Event-ID), instead of holding the shutdown for the server's grace period."""
        self.closed = True
        self.notify()

    def notify(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop has closed: the server is gone
            pass

    def _wake(self) -> None:
        for waiter in self.waiters:
            waiter.set()

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Event]:
        waiter = asyncio.Event()
        self.waiters.add(waiter)
        try:
            yield waiter
        finally:
            self.waiters.discard(waiter)


def _read(jobs: JobService, job_id: str, after_id: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    return jobs.events(job_id, after_id=after_id), jobs.find(job_id)


def _nothing_open(job_id: str) -> bool:
    return False


async def job_event_messages(
    jobs: JobService,
    signal: CommitSignal,
    job_id: str,
    after_id: int,
    keepalive_seconds: float = KEEPALIVE_SECONDS,
    posts_open: Callable[[str], bool] = _nothing_open,
) -> AsyncIterator[ServerSentEventMessage]:
    """Every event of the job after `after_id` (ids are the events' ids), live `progress`
    messages (not stored, no id) while it runs, keep-alive comments, and `end` once the
    job has finished, none of its posts is still on its way (`posts_open`), and
    everything was sent."""
    last = after_id
    shown = None
    with signal.subscribe() as wake:
        while True:
            wake.clear()
            events, job = await anyio.to_thread.run_sync(_read, jobs, job_id, last)
            for event in events:
                yield ServerSentEventMessage(data=json.dumps(payload(event)), event=event["type"], id=event["id"])
                last = event["id"]
            if signal.closed:
                return
            finished = job is None or (
                job["state"] in FINISHED and not await anyio.to_thread.run_sync(posts_open, job_id)
            )
            if finished:
                yield ServerSentEventMessage(data=json.dumps({"state": job["state"] if job else "deleted"}), event="end")
                return
            now = {"state": job["state"], "stage": job["stage"], "progress": job["progress"]}
            if now != shown:
                shown = now
                yield ServerSentEventMessage(data=json.dumps(now), event="progress")
            try:
                await asyncio.wait_for(wake.wait(), keepalive_seconds)
            except TimeoutError:
                yield ServerSentEventMessage(comment="keep-alive", data=None)


def job_event_stream(
    jobs: JobService, signal: CommitSignal, job_id: str, after_id: int, posts_open: Callable[[str], bool]
) -> ServerSentEvent:
    return ServerSentEvent(
        job_event_messages(jobs, signal, job_id, after_id, posts_open=posts_open),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
