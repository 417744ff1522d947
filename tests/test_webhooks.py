"""Webhook endpoints and delivery rules, against a real local receiver; clock injected."""

from __future__ import annotations

import dataclasses
import json
import random
import sqlite3
import time
from email.utils import formatdate

import pytest
from litestar.testing import TestClient
from standardwebhooks import Webhook

from tests.receiver import Reply, running_receiver
from vidprod.config import Settings
from vidprod.domain.webhooks import (
    ROTATION_OVERLAP_SECONDS,
    InvalidEndpoint,
    WebhookService,
    store_endpoint,
)
from vidprod.net.ssrf import guarded_client
from vidprod.store import Database
from vidprod.store import events as ev
from vidprod.store import jobs as q
from vidprod.web.app import create_app

T0 = 1_900_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kicks() -> list[str]:
    return []


@pytest.fixture
def service(settings: Settings, clock: Clock, kicks: list[str]):
    settings = dataclasses.replace(settings, webhook_allow_private=True)
    db = Database(settings.database_path)
    db.migrate()
    service = WebhookService(db, settings, kicks.append, clock=clock, rng=random.Random(1))
    yield service
    service.close()
    db.close()


@pytest.fixture
def receiver():
    with running_receiver() as r:
        yield r


def emit(service: WebhookService, type_: str, job_id: str | None = "job1", **data) -> int:
    return service.db.write(lambda conn: ev.add_event(conn, job_id, type_, data))


def drain(service: WebhookService, endpoint_id: str) -> float | None:
    """Send everything due now, as the worker does; returns when to come back."""
    while True:
        wake = service.deliver_next(endpoint_id)
        if wake is None or wake > service.clock():
            return wake


def deliveries(service: WebhookService, endpoint_id: str) -> list[dict]:
    return service.deliveries(endpoint_id)


def test_signatures_verify_with_the_standardwebhooks_package(service, receiver):
    endpoint, secret = service.create_endpoint(receiver.url)
    assert secret.startswith("whsec_") and "secret" not in endpoint
    emit(service, "job.created", source_name="talk.mov")
    drain(service, endpoint["id"])
    [got] = receiver.requests
    assert got.headers["content-type"] == "application/json"
    body = Webhook(secret).verify(got.body, got.headers)  # raises unless signed correctly
    assert body["type"] == "job.created"
    assert body["data"] == {"job_id": "job1", "source_name": "talk.mov"}
    assert body["timestamp"].endswith("+00:00")
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 32).verify(got.body, got.headers)


def test_fails_three_times_then_each_event_arrives_once_with_one_webhook_id(service, receiver, clock):
    endpoint, secret = service.create_endpoint(receiver.url)
    receiver.script = [Reply(500), Reply(502, body=b"x" * 5000), Reply(503)]
    emit(service, "job.created")
    emit(service, "job.processing")
    waits = []
    for _ in range(3):
        wake = drain(service, endpoint["id"])
        waits.append(wake - clock.now)
        clock.now = wake
    assert drain(service, endpoint["id"]) is None
    # The schedule, ±10 % jitter: 5 s, 5 min, 30 min.
    for wait, planned in zip(waits, (5, 300, 1800), strict=True):
        assert planned * 0.9 <= wait <= planned * 1.1
    first_ids = {r.headers["webhook-id"] for r in receiver.requests[:4]}
    assert len(first_ids) == 1, "every retry carries the same webhook-id"
    types = [json.loads(r.body)["type"] for r in receiver.requests]
    assert types == ["job.created"] * 4 + ["job.processing"], "the second event waited its turn"
    successes = receiver.successes()
    assert [json.loads(r.body)["type"] for r in successes] == ["job.created", "job.processing"]
    assert len({r.headers["webhook-id"] for r in successes}) == 2
    for r in successes:
        Webhook(secret).verify(r.body, r.headers)
    log = deliveries(service, endpoint["id"])
    created = next(d for d in log if d["event_type"] == "job.created")
    assert created["state"] == "succeeded"
    assert [a["status"] for a in created["attempts"]] == [500, 502, 503, 200]
    assert len(created["attempts"][1]["response"]) == 1024, "the first 1 KB of the answer is kept"
    assert all(a["latency_ms"] >= 0 for a in created["attempts"])


def test_retry_after_is_respected(service, receiver, clock):
    endpoint, _ = service.create_endpoint(receiver.url)
    receiver.script = [
        Reply(429, headers={"Retry-After": "120"}),
        Reply(503, headers={"Retry-After": formatdate(T0 + 120 + 3600, usegmt=True)}),
    ]
    emit(service, "job.created")
    wake = drain(service, endpoint["id"])
    assert wake == T0 + 120, "120 s asked for, more than the 5 s the schedule has"
    clock.now = T0 + 119
    assert drain(service, endpoint["id"]) == wake and len(receiver.requests) == 1, "not before it"
    clock.now = wake
    wake = drain(service, endpoint["id"])
    assert wake == pytest.approx(T0 + 120 + 3600), "an HTTP date works too"
    clock.now = wake
    assert drain(service, endpoint["id"]) is None
    assert [r.status for r in receiver.requests] == [429, 503, 200]


def test_410_disables_the_endpoint(service, receiver, clock, kicks):
    endpoint, _ = service.create_endpoint(receiver.url)
    receiver.script = [Reply(410)]
    emit(service, "job.created")
    assert drain(service, endpoint["id"]) is None
    shown = service.get_endpoint(endpoint["id"])
    assert shown["enabled"] is False and "410" in shown["disabled_reason"]
    emit(service, "job.completed")
    assert drain(service, endpoint["id"]) is None
    assert len(receiver.requests) == 1, "a disabled endpoint hears nothing more"
    held, gone = deliveries(service, endpoint["id"])
    assert gone["state"] == "failed" and gone["last_status"] == 410
    assert held["state"] == "pending" and held["event_type"] == "job.completed"
    assert service.due_within(0) == 0 and service.endpoints_with_pending() == []

    service.update_endpoint(endpoint["id"], enabled=True)
    assert service.get_endpoint(endpoint["id"])["disabled_reason"] is None
    assert kicks == [endpoint["id"]], "re-enabling sends what waited"


def test_events_made_while_disabled_are_held_and_sent_in_order_on_re_enabling(service, receiver, clock):
    """Issue 20 finding 5: events while the endpoint was off after a 410 were lost."""
    endpoint, secret = service.create_endpoint(receiver.url)
    receiver.script = [Reply(410)]
    emit(service, "job.created")
    drain(service, endpoint["id"])
    emit(service, "job.completed")
    emit(service, "job.deleted")
    clock.now += 3600
    assert drain(service, endpoint["id"]) is None
    assert len(receiver.requests) == 1

    service.update_endpoint(endpoint["id"], enabled=True)
    assert service.endpoints_with_pending() == [endpoint["id"]]
    assert drain(service, endpoint["id"]) is None
    sent = receiver.requests[1:]
    assert [json.loads(r.body)["type"] for r in sent] == ["job.completed", "job.deleted"]
    for request in sent:
        Webhook(secret).verify(request.body, request.headers)
    states = {d["event_type"]: d["state"] for d in deliveries(service, endpoint["id"])}
    assert states == {"job.created": "failed", "job.completed": "succeeded", "job.deleted": "succeeded"}


def test_last_retry_fails_the_delivery_and_replay_sends_it_again(service, receiver, clock):
    endpoint, secret = service.create_endpoint(receiver.url)
    receiver.default = Reply(500)
    emit(service, "segment.ready", index=0)
    while (wake := drain(service, endpoint["id"])) is not None:
        clock.now = wake
    assert len(receiver.requests) == 8, "now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h"
    [delivery] = service.deliveries(endpoint["id"], state="failed")
    receiver.default = Reply(204)
    service.resend(endpoint["id"], delivery["id"])
    assert drain(service, endpoint["id"]) is None
    assert receiver.requests[-1].status == 204
    assert receiver.requests[-1].headers["webhook-id"] == receiver.requests[0].headers["webhook-id"]
    Webhook(secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)

    receiver.default = Reply(500)
    emit(service, "job.completed")
    emit(service, "job.deleted")
    while (wake := drain(service, endpoint["id"])) is not None:
        clock.now = wake
    assert len(service.deliveries(endpoint["id"], state="failed")) == 2
    receiver.default = Reply(200)
    sent = len(receiver.requests)
    assert service.resend_failed(endpoint["id"]) == 2
    drain(service, endpoint["id"])
    assert {d["state"] for d in service.deliveries(endpoint["id"])} == {"succeeded"}
    assert [json.loads(r.body)["type"] for r in receiver.requests[sent:]] == ["job.completed", "job.deleted"]


def test_an_endpoint_read_alone_has_its_pending_and_failed_counts(service, receiver, clock):
    endpoint, _ = service.create_endpoint(receiver.url)
    assert (endpoint["pending"], endpoint["failed"]) == (0, 0)
    receiver.default = Reply(500)
    emit(service, "segment.ready", index=0)
    while (wake := drain(service, endpoint["id"])) is not None:
        clock.now = wake
    emit(service, "job.completed")
    alone = service.get_endpoint(endpoint["id"])
    assert (alone["pending"], alone["failed"]) == (1, 1)  # as the README promises for GET /webhooks/{id}
    assert [e for e in service.list_endpoints() if e["id"] == endpoint["id"]] == [alone]


def test_rotated_secret_old_and_new_both_sign_for_a_day(service, receiver, clock):
    endpoint, old = service.create_endpoint(receiver.url)
    shown, new = service.rotate_secret(endpoint["id"])
    assert new != old and shown["previous_secret_valid_until"]
    emit(service, "job.created")
    drain(service, endpoint["id"])
    got = receiver.requests[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(got.body, got.headers)
    Webhook(new).verify(got.body, got.headers)
    clock.now += ROTATION_OVERLAP_SECONDS + 1
    emit(service, "job.completed")
    drain(service, endpoint["id"])
    got = receiver.requests[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    assert service.get_endpoint(endpoint["id"])["previous_secret_valid_until"] is None


def test_a_failing_endpoint_does_not_delay_another(service, receiver, clock):
    with running_receiver() as healthy:
        stuck, _ = service.create_endpoint(receiver.url)
        fine, _ = service.create_endpoint(healthy.url)
        receiver.default = Reply(500)
        emit(service, "job.created")
        emit(service, "job.completed")
        assert drain(service, stuck["id"]) > clock.now
        assert drain(service, fine["id"]) is None
        assert [json.loads(r.body)["type"] for r in healthy.requests] == ["job.created", "job.completed"]


def test_event_type_filters_and_opt_in_progress(service, receiver):
    everything, _ = service.create_endpoint(receiver.url)
    progress_only, _ = service.create_endpoint(receiver.url, ["job.progress"])
    emit(service, "job.created")
    emit(service, "job.progress", percent=10)
    assert [d["event_type"] for d in deliveries(service, everything["id"])] == ["job.created"]
    assert [d["event_type"] for d in deliveries(service, progress_only["id"])] == ["job.progress"]
    with pytest.raises(InvalidEndpoint, match="Unknown event type"):
        service.create_endpoint(receiver.url, ["job.exploded"])
    with pytest.raises(InvalidEndpoint, match="non-empty"):
        service.create_endpoint(receiver.url, [])


def test_a_job_webhook_hears_only_its_job(service, receiver):
    new = service.prepare(receiver.url)
    service.db.write(lambda conn: store_endpoint(conn, new, job_id="job1"))
    emit(service, "job.created", job_id="job1")
    emit(service, "job.created", job_id="job2")
    drain(service, new.id)
    assert [json.loads(r.body)["data"]["job_id"] for r in receiver.requests] == ["job1"]
    assert new.id not in [e["id"] for e in service.list_endpoints()], "not an operator endpoint"


def test_slow_receiver_is_a_failure_and_retried(service, receiver, clock, settings):
    service.client = guarded_client(allow_private=True, timeout=0.3)
    endpoint, _ = service.create_endpoint(receiver.url)
    receiver.script = [Reply(200, delay=1.0)]
    emit(service, "job.created")
    assert drain(service, endpoint["id"]) > clock.now
    [delivery] = deliveries(service, endpoint["id"])
    assert delivery["state"] == "pending" and "no answer" in delivery["last_error"]


def test_payloads_stay_under_20_kb(service, receiver):
    endpoint, _ = service.create_endpoint(receiver.url)
    emit(service, "job.failed", error="x" * 100_000)
    drain(service, endpoint["id"])
    body = receiver.requests[0].body
    assert len(body) < 20_000
    assert json.loads(body)["data"]["error"].endswith("…")


# --- through the API, with the real delivery worker -------------------------------


@pytest.fixture
def hook_client(settings: Settings):
    settings = dataclasses.replace(
        settings, webhook_allow_private=True, webhook_retry_schedule=(0, 0.2, 0.2, 0.2, 0.2)
    )
    with TestClient(create_app(settings, run_worker=True), raise_server_exceptions=False) as c:
        yield c


def test_endpoint_api_and_a_receiver_failing_three_times(hook_client, auth, receiver, short_clip):
    created = hook_client.post(
        "/webhooks", json={"url": receiver.url, "description": "ci"}, headers=auth
    )
    assert created.status_code == 201, created.text
    endpoint, secret = created.json(), created.json()["secret"]
    assert hook_client.get(f"/webhooks/{endpoint['id']}", headers=auth).json().get("secret") is None
    assert [e["id"] for e in hook_client.get("/webhooks", headers=auth).json()["endpoints"]] == [endpoint["id"]]

    receiver.script = [Reply(500), Reply(500), Reply(503)]
    with short_clip.open("rb") as f:
        job = hook_client.post("/upload", files={"file": ("s.mp4", f, "video/mp4")}, headers=auth).json()
    receiver.wait_for(lambda got: any(json.loads(r.body)["type"] == "job.completed" for r in got if r.status == 200))
    successes = receiver.successes()
    types = [json.loads(r.body)["type"] for r in successes]
    assert types[0] == "job.created" and types[-1] == "job.completed" and "segment.ready" in types
    assert len({r.headers["webhook-id"] for r in successes}) == len(successes), "each event once"
    assert {r.headers["webhook-id"] for r in receiver.requests[:4]} == {successes[0].headers["webhook-id"]}
    for r in successes:
        assert Webhook(secret).verify(r.body, r.headers)["data"]["job_id"] == job["id"]

    log = hook_client.get(f"/webhooks/{endpoint['id']}/deliveries", headers=auth).json()["deliveries"]
    assert [a["status"] for a in log[-1]["attempts"]] == [500, 500, 503, 200]
    sent = len(receiver.requests)
    resent = hook_client.post(f"/webhooks/{endpoint['id']}/deliveries/{log[-1]['id']}/resend", headers=auth)
    assert resent.status_code == 202
    receiver.wait_for(lambda got: len(got) > sent)
    assert receiver.requests[sent].headers["webhook-id"] == successes[0].headers["webhook-id"]


def test_a_failing_delivery_shows_when_it_is_tried_next(settings, auth, receiver, short_clip):
    """Issue 21: a failing webhook showed no time for its next try."""
    from tests.test_pages import sign_in
    from vidprod.web.templating import iso_time

    settings = dataclasses.replace(settings, webhook_allow_private=True, webhook_retry_schedule=(0, 3600))
    receiver.script = [Reply(500)]
    with TestClient(create_app(settings, run_worker=True), raise_server_exceptions=False) as client:
        endpoint = client.post("/webhooks", json={"url": receiver.url}, headers=auth).json()
        with short_clip.open("rb") as f:  # job.created, the first event, fails once
            client.post("/upload", files={"file": ("s.mp4", f, "video/mp4")}, headers=auth)
        receiver.wait_for(lambda got: len(got) >= 1)
        url = f"/webhooks/{endpoint['id']}/deliveries"
        for _ in range(100):
            delivery = client.get(url, headers=auth).json()["deliveries"][-1]  # the oldest
            if delivery["last_status"] == 500:
                break
            time.sleep(0.05)
        assert delivery["state"] == "pending" and delivery["next_attempt_at"] > time.time() + 3000
        sign_in(client)
        page = client.get("/settings").text
        when = iso_time(delivery["next_attempt_at"])
        assert f'Next try <time datetime="{when}">{when.replace("T", " ")[:16]} UTC</time>' in page


def test_endpoint_api_errors_are_problem_json(hook_client, auth):
    cases = [
        ({"url": "ftp://x.example/"}, 422, "https://"),
        ({"url": "https://x.example/", "event_types": ["nope"]}, 422, "Unknown event type"),
        ({"url": "https://x.example/", "colour": "red"}, 422, "Unknown field"),
        ({"event_types": None}, 422, "url is required"),
        ({"url": 5}, 422, "wrong type"),
    ]
    for body, status, words in cases:
        answer = hook_client.post("/webhooks", json=body, headers=auth)
        assert answer.status_code == status, body
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert words in answer.json()["detail"]
    assert hook_client.get("/webhooks/ep_missing", headers=auth).status_code == 404
    assert hook_client.post("/webhooks/ep_missing/rotate-secret", headers=auth).status_code == 404
    assert hook_client.get("/webhooks/event-types", headers=auth).json()["event_types"][0]["type"] == "job.created"


def test_deep_json_and_huge_ids_are_400_not_500(hook_client, auth):
    deep = "[" * 100_000 + "]" * 100_000  # msgspec raised RecursionError
    json_type = {**auth, "Content-Type": "application/json"}
    for answer in (hook_client.post("/webhooks", content=deep, headers=json_type),
                   hook_client.patch("/webhooks/ep_missing", content=deep, headers=json_type)):
        assert answer.status_code == 400 and "nested too deeply" in answer.json()["detail"]
    huge = 2**63  # sqlite3 raised OverflowError binding it
    for answer in (hook_client.post(f"/webhooks/ep_x/deliveries/{huge}/resend", headers=auth),
                   hook_client.get(f"/webhooks/ep_x/deliveries?offset={huge}", headers=auth)):
        assert answer.status_code == 400 and answer.headers["content-type"].startswith("application/problem+json")
        assert "is wrong" in answer.json()["detail"]


def test_upload_with_its_own_webhook_url(hook_client, auth, receiver, short_clip):
    with short_clip.open("rb") as f:
        answer = hook_client.post(
            "/upload",
            files={"file": ("s.mp4", f, "video/mp4")},
            data={"webhook_url": receiver.url, "webhook_events": "job.created,job.completed"},
            headers=auth,
        )
    assert answer.status_code == 202, answer.text
    secret = answer.json()["webhook"]["secret"]
    receiver.wait_for(lambda got: len(got) == 2)
    bodies = [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]
    assert [b["type"] for b in bodies] == ["job.created", "job.completed"]
    with short_clip.open("rb") as f:
        refused = hook_client.post(
            "/upload", files={"file": ("s.mp4", f, "video/mp4")},
            data={"webhook_url": "gopher://x"}, headers=auth,
        )  # fmt: skip
    assert refused.status_code == 422 and "https://" in refused.json()["detail"]


def test_webhook_secrets_are_sealed_at_rest(service, receiver, clock):
    """Issue 20 finding 11: the secrets sat in plain text in vidprod.db."""
    endpoint, old = service.create_endpoint(receiver.url)
    _, new = service.rotate_secret(endpoint["id"])
    with sqlite3.connect(service.settings.database_path) as raw:
        stored = raw.execute("SELECT secret, previous_secret FROM webhook_endpoints").fetchone()
        dump = "\n".join(raw.iterdump())
    assert old not in dump and new not in dump and "whsec_" not in dump
    assert [service.vault.open_text(s) for s in stored] == [new, old]
    emit(service, "job.created")
    drain(service, endpoint["id"])
    Webhook(new).verify(receiver.requests[-1].body, receiver.requests[-1].headers)
    Webhook(old).verify(receiver.requests[-1].body, receiver.requests[-1].headers)


def test_plain_text_secrets_of_earlier_versions_are_sealed_at_start(service, receiver):
    endpoint, secret = service.create_endpoint(receiver.url)
    service.db.write(lambda c: c.execute("UPDATE webhook_endpoints SET secret = ?", (secret,)))
    emit(service, "job.created")
    drain(service, endpoint["id"])
    Webhook(secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)
    assert service.seal_plain_secrets() == 1
    assert service.seal_plain_secrets() == 0
    stored = service.db.read(lambda c: c.execute("SELECT secret FROM webhook_endpoints").fetchone()[0])
    assert not stored.startswith("whsec_") and service.vault.open_text(stored) == secret


def test_deleting_a_job_keeps_the_events_still_to_be_delivered(service, receiver):
    endpoint, _ = service.create_endpoint(receiver.url)
    receiver.script = [Reply(500)]
    emit(service, "job.created")
    drain(service, endpoint["id"])
    service.db.write(lambda conn: q.delete_job(conn, "job1"))
    emit(service, "job.deleted")
    service.clock.now += 10
    drain(service, endpoint["id"])
    assert [json.loads(r.body)["type"] for r in receiver.successes()] == ["job.created", "job.deleted"]
    service.db.write(lambda conn: q.delete_job(conn, "job1"))
    assert service.db.read(lambda conn: ev.list_events(conn, "job1")) == []
    assert service.deliveries(endpoint["id"]) == [], "delivered history goes with the job"
