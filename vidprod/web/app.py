"""The Litestar app factory. The lifespan owns the database, the in-process workers and
the idle watch that lets the app stop itself."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio.to_thread
from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from vidprod import metrics
from vidprod.clock import wall_clock
from vidprod.config import Settings
from vidprod.domain.accounts import AccountService
from vidprod.domain.housekeeping import Housekeeper
from vidprod.domain.idle import IdleWatch, pending_work
from vidprod.domain.jobs import JobService
from vidprod.domain.publishing import PublicationService
from vidprod.domain.uploads import TusUploads
from vidprod.domain.webhooks import WebhookService
from vidprod.publish.platforms import ORDER, load_platforms, sandbox_clients_file
from vidprod.sandbox import FakePlatforms, PageLook, Rules, install_clients, sandbox_router
from vidprod.store import Database, metric_totals
from vidprod.store.database import make_private_dir
from vidprod.store.objects import open_objects
from vidprod.vault import Vault
from vidprod.web import api, captions, pages, publishing, tus, webhooks
from vidprod.web.auth import (
    SignInRequired,
    load_or_create_admin_token,
    require_admin,
    session_config,
)
from vidprod.web.live import CommitSignal
from vidprod.web.middleware import client_address, compression, request_tracking, security_headers
from vidprod.web.openapi import document_problems
from vidprod.web.pages import redirect_to_sign_in
from vidprod.web.problems import EXCEPTION_HANDLERS, problem_details_plugin
from vidprod.web.templating import static_router, static_url, template_config
from vidprod.web.tus import tus_router
from vidprod.web.uploads import discard_stale_uploads
from vidprod.worker.deliveries import DeliveryWorker
from vidprod.worker.housekeeping import schedule_housekeeping
from vidprod.worker.publishing import PublishWorker
from vidprod.worker.queue import Worker

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 1.0


def stop_this_process() -> None:
    """The same path as Fly's kill signal: finish requests, stop workers, exit 0."""
    os.kill(os.getpid(), signal.SIGTERM)


def create_app(
    settings: Settings, *, run_worker: bool = True, on_idle: Callable[[], None] = stop_this_process
) -> Litestar:
    """run_worker=False serves the API without consuming the queue (tests of the web
    layer alone; jobs then stay queued). on_idle is called once the idle watch says
    the app may stop (only when VIDPROD_IDLE_EXIT_SECONDS is set)."""
    make_private_dir(settings.data_dir)  # tokens, keys and the database: this user's only
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    token, _ = load_or_create_admin_token(settings)
    vault = Vault.from_settings(settings)  # a bad VIDPROD_SECRET_KEY stops start-up here
    if vault.key_file is not None:
        log.warning(
            "the key that encrypts account tokens and webhook secrets is kept in %s, beside the"
            " database: a copy of the data folder opens them. Set VIDPROD_SECRET_KEY (on Fly:"
            " fly secrets set VIDPROD_SECRET_KEY=$(cat %s)) and delete that file.",
            vault.key_file, vault.key_file,
        )  # fmt: skip
    state = State({"admin_token": token, "idle": None, "settings": settings})

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        replica = settings.is_replica
        working = run_worker and not replica
        if replica:
            log.info("LiteFS replica (%s exists): serving reads, no workers", settings.database_path.parent / ".primary")
        if removed := discard_stale_uploads(settings.tmp_dir / "uploads"):
            log.info("removed %d upload(s) left unfinished by the previous run", removed)
        db = Database(settings.database_path)
        if not replica:
            db.migrate()
        objects = open_objects(settings.storage_url, settings.media_dir, settings.scratch_dir)
        shutil.rmtree(settings.scratch_dir, ignore_errors=True)  # this process's own, left by a crash
        if settings.queue_url:  # renders on `vidprod worker` machines; redis is imported only then
            from vidprod.worker.remote import RemoteRenders

            worker: Worker | RemoteRenders = RemoteRenders(settings)
        else:
            worker = Worker(settings)
        jobs = JobService(db, settings, worker.enqueue, stopping=worker.stopping, objects=objects)
        worker.bind(jobs)
        deliveries = DeliveryWorker(settings)
        hooks = WebhookService(db, settings, deliveries.kick, vault=vault)
        if not replica and (sealed := hooks.seal_plain_secrets()):
            log.info("sealed the plain-text secrets of %d webhook endpoint(s) with the vault", sealed)
        deliveries.bind(hooks)
        clock = wall_clock(settings.test_clock_file)
        publisher = PublishWorker(settings)
        platforms = load_platforms(settings, clock)
        accounts = AccountService(
            db, settings, platforms, vault, clock,
            on_reconnected=lambda ids: [publisher.kick(i, clock()) for i in ids],
        )  # fmt: skip
        publications = PublicationService(
            db, settings, jobs, accounts, clock, publisher.kick, stopping=publisher.stopping
        )
        publisher.bind(publications)
        jobs.on_completed = publications.publish_upload_choice
        app.state.accounts = accounts
        app.state.publications = publications
        app.state.publisher = publisher
        app.state.jobs = jobs
        app.state.db = db  # the sign-in sessions (web/auth.py)
        app.state.sandbox = sandbox_fake  # the built-in fakes, when on
        app.state.uploads = uploads = TusUploads(db, settings, clock)  # resumable (tus) uploads
        app.state.webhooks = hooks
        app.state.worker = worker
        app.state.deliveries = deliveries
        app.state.live = CommitSignal(asyncio.get_running_loop())
        db.add_commit_listener(app.state.live.notify)
        unregister_metrics = metrics.register(
            metrics.AppCollector(
                jobs.counts_by_state,
                lambda: {
                    "render": worker.huey.pending_count(),
                    "webhooks": deliveries.pending_tasks(),
                    "publishing": publisher.pending_tasks(),
                },
                settings.data_dir,
                lambda: db.read(metric_totals.all_totals),
            )
        )
        stop_internal_metrics = (
            metrics.serve_internal(settings.host, settings.metrics_port) if settings.metrics_port else None
        )
        if settings.webhook_allow_private:
            log.warning(
                "VIDPROD_WEBHOOK_ALLOW_PRIVATE is on: webhooks may reach private addresses"
                " and plain http. Use this for tests and local use only."
            )
        if settings.test_clock_file:
            log.warning("VIDPROD_TEST_CLOCK_FILE is set: schedules follow a shifted clock (tests only)")
        log.info(
            "publishing to %s", "the built-in sandbox (fake TikTok, Instagram and YouTube)"
            if settings.sandbox else "the real platforms",
        )  # fmt: skip
        idle_task = None
        if working:
            db.add_commit_listener(deliveries.on_commit)
            worker.recover()
            deliveries.recover()
            publisher.recover()
            publications.publish_pending_upload_choices()
            housekeeper = Housekeeper(db, settings, uploads=uploads, sandbox=sandbox_fake, objects=objects)
            schedule_housekeeping(deliveries.huey, housekeeper, accounts)()  # and once now
            worker.start()
            deliveries.start()
            publisher.start()
            if settings.idle_exit_seconds:
                watch = IdleWatch(
                    settings.idle_exit_seconds, lambda window: pending_work(jobs, hooks, publications, window)
                )
                app.state.idle = watch
                idle_task = asyncio.create_task(_exit_when_idle(watch, on_idle))
        try:
            yield
        finally:
            if idle_task is not None:
                idle_task.cancel()
            # Stop renders at the next frame; their jobs resume on the next start.
            # Deliveries finish the request in flight; the rest stay pending.
            # Uploads stop between chunks; their saved steps resume on the next start.
            await asyncio.gather(
                anyio.to_thread.run_sync(worker.stop),
                anyio.to_thread.run_sync(deliveries.stop),
                anyio.to_thread.run_sync(publisher.stop),
            )
            for client in platforms.values():
                client.close()
            if stop_internal_metrics is not None:
                stop_internal_metrics()
            unregister_metrics()
            hooks.close()
            db.close()

    document_problems([*api.ROUTES, *captions.ROUTES, *webhooks.ROUTES, *publishing.ROUTES])
    document_problems(tus.ROUTES, prefix="/tus", no_body=True)
    sandbox_fake: FakePlatforms | None = None
    handlers: list = [*api.ROUTES, *captions.ROUTES, *webhooks.ROUTES, *publishing.ROUTES, tus_router(), *pages.ROUTES,
                      static_router()]  # fmt: skip
    if settings.sandbox:
        # The fake platforms, served by this process; their state survives restarts.
        sandbox = settings.data_dir / "sandbox"
        sandbox_fake = FakePlatforms(
            upload_dir=sandbox / "uploads", state_file=sandbox / "state.json",
            clock=wall_clock(settings.test_clock_file),
            clients=install_clients(sandbox_clients_file(settings)),  # no secret from the source
            look=PageLook(static_url("app.css"), static_url("favicon.svg")),
            redirect_uris=[f"{base}/accounts/{platform}/callback"
                           for base in {settings.browser_url, settings.internal_url} for platform in ORDER],
            rules=Rules(  # no fake takes more than the app itself would
                tiktok_max_video_size=min(Rules.tiktok_max_video_size, settings.max_upload_bytes),
                instagram_max_file_size=min(Rules.instagram_max_file_size, settings.max_upload_bytes),
                youtube_max_file_size=min(Rules.youtube_max_file_size, settings.max_upload_bytes),
            ),
        )  # fmt: skip
        handlers.append(sandbox_router(sandbox_fake))
    middleware: list = [
        request_tracking(lambda: state.idle),
        security_headers(trust_forwarded_proto=settings.behind_fly),
        session_config(token, secure=settings.browser_url.startswith("https://")).middleware,
    ]
    if settings.metrics != "off":
        handlers.append(
            type("Metrics", (PrometheusController,), {"opt": {"public": settings.metrics == "public"}, "include_in_schema": False})
        )
        middleware.append(PrometheusConfig(app_name="vidprod", prefix="vidprod", group_path=True).middleware)
    if settings.rate_limit:
        middleware.append(
            RateLimitConfig(
                rate_limit=("minute", settings.rate_limit),
                identifier_for_request=client_address(settings.behind_fly),
                exclude=["/health"],  # the sandbox too is limited: it is open to the internet
            ).middleware
        )
    return Litestar(
        route_handlers=handlers,
        compression_config=compression(),
        lifespan=[lifespan],
        guards=[require_admin],
        middleware=middleware,
        plugins=[problem_details_plugin()],
        exception_handlers={**EXCEPTION_HANDLERS, SignInRequired: redirect_to_sign_in},
        template_config=template_config(),
        state=state,
        request_max_body_size=1 << 20,
        logging_config=None,  # logs.configure() owns logging (JSON on Fly)
        debug=False,
    )


async def _exit_when_idle(watch: IdleWatch, on_idle: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(IDLE_CHECK_SECONDS)
        if await anyio.to_thread.run_sync(watch.should_exit):
            log.info("nothing to do for %.0f s: stopping (any request starts the app again)", watch.window)
            on_idle()
            return
