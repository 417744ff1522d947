"""Operations: idle exit rules, /metrics, logs, security headers, rate limits,
housekeeping and the disk floor."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import re
import shutil
import stat
import time
from datetime import UTC, datetime

import pytest
from litestar.testing import TestClient
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.receiver import Reply, running_receiver
from tests.server import free_port
from vidprod import logs
from vidprod.config import Settings
from vidprod.domain.accounts import AccountService
from vidprod.domain.housekeeping import ABANDONED_UPLOAD_HOURS, Housekeeper
from vidprod.domain.idle import IdleWatch, pending_work
from vidprod.domain.jobs import JobConflict, JobService
from vidprod.domain.publishing import PublicationService
from vidprod.domain.webhooks import WebhookService
from vidprod.publish.platforms import load_platforms
from vidprod.store import Database
from vidprod.store import accounts as aq
from vidprod.store import events as ev
from vidprod.store import jobs as q
from vidprod.store import metric_totals
from vidprod.store import publications as pq
from vidprod.vault import Vault
from vidprod.web.app import create_app


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(settings: Settings):
    database = Database(settings.database_path)
    database.migrate()
    yield database
    database.close()


def add_job(db: Database, job_id: str, state: str = "queued", finished_at: str | None = None) -> None:
    db.write(
        lambda c: (
            q.insert_job(c, job_id=job_id, source_name="a.mp4", source_path=f"{job_id}/source.mp4",
                         source_size=1, source_info={}, options={}),
            q.update_job(c, job_id, state=state, finished_at=finished_at),
        )
    )  # fmt: skip


# --- idle exit ---------------------------------------------------------------------


def test_idle_exit_only_when_nothing_is_pending(db, settings):
    settings = dataclasses.replace(settings, webhook_allow_private=True)
    clock = Clock(1000.0)
    jobs = JobService(db, settings, enqueue=lambda job_id: None)
    hook_clock = Clock(time.time())
    hooks = WebhookService(db, settings, kick=lambda e: None, clock=hook_clock)
    accounts = AccountService(db, settings, load_platforms(settings), Vault.from_settings(settings), hook_clock)
    publications = PublicationService(db, settings, jobs, accounts, hook_clock, kick=lambda i, w: None)
    watch = IdleWatch(300, lambda window: pending_work(jobs, hooks, publications, window), clock=clock)

    assert not watch.should_exit(), "just started: the window has not passed"
    clock.now += 301
    assert watch.should_exit()

    # A request in flight (an upload, an open job page) keeps it up, however long.
    assert watch.request_started("/upload")
    clock.now += 3600
    assert not watch.should_exit()
    watch.request_finished()
    assert not watch.should_exit(), "the window starts again after the last request"
    clock.now += 301
    assert watch.should_exit()

    # Health checks and scrapes are not users.
    assert not watch.request_started("/health") and not watch.request_started("/metrics")
    assert watch.should_exit()

    add_job(db, "j1", "processing")
    assert watch.reasons_to_stay() == ["1 job(s) queued or running"]
    db.write(lambda c: q.update_job(c, "j1", state="done"))
    assert watch.should_exit()

    endpoint, _ = hooks.create_endpoint("http://127.0.0.1:9/hook")
    db.write(lambda c: ev.add_event(c, "j1", "job.completed", {}))
    assert watch.reasons_to_stay() == ["1 webhook delivery(ies) due"]
    [delivery] = hooks.deliveries(endpoint["id"])
    db.write(lambda c: c.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?", (hook_clock.now + 5 * 3600, delivery["id"])
    ))  # fmt: skip
    assert watch.should_exit(), "a retry hours away waits for the next start"
    hook_clock.now += 5 * 3600 - 100
    assert not watch.should_exit(), "due within the window"
    db.write(lambda c: c.execute("DELETE FROM webhook_deliveries"))
    assert watch.should_exit()

    # A publication due within the window keeps it up; one due tomorrow does not.
    add_publication(db, "j1", due_at=hook_clock.now + 86400)
    assert watch.should_exit(), "a post due tomorrow waits for the wake-up cron"
    hook_clock.now += 86400 - 120
    assert watch.reasons_to_stay() == ["1 publication(s) due"]
    db.write(lambda c: c.execute("UPDATE publications SET state = 'waiting'"))
    assert watch.should_exit(), "a post waiting for a reconnect needs a person, not the app"
    hooks.close()


def add_publication(db: Database, job_id: str, due_at: float, state: str = "scheduled") -> str:
    publication_id = f"pub_{job_id}_{due_at:.0f}"

    def insert(c):
        aq.upsert_account(c, account_id="acc1", platform="youtube", remote_id="UC1", name="Chan",
                          sandbox=True, tokens="x", expires_at=None)  # fmt: skip
        pq.insert_publication(c, {"id": publication_id, "job_id": job_id, "segment_idx": 0,
                                  "account_id": "acc1", "platform": "youtube", "title": "t", "caption": "c",
                                  "privacy": "public", "options": {}, "due_at": due_at})  # fmt: skip
        pq.update_publication(c, publication_id, state=state)
        return publication_id

    return db.write(insert)


def test_idle_watch_off_when_the_window_is_zero(db, settings):
    jobs = JobService(db, settings, enqueue=lambda job_id: None)
    watch = IdleWatch(0, lambda window: [], clock=Clock(10**9))
    assert not watch.should_exit()
    assert jobs.unfinished() == []


def test_the_app_calls_on_idle_when_idle(settings):
    stopped: list[float] = []
    settings = dataclasses.replace(settings, idle_exit_seconds=1)
    with TestClient(create_app(settings, on_idle=lambda: stopped.append(time.monotonic()))) as client:
        started = time.monotonic()
        client.get("/health")
        deadline = time.monotonic() + 10
        while not stopped and time.monotonic() < deadline:
            time.sleep(0.1)
    assert stopped and stopped[0] - started >= 1.0  # not before the idle window (a busy machine may be later)


# --- metrics -----------------------------------------------------------------------


def samples_of(answer) -> dict[tuple[str, tuple], float]:  # type: ignore[no-untyped-def]
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def scrape(client: TestClient, headers: dict[str, str]) -> dict[tuple[str, tuple], float]:
    return samples_of(client.get("/metrics", headers=headers))


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def upload_and_wait_done(client: TestClient, auth: dict[str, str], clip) -> None:
    with clip.open("rb") as f:
        job = client.post("/upload", files={"file": ("s.mp4", f, "video/mp4")}, headers=auth).json()
    deadline = time.monotonic() + 60
    while client.get(f"/status/{job['id']}", headers=auth).json()["state"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_metrics_parse_and_move_when_a_job_runs(client, auth, short_clip):
    before = scrape(client, auth)
    assert value(before, "vidprod_jobs", state="done") == 0
    assert value(before, "vidprod_disk_free_bytes") > 0
    upload_and_wait_done(client, auth, short_clip)
    after = scrape(client, auth)
    assert value(after, "vidprod_jobs", state="done") == 1
    assert value(after, "vidprod_frames_rendered_total") - value(before, "vidprod_frames_rendered_total") == 120
    assert value(after, "vidprod_processing_seconds_count", stage="rendering") > value(
        before, "vidprod_processing_seconds_count", stage="rendering"
    )
    assert value(after, "vidprod_render_fps_count") >= 1
    uploads = [k for k in after if k[0] == "vidprod_requests_total" and ("path", "/upload") in k[1]]
    assert uploads and any(("status_code", "202") in k[1] for k in uploads)
    assert value(after, "vidprod_queue_depth", queue="render") == 0


def test_metrics_need_the_token_unless_public_or_off(settings, auth):
    with TestClient(create_app(settings, run_worker=False)) as client:
        assert client.get("/metrics").status_code == 401
    with TestClient(create_app(dataclasses.replace(settings, metrics="public"), run_worker=False)) as client:
        assert client.get("/metrics").status_code == 200
    with TestClient(create_app(dataclasses.replace(settings, metrics="off"), run_worker=False)) as client:
        assert client.get("/metrics", headers=auth).status_code == 404


def test_webhook_outcomes_are_counted(settings, db):
    settings = dataclasses.replace(settings, webhook_allow_private=True)
    hooks = WebhookService(db, settings, kick=lambda e: None)
    with running_receiver() as receiver:
        receiver.script = [Reply(500)]
        endpoint, _ = hooks.create_endpoint(receiver.url)
        db.write(lambda c: ev.add_event(c, "j1", "job.created", {}))
        hooks.deliver_next(endpoint["id"])
    hooks.close()
    assert db.read(metric_totals.all_totals) == {("vidprod_webhook_deliveries", ("retrying",)): 1}


def scrape_internal(port: int) -> dict[tuple[str, tuple], float]:
    return samples_of(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10))


def test_internal_metrics_port_needs_no_token_and_totals_outlive_the_process(settings, short_clip, auth):
    """Fly's scraper sends no header: the internal port answers without the token (the
    public route keeps it). Every known series starts at 0, and the last job's figures
    are still there after the app stops and starts again."""
    settings = dataclasses.replace(settings, metrics_port=free_port())
    tiktok_published = ("vidprod_publications_total", (("outcome", "published"), ("platform", "tiktok")))
    with TestClient(create_app(settings)) as client:
        fresh = scrape_internal(settings.metrics_port)
        assert fresh[tiktok_published] == 0 and fresh[("vidprod_frames_rendered_total", ())] == 0
        assert fresh[("vidprod_webhook_deliveries_total", (("outcome", "failed"),))] == 0
        assert ("vidprod_processing_seconds_count", (("stage", "rendering"),)) in fresh, "timings (per process)"
        assert client.get("/metrics").status_code == 401, "the public route keeps its token"
        upload_and_wait_done(client, auth, short_clip)
        during = scrape_internal(settings.metrics_port)
        assert during[("vidprod_frames_rendered_total", ())] == 120
        assert any(name == "vidprod_requests_total" for name, _ in during), "request metrics there too"
    with TestClient(create_app(settings, run_worker=False)):
        after_restart = scrape_internal(settings.metrics_port)
    assert after_restart[("vidprod_frames_rendered_total", ())] == 120


# --- logs, headers, rate limits ----------------------------------------------------


def test_json_logs_carry_request_and_job_ids(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        logs.configure("INFO", "auto")  # not a terminal: JSON
        request_token = logs.request_id.set("req12345")
        job_token = logs.job_id.set("job42")
        logging.getLogger("vidprod.test").info("rendered part %d", 3)
        logs.request_id.reset(request_token)
        logs.job_id.reset(job_token)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    record = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert record["message"] == "rendered part 3"
    assert record["request_id"] == "req12345" and record["job_id"] == "job42"
    assert record["level"] == "INFO" and record["logger"] == "vidprod.test" and record["time"]


def test_security_headers_and_request_ids(idle_client, auth):
    answer = idle_client.get("/jobs", headers={**auth, "X-Request-ID": "abc-12345678"})
    assert answer.headers["x-request-id"] == "abc-12345678"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert "strict-transport-security" not in answer.headers, "no HSTS over plain http"
    generated = idle_client.get("/health", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"]
    assert len(generated) == 16 and generated != "bad id!"


def test_hsts_behind_fly_over_https(settings):
    behind = dataclasses.replace(settings, behind_fly=True)
    with TestClient(create_app(behind, run_worker=False)) as client:
        answer = client.get("/health", headers={"X-Forwarded-Proto": "https"})
        assert answer.headers["strict-transport-security"].startswith("max-age=")
    with TestClient(create_app(settings, run_worker=False)) as client:
        answer = client.get("/health", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in answer.headers, "not trusted off Fly"


def test_rate_limit_per_client_address(settings, auth):
    limited = dataclasses.replace(settings, rate_limit=3, behind_fly=True)
    with TestClient(create_app(limited, run_worker=False)) as client:
        alice = {**auth, "Fly-Client-IP": "203.0.113.7"}
        assert [client.get("/jobs", headers=alice).status_code for _ in range(3)] == [200] * 3
        refused = client.get("/jobs", headers=alice)
        assert refused.status_code == 429
        assert client.get("/jobs", headers={**auth, "Fly-Client-IP": "203.0.113.8"}).status_code == 200
        assert client.get("/health").status_code == 200, "health checks are never limited"
    off_fly = dataclasses.replace(settings, rate_limit=3)
    with TestClient(create_app(off_fly, run_worker=False)) as client:
        statuses = [
            client.get("/jobs", headers={**auth, "Fly-Client-IP": f"203.0.113.{n}"}).status_code for n in range(4)
        ]
        assert statuses[-1] == 429, "off Fly the header is ignored: it could be forged"


def test_429_says_when_to_try_again_in_words(settings, auth):
    with TestClient(create_app(dataclasses.replace(settings, rate_limit=2), run_worker=False)) as client:
        for _ in range(2):
            assert client.get("/jobs", headers=auth).status_code == 200
        refused = client.get("/jobs", headers=auth)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 60
    assert refused.json()["detail"] == f"Too many requests from your address; wait {wait} s, then try again."


def test_authenticated_answers_are_never_cached(idle_client, auth):
    for url in ("/jobs", "/status/nope", "/webhooks", "/accounts", "/videos"):
        assert idle_client.get(url, headers=auth).headers["cache-control"] == "no-store", url
    assert idle_client.get("/health").headers["cache-control"] == "no-store"
    page = idle_client.get("/videos", headers=auth).text
    css = re.search(r'href="(/static/app\.css\?v=\w+)"', page)[1]
    assert "max-age=31536000" in idle_client.get(css).headers["cache-control"], "versioned static files still cache"


# --- housekeeping and disk -----------------------------------------------------------


def test_housekeeping_removes_exactly_the_expired_files(db, settings):
    now = time.time()

    def hours_ago(hours: float) -> str:
        return datetime.fromtimestamp(now - hours * 3600, UTC).isoformat(timespec="milliseconds")

    cases = {
        "old-done": ("done", hours_ago(49)),
        "old-failed": ("failed", hours_ago(72)),
        "old-cancelled": ("cancelled", hours_ago(50)),
        "young-done": ("done", hours_ago(47)),
        "running": ("processing", None),
        "queued": ("queued", None),
        "old-still-to-publish": ("done", hours_ago(100)),
        "old-published-lately": ("done", hours_ago(100)),
        "old-published-long-ago": ("done", hours_ago(100)),
    }
    for job_id, (state, finished) in cases.items():
        add_job(db, job_id, state, finished)
        (settings.media_dir / job_id / "parts").mkdir(parents=True)
        (settings.media_dir / job_id / "source.mp4").write_bytes(b"x")
        (settings.media_dir / job_id / "parts" / "part-001.mp4").write_bytes(b"x")
    # Files stay while a publication may still need them, and KEEP_HOURS after the last ended.
    add_publication(db, "old-still-to-publish", due_at=now + 3600)
    for job_id, ended in (("old-published-lately", hours_ago(10)), ("old-published-long-ago", hours_ago(49))):
        publication_id = add_publication(db, job_id, due_at=now - 99 * 3600, state="published")
        db.write(lambda c, p=publication_id, e=ended: c.execute("UPDATE publications SET updated_at = ? WHERE id = ?", (e, p)))
    uploads = settings.tmp_dir / "uploads"
    uploads.mkdir(parents=True)
    stale, fresh = uploads / "upload-old.part", uploads / "upload-new.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (now - (ABANDONED_UPLOAD_HOURS + 1) * 3600,) * 2)

    result = Housekeeper(db, settings, clock=lambda: now).run()

    assert result == {"jobs": 4, "uploads": 1}
    gone = {j for j in cases if not (settings.media_dir / j).exists()}
    assert gone == {"old-done", "old-failed", "old-cancelled", "old-published-long-ago"}
    assert not stale.exists() and fresh.exists()
    for job_id in cases:
        job = db.read(lambda c, job_id=job_id: q.get_job(c, job_id))
        assert job is not None, "rows stay"
        assert bool(job["files_removed_at"]) == (job_id in gone)
    assert Housekeeper(db, settings, clock=lambda: now).run() == {"jobs": 0, "uploads": 0}, "once"


def test_upload_is_refused_with_507_when_the_disk_floor_would_be_crossed(settings, auth, short_clip):
    free = shutil.disk_usage(settings.data_dir.parent).free
    tight = dataclasses.replace(settings, min_free_mb=(free >> 20) + 1)
    with TestClient(create_app(tight, run_worker=False)) as client:
        with short_clip.open("rb") as f:
            answer = client.post("/upload", files={"file": ("s.mp4", f, "video/mp4")}, headers=auth)
        assert answer.status_code == 507
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "disk space" in answer.json()["detail"]
        assert client.get("/jobs", headers=auth).json()["total"] == 0
    assert list((settings.tmp_dir / "uploads").glob("*")) == [], "nothing stored"


def test_a_chunked_upload_cannot_fill_the_disk_past_the_floor(settings, auth):
    free = shutil.disk_usage(settings.data_dir.parent).free
    tight = dataclasses.replace(settings, min_free_mb=(free >> 20) - 8)  # room for 8 MB, no more

    def body():  # no Content-Length: the size is unknown until the end
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
        for _ in range(40):  # 40 MB: free space was checked only every 64 MB
            yield b"\0" * (1 << 20)
        yield b"\r\n--b--\r\n"

    with TestClient(create_app(tight, run_worker=False)) as client:
        answer = client.post("/upload", headers={**auth, "Content-Type": "multipart/form-data; boundary=b"},
                             content=body())
    assert answer.status_code == 507, answer.text
    assert "disk space" in answer.json()["detail"]
    assert list((settings.tmp_dir / "uploads").glob("*")) == [], "nothing stored"


def test_one_access_log_line_per_request_with_its_id(idle_client, auth, caplog):
    with caplog.at_level(logging.INFO, logger="vidprod.access"):
        idle_client.get("/jobs", headers={**auth, "X-Request-ID": "trace-000123"})
        idle_client.get("/health")
    lines = [r for r in caplog.records if r.name == "vidprod.access"]
    assert [r.getMessage().split(" ")[:3] for r in lines] == [["GET", "/jobs", "200"]], "probes stay quiet"


def test_a_job_whose_files_were_removed_cannot_be_retried(db, settings):
    jobs = JobService(db, settings, enqueue=lambda job_id: None)
    add_job(db, "old", "failed", "2020-01-01T00:00:00.000+00:00")
    assert Housekeeper(db, settings).run()["jobs"] == 1
    with pytest.raises(JobConflict, match="removed by housekeeping after 48 hours"):
        jobs.retry("old")


def test_start_makes_the_data_dir_private_and_warns_when_the_key_sits_beside_the_database(tmp_path, caplog):
    """Issue 20 finding 11: a copy of data/ held the Fernet key beside what it seals."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    settings = Settings(data_dir=data, admin_token="t" * 24)
    with caplog.at_level(logging.WARNING, logger="vidprod.web.app"):
        with TestClient(create_app(settings, run_worker=False)) as c:
            assert c.get("/health").status_code == 200
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE(settings.database_path.stat().st_mode) == 0o600
    [warning] = [r.getMessage() for r in caplog.records if "VIDPROD_SECRET_KEY" in r.getMessage()]
    assert str(data / "secret_key") in warning and "beside the database" in warning

    caplog.clear()
    key = (data / "secret_key").read_text().strip()
    (data / "secret_key").unlink()
    keyed = dataclasses.replace(settings, secret_key=key)
    with caplog.at_level(logging.WARNING, logger="vidprod.web.app"):
        with TestClient(create_app(keyed, run_worker=False)) as c:
            assert c.get("/health").status_code == 200
    assert not (data / "secret_key").exists(), "a key from the environment is not written to disk"
    assert not [r for r in caplog.records if "VIDPROD_SECRET_KEY" in r.getMessage()]
