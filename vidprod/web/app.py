"""The Litestar app factory. The lifespan owns the database and the in-process worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from litestar import Litestar
from litestar.datastructures import State

from vidprod.config import Settings
from vidprod.domain.jobs import JobService
from vidprod.domain.webhooks import WebhookService
from vidprod.store import Database
from vidprod.web import api, webhooks
from vidprod.web.auth import load_or_create_admin_token, require_admin
from vidprod.web.live import CommitSignal
from vidprod.web.problems import EXCEPTION_HANDLERS, problem_details_plugin
from vidprod.web.uploads import discard_stale_uploads
from vidprod.worker.deliveries import DeliveryWorker
from vidprod.worker.queue import Worker

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, run_worker: bool = True) -> Litestar:
    """run_worker=False serves the API without consuming the queue (tests of the web
    layer alone; jobs then stay queued)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    token, _ = load_or_create_admin_token(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if removed := discard_stale_uploads(settings.tmp_dir / "uploads"):
            log.info("removed %d upload(s) left unfinished by the previous run", removed)
        db = Database(settings.database_path)
        db.migrate()
        worker = Worker(settings)
        jobs = JobService(db, settings, worker.enqueue, stopping=worker.stopping)
        worker.bind(jobs)
        deliveries = DeliveryWorker(settings)
        webhooks = WebhookService(db, settings, deliveries.kick)
        deliveries.bind(webhooks)
        app.state.jobs = jobs
        app.state.webhooks = webhooks
        app.state.worker = worker
        app.state.deliveries = deliveries
        app.state.live = CommitSignal(asyncio.get_running_loop())
        db.add_commit_listener(app.state.live.notify)
        if settings.webhook_allow_private:
            log.warning(
                "VIDPROD_WEBHOOK_ALLOW_PRIVATE is on: webhooks may reach private addresses"
                " and plain http. Use this for tests and local use only."
            )
        if run_worker:
            db.add_commit_listener(deliveries.on_commit)
            worker.recover()
            deliveries.recover()
            worker.start()
            deliveries.start()
        try:
            yield
        finally:
            # Stop renders at the next frame; their jobs resume on the next start.
            # Deliveries finish the request in flight; the rest stay pending.
            await asyncio.gather(
                anyio.to_thread.run_sync(worker.stop), anyio.to_thread.run_sync(deliveries.stop)
            )
            webhooks.close()
            db.close()

    return Litestar(
        route_handlers=[*api.ROUTES, *webhooks.ROUTES],
        lifespan=[lifespan],
        guards=[require_admin],
        plugins=[problem_details_plugin()],
        exception_handlers=EXCEPTION_HANDLERS,
        state=State({"admin_token": token}),
        request_max_body_size=1 << 20,
        debug=False,
    )
