"""Publishing end to end: the real `vidprod serve` process renders real video and
publishes it to strict fake TikTok, Instagram and YouTube servers running in this test
process. Time is moved by writing to VIDPROD_TEST_CLOCK_FILE (app and fakes read the
same clock), never by sleeping through a schedule."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import running_fake
from tests.server import Server
from vidprod.clock import wall_clock
from vidprod.sandbox.state import DEFAULT_CLIENTS, FakePlatforms, Rules

pytestmark = pytest.mark.slow

KiB = 1024
CHUNK = 256 * KiB  # both the app's chunk and the fakes' scaled-down rules


class World:
    """One server, the fakes, the shared clock and three connected accounts."""

    def __init__(self, root: Path, fake_url: str, fake: FakePlatforms, clock_file: Path) -> None:
        self.fake = fake
        self.clock_file = clock_file
        self.offset = 0.0
        client_env = {
            "VIDPROD_TIKTOK_CLIENT_KEY": DEFAULT_CLIENTS["tiktok"][0],
            "VIDPROD_TIKTOK_CLIENT_SECRET": DEFAULT_CLIENTS["tiktok"][1],
            "VIDPROD_INSTAGRAM_CLIENT_ID": DEFAULT_CLIENTS["instagram"][0],
            "VIDPROD_INSTAGRAM_CLIENT_SECRET": DEFAULT_CLIENTS["instagram"][1],
            "VIDPROD_GOOGLE_CLIENT_ID": DEFAULT_CLIENTS["youtube"][0],
            "VIDPROD_GOOGLE_CLIENT_SECRET": DEFAULT_CLIENTS["youtube"][1],
        }
        self.server = Server(
            root / "data", root / "server.log",
            VIDPROD_PLATFORMS="live", VIDPROD_PLATFORM_BASE_URL=fake_url,
            VIDPROD_TEST_CLOCK_FILE=str(clock_file), VIDPROD_DISPATCH_SECONDS="1",
            VIDPROD_PUBLISH_CHUNK_BYTES=str(CHUNK), VIDPROD_PUBLISH_TIMEOUT="10",
            VIDPROD_SEGMENT_SECONDS="10", **client_env,
        )  # fmt: skip
        self.accounts: dict[str, str] = {}

    @property
    def api(self) -> httpx.Client:
        return self.server.client

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self.clock_file.write_text(str(self.offset))

    def now(self) -> float:
        return time.time() + self.offset

    def connect(self, platform: str) -> str:
        """The OAuth flow as a browser walks it: our connect → the fake's consent page
        (Allow) → our callback."""
        answer = self.api.post(f"/accounts/{platform}/connect")
        assert answer.status_code == 200, answer.text
        consent = httpx.get(answer.json()["authorize_url"] + "&approve=1", follow_redirects=False)
        assert consent.status_code == 302, consent.text
        back = urlsplit(consent.headers["location"])
        callback = httpx.get(f"{self.server.url}{back.path}?{back.query}")
        assert callback.status_code == 200, callback.text
        assert "connected" in callback.text
        [account] = [a for p in self.api.get("/accounts").json()["platforms"] if p["platform"] == platform
                     for a in p["accounts"]]  # fmt: skip
        return account["id"]

    def job(self, clip: Path) -> dict[str, Any]:
        answer = self.server.upload(clip)
        assert answer.status_code == 202, answer.text
        job = self.server.wait_done(answer.json()["id"])
        assert job["state"] == "done", job
        return job

    def publish(self, job_id: str, platforms: list[str], **body: Any) -> list[dict[str, Any]]:
        body = {"accounts": [self.accounts[p] for p in platforms], **body}
        answer = self.api.post(f"/jobs/{job_id}/publications", json=body)
        assert answer.status_code == 201, answer.text
        return answer.json()["publications"]

    def publication(self, publication_id: str) -> dict[str, Any]:
        return self.api.get(f"/publications/{publication_id}").json()

    def wait(self, predicate: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := predicate():
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what or predicate}; log:\n{self.server.log_path.read_text()[-3000:]}")

    def wait_state(self, publication_id: str, state: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait(lambda: (p := self.publication(publication_id))["state"] == state and p,
                         timeout, f"{publication_id} to be {state}")  # fmt: skip

    def event_types(self, job_id: str, prefix: str = "publication.") -> list[str]:
        """The job's event log, read from the app's database file (read-only)."""
        with sqlite3.connect(f"file:{self.server.data_dir / 'vidprod.db'}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT type FROM events WHERE job_id = ? ORDER BY id", (job_id,))
            return [t for (t,) in rows if t.startswith(prefix)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("publishing")
    clock_file = root / "clock"
    clock_file.write_text("0")
    rules = Rules(tiktok_min_chunk=128 * KiB, tiktok_max_chunk=1024 * KiB, tiktok_max_last_chunk=2048 * KiB,
                  youtube_chunk_granularity=CHUNK)  # fmt: skip
    fake = FakePlatforms(clock=wall_clock(clock_file), rules=rules, upload_dir=root / "fake-uploads")
    with running_fake(fake) as fake_url:
        world = World(root, fake_url, fake, clock_file)
        world.server.start()
        try:
            for platform in ("tiktok", "instagram", "youtube"):
                world.accounts[platform] = world.connect(platform)
            yield world
        finally:
            world.server.stop()


def test_three_parts_to_all_three_platforms_on_a_spread_schedule(world, long_clip):
    job = world.job(long_clip)
    assert len(job["segments"]) == 3
    start = time.strftime("%Y-%m-%dT18:00", time.gmtime(world.now() + 86400))
    publications = world.publish(
        job["id"], ["tiktok", "instagram", "youtube"], title="My trip",
        caption="{title} ({part}/{parts})", hashtags=["shorts"], privacy="public",
        schedule={"mode": "spread", "start": start, "timezone": "Europe/Berlin", "every_hours": 24},
        options={"made_for_kids": False},
    )  # fmt: skip
    assert len(publications) == 9
    first_due = min(p["due_at"] for p in publications)
    assert {round(p["due_at"] - first_due) for p in publications} == {0, 86400, 2 * 86400}
    time.sleep(2)  # two dispatcher rounds: nothing is due yet
    assert world.fake.posts() == []

    for day in range(3):
        world.advance(first_due + day * 86400 + 1 - world.now())
        due = [p for p in publications if p["part"] == day + 1]
        for publication in due:
            done = world.wait_state(publication["id"], "published")
            assert done["post_id"] and done["attempts"] == 1
        later = [world.publication(p["id"])["state"] for p in publications if p["part"] > day + 1]
        assert set(later) <= {"scheduled"}, "later parts wait for their day"

    posts = world.fake.posts()
    assert len(posts) == 9, "each part once on each platform"
    captions = sorted(p.get("caption") or p.get("title") or p.get("description") for p in posts if p["platform"] == "instagram")
    assert captions == [f"My trip ({n}/3) #shorts" for n in (1, 2, 3)]
    [init] = world.fake.requests("tiktok.init")[:1]
    assert init["post_info"]["privacy_level"] == "PUBLIC_TO_EVERYONE"
    insert = world.fake.requests("youtube.insert")[0]["body"]
    assert insert["status"]["selfDeclaredMadeForKids"] is False and insert["snippet"]["title"] == "My trip (1/3)"
    published = {
        sample.labels["platform"]: sample.value
        for family in text_string_to_metric_families(world.api.get("/metrics").text)
        for sample in family.samples
        if sample.name == "vidprod_publications_total" and sample.labels["outcome"] == "published"
    }
    assert published == {"tiktok": 3, "instagram": 3, "youtube": 3}
    types = world.event_types(job["id"])
    assert types.count("publication.scheduled") == 9 and types.count("publication.published") == 9


def test_a_5xx_then_success_is_retried_with_backoff(world, short_clip):
    job = world.job(short_clip)
    world.fake.fail_next("tiktok.init", 500, code="internal_error")
    [publication] = world.publish(job["id"], ["tiktok"])
    failed = world.wait(lambda: (p := world.publication(publication["id"]))["error_code"] and p, what="a failure")
    assert failed["state"] == "scheduled" and failed["error_code"] == "internal_error"
    assert failed["next_attempt_at"] <= world.now() + 30, "full jitter under a 30 s ceiling"
    world.advance(31)
    done = world.wait_state(publication["id"], "published")
    assert done["attempts"] == 2
    types = world.event_types(job["id"])
    assert types == ["publication.scheduled", "publication.uploading", "publication.failed",
                     "publication.uploading", "publication.published"]  # fmt: skip


def test_429_with_retry_after_blocks_the_account_until_then(world, short_clip):
    job = world.job(short_clip)
    before = world.fake.seen("tiktok.init")
    world.fake.fail_next("tiktok.init", 429, code="rate_limit_exceeded", retry_after=600)
    [publication] = world.publish(job["id"], ["tiktok"])
    waiting = world.wait(lambda: (p := world.publication(publication["id"]))["error_code"] and p, what="the 429")
    assert waiting["next_attempt_at"] >= world.now() + 590 and waiting["attempts"] == 0, "not a failed try"
    account = world.api.get(f"/accounts/{world.accounts['tiktok']}").json()
    assert account["blocked_until"] >= world.now() + 590
    time.sleep(3)  # three dispatcher rounds
    assert world.fake.seen("tiktok.init") == before + 1, "no request before Retry-After passed"
    world.advance(601)
    world.wait_state(publication["id"], "published")


def test_token_expiring_mid_upload_is_refreshed_and_the_upload_finishes(world, long_clip):
    job = world.job(long_clip)  # 10 s parts: several 256 KiB chunks
    refreshes = world.fake.seen("youtube.token")
    world.fake.expire_tokens("youtube", after="youtube.upload")
    [publication] = world.publish(job["id"], ["youtube"], parts=[1])
    done = world.wait_state(publication["id"], "published")
    assert done["attempts"] == 1, "a refresh is not a failed try"
    assert world.fake.seen("youtube.token") == refreshes + 1
    assert len([p for p in world.fake.posts("youtube") if p["id"] == done["post_id"]]) == 1


def test_a_chunk_cut_mid_way_resumes_from_the_offset(world, long_clip):
    job = world.job(long_clip)
    uploads = world.fake.seen("youtube.upload")
    world.fake.cut_next("youtube.upload", after_bytes=CHUNK // 2)
    [publication] = world.publish(job["id"], ["youtube"], parts=[2])
    done = world.wait_state(publication["id"], "published")
    size = job["segments"][1]["size_bytes"]
    chunks = -(-size // CHUNK)
    # The cut chunk again, one status query; never the chunks already held.
    assert world.fake.seen("youtube.upload") - uploads <= chunks + 2
    assert done["attempts"] == 1

    tiktok_uploads = world.fake.seen("tiktok.upload")
    world.fake.cut_next("tiktok.upload", after_bytes=CHUNK // 2)
    [publication] = world.publish(job["id"], ["tiktok"], parts=[2])
    world.advance(31)  # the cut counts as a failed try: its retry comes within 30 s
    done = world.wait_state(publication["id"], "published")
    tiktok_chunks = max(1, size // CHUNK)  # TikTok's rule: the last chunk takes the remainder
    assert tiktok_chunks >= 2
    assert world.fake.seen("tiktok.upload") - tiktok_uploads == tiktok_chunks + 1, "only the cut chunk was sent twice"


def test_killed_right_after_the_final_publish_call_posts_exactly_once(world, short_clip):
    job = world.job(short_clip)
    before = len(world.fake.posts("instagram"))
    world.fake.hang_next("instagram.publish", 30)
    [publication] = world.publish(job["id"], ["instagram"])
    assert world.fake.wait_for("instagram.publish", count=world.fake.seen("instagram.publish") + 1, timeout=60)
    # The fake counts the call when it arrives; kill once it has published, before it answers.
    world.wait(lambda: len(world.fake.posts("instagram")) == before + 1, timeout=20, what="the fake to publish")
    world.server.signal(signal.SIGKILL)
    world.server.wait_exit(10)
    world.server.start()
    world.advance(61)  # the unknown outcome is looked up, not re-sent
    done = world.wait_state(publication["id"], "published")
    assert len(world.fake.posts("instagram")) == before + 1, "exactly one post"
    [post] = world.fake.posts("instagram")[-1:]
    # issue 20 finding 12: the media id and permalink, looked up, not the container id
    assert done["post_id"] == post["id"] and post["container_id"] != post["id"]
    # issue 21: against the fakes, the link is the fake's page for the post (not instagram.com)
    assert done["post_url"] and done["post_url"].endswith(f"/www.instagram.com/reel/{post['shortcode']}")
    assert "https://www.instagram.com" not in done["post_url"]


def part_sha256(world: World, job_id: str, part: int) -> str:
    answer = world.api.get(f"/jobs/{job_id}/segments/{part - 1}/file")
    assert answer.status_code == 200, answer.text
    return hashlib.sha256(answer.content).hexdigest()


def crash_during(world: World, operation: str, count: int) -> None:
    """Kill the server (SIGKILL) while the `count`-th request of `operation` is held
    open by the fake (it has done its work), then start it again."""
    world.fake.hang_next(operation, 30)
    assert world.fake.wait_for(operation, count=count, timeout=60), f"no {operation}"
    time.sleep(0.3)  # the fake has stored what the request carried
    world.server.signal(signal.SIGKILL)
    world.server.wait_exit(10)
    world.server.start()


def test_instagram_crash_after_the_whole_upload_reached_meta_publishes_once(world, short_clip):
    """Issue 20 finding 3: after a restart the upload went again from 0, the host said
    "complete or expired" and the post was dead-lettered though Meta had every byte."""
    job = world.job(short_clip)
    before, uploads = len(world.fake.posts("instagram")), world.fake.seen("instagram.upload")
    [publication] = world.publish(job["id"], ["instagram"])
    crash_during(world, "instagram.upload", uploads + 1)  # one chunk: the whole file
    world.advance(61)
    done = world.wait_state(publication["id"], "published")
    posts = world.fake.posts("instagram")
    assert len(posts) == before + 1, "exactly one post"
    assert posts[-1]["sha256"] == part_sha256(world, job["id"], 1)
    assert done["post_id"] == posts[-1]["id"]


def test_instagram_crash_mid_upload_resumes_at_the_hosts_offset(world, long_clip):
    job = world.job(long_clip)
    size = job["segments"][1]["size_bytes"]
    chunks = -(-size // CHUNK)
    assert chunks >= 3, "a part of several chunks"
    before, uploads = len(world.fake.posts("instagram")), world.fake.seen("instagram.upload")
    asked = world.fake.seen("instagram.upload_offset")
    [publication] = world.publish(job["id"], ["instagram"], parts=[2])
    crash_during(world, "instagram.upload", uploads + 2)  # two chunks are in
    world.advance(61)
    world.wait_state(publication["id"], "published")
    posts = world.fake.posts("instagram")
    assert len(posts) == before + 1
    assert posts[-1]["size"] == size and posts[-1]["sha256"] == part_sha256(world, job["id"], 2)
    assert world.fake.seen("instagram.upload_offset") > asked, "the host was asked where it stands"
    assert world.fake.seen("instagram.upload") - uploads == chunks, "no chunk was sent twice"


_unused_parts: dict[str, list[tuple[str, int]]] = {}


def unused_part(world: World, platform: str, clip: Path) -> tuple[dict[str, Any], int]:
    """A rendered part (1 or 2 of a 25 s clip: several chunks) not yet sent to `platform`."""
    queue = _unused_parts.setdefault(platform, [])
    if not queue:
        job = world.job(clip)
        queue.extend((job["id"], part) for part in (1, 2))
    job_id, part = queue.pop(0)
    return world.api.get(f"/status/{job_id}").json(), part


def chunk_count(platform: str, size: int) -> int:
    return max(1, size // CHUNK) if platform == "tiktok" else -(-size // CHUNK)


@pytest.mark.parametrize(
    ("platform", "operation", "request_no"),
    [
        ("tiktok", "tiktok.init", 1),
        ("tiktok", "tiktok.upload", 1),
        ("tiktok", "tiktok.upload", -1),
        ("tiktok", "tiktok.status", 1),
        ("youtube", "youtube.insert", 1),
        ("youtube", "youtube.upload", 2),
        ("youtube", "youtube.upload", -1),
        ("instagram", "instagram.create", 1),
        ("instagram", "instagram.upload", -1),
        ("instagram", "instagram.status", 1),
    ],
)
def test_a_crash_at_each_step_of_a_multi_chunk_upload_posts_once_and_whole(world, long_clip, platform, operation, request_no):
    """Issue 20 finding 12: a SIGKILL while the platform holds the request open, at each
    step (-1: the last chunk); after the restart the upload goes on from where the
    platform says, and exactly one post carries exactly the part's bytes."""
    job, part = unused_part(world, platform, long_clip)
    size = job["segments"][part - 1]["size_bytes"]
    chunks = chunk_count(platform, size)
    assert chunks >= 2, "a part larger than one chunk"
    before = len(world.fake.posts(platform))
    nth = chunks if request_no == -1 else request_no
    [publication] = world.publish(job["id"], [platform], parts=[part])
    crash_during(world, operation, world.fake.seen(operation) + nth)
    world.advance(61)
    done = world.wait_state(publication["id"], "published", timeout=90)
    posts = world.fake.posts(platform)
    assert len(posts) == before + 1, "exactly one post"
    assert posts[-1]["size"] == size and posts[-1]["sha256"] == part_sha256(world, job["id"], part)
    assert done["post_id"] == posts[-1]["id"]


def test_instagram_401_on_the_upload_host_refreshes_or_parks_the_post_for_a_reconnect(world, short_clip):
    """Issue 20 finding 4: a 401 from rupload was dead-lettered. It refreshes the token
    and carries on; when the refresh is refused too, the post waits for a reconnect."""
    job = world.job(short_clip)
    before = len(world.fake.posts("instagram"))
    world.fake.fail_next("instagram.upload", 401, code="AuthError", message="Invalid OAuth access token")
    world.fake.fail_next("instagram.refresh", 400, code=190, message="Error validating access token")
    [publication] = world.publish(job["id"], ["instagram"], parts=[1])
    waiting = world.wait_state(publication["id"], "waiting")
    assert waiting["attempts"] == 0, "not a failed try"
    account = world.api.get(f"/accounts/{world.accounts['instagram']}").json()
    assert account["state"] == "reconnect_needed"
    assert world.connect("instagram") == world.accounts["instagram"]
    world.wait_state(publication["id"], "published")
    assert len(world.fake.posts("instagram")) == before + 1

    world.advance(86401)  # Instagram refreshes only tokens a day old
    refreshes = world.fake.seen("instagram.refresh")
    world.fake.fail_next("instagram.upload", 401, code="AuthError", message="Invalid OAuth access token")
    job = world.job(short_clip)
    [publication] = world.publish(job["id"], ["instagram"])
    done = world.wait_state(publication["id"], "published")
    assert done["attempts"] == 1, "a refresh is not a failed try"
    assert world.fake.seen("instagram.refresh") > refreshes
    assert len(world.fake.posts("instagram")) == before + 2


def test_a_cap_error_reschedules_after_the_window_instead_of_looping(world, short_clip):
    job = world.job(short_clip)
    publishes = world.fake.seen("instagram.publish")
    world.fake.fail_next("instagram.publish", 400, code=9, subcode=2207042, message="publishing limit reached")
    [publication] = world.publish(job["id"], ["instagram"])
    held = world.wait(lambda: (p := world.publication(publication["id"]))["error_code"] and p, what="the cap")
    assert held["state"] == "scheduled" and held["reschedules"] == 1 and held["attempts"] == 0
    assert held["next_attempt_at"] >= world.now() + 3000
    time.sleep(3)
    assert world.fake.seen("instagram.publish") == publishes + 1, "not retried in a loop"
    world.advance(3601)
    world.wait_state(publication["id"], "published")
    assert world.fake.seen("instagram.publish") == publishes + 2


def test_a_lost_grant_makes_posts_wait_until_the_account_is_reconnected(world, short_clip):
    job = world.job(short_clip)
    world.fake.expire_tokens("tiktok")
    world.fake.fail_next("tiktok.token", 400, code="invalid_grant", message="refresh token revoked")
    [publication] = world.publish(job["id"], ["tiktok"])
    waiting = world.wait_state(publication["id"], "waiting")
    assert waiting["attempts"] == 0
    account = world.api.get(f"/accounts/{world.accounts['tiktok']}").json()
    assert account["state"] == "reconnect_needed" and "invalid_grant" in account["state_reason"]
    with sqlite3.connect(f"file:{world.server.data_dir / 'vidprod.db'}?mode=ro", uri=True) as conn:
        [(data,)] = conn.execute(
            "SELECT data FROM events WHERE type = 'account.reconnect_needed'"
            " AND json_extract(data, '$.platform') = 'tiktok'"
        ).fetchall()
    assert '"publications_waiting": 1' in data
    later = world.now() + 3600  # moved while it waits: the reconnect must not send it early
    moved = world.api.patch(f"/publications/{publication['id']}",
                            json={"due_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(later))})  # fmt: skip
    assert moved.status_code == 200 and moved.json()["state"] == "waiting", moved.text
    assert world.connect("tiktok") == world.accounts["tiktok"], "the same account, reconnected"
    back = world.wait_state(publication["id"], "scheduled")
    assert back["next_attempt_at"] >= later - 1
    time.sleep(2)  # two dispatcher rounds
    assert world.publication(publication["id"])["state"] == "scheduled"
    world.advance(3601)
    world.wait_state(publication["id"], "published")


def test_a_permanent_refusal_is_dead_lettered_and_can_be_retried(world, short_clip):
    job = world.job(short_clip)
    world.fake.fail_next("youtube.insert", 400, code="invalidTitle", message="The title is not allowed")
    [publication] = world.publish(job["id"], ["youtube"])
    dead = world.wait_state(publication["id"], "dead")
    assert (dead["error_code"], dead["error_message"]) == ("invalidTitle", "The title is not allowed")
    assert world.api.get("/publications", params={"state": "dead"}).json()["publications"][0]["id"] == publication["id"]
    assert world.api.post(f"/publications/{publication['id']}/cancel").status_code == 200
    retried = world.api.post(f"/publications/{publication['id']}/retry")
    assert retried.status_code == 202
    world.wait_state(publication["id"], "published")
    again = world.api.post(f"/jobs/{job['id']}/publications", json={"accounts": [world.accounts["youtube"]]})
    assert again.status_code == 409, "a part goes to an account once"
    # issue 21: it said "cancel that first" where no Cancel exists (a published post has none)
    assert "is published already; a part is posted to an account only once" in again.json()["detail"]
    assert "cancel" not in again.json()["detail"].lower()


def test_try_again_on_a_cancelled_scheduled_post_keeps_its_time_unless_posting_now(world, short_clip):
    job = world.job(short_clip)
    at = time.strftime("%Y-%m-%dT09:00:00Z", time.gmtime(world.now() + 86400))
    [publication] = world.publish(job["id"], ["tiktok"], schedule={"mode": "at", "times": [at]})
    twice = world.api.post(f"/jobs/{job['id']}/publications", json={"accounts": [world.accounts["tiktok"]]})
    assert twice.status_code == 409 and "is scheduled already; cancel that post first" in twice.json()["detail"]
    assert world.api.post(f"/publications/{publication['id']}/cancel").json()["state"] == "cancelled"
    retried = world.api.post(f"/publications/{publication['id']}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["state"] == "scheduled"
    assert retried.json()["due_at"] == retried.json()["next_attempt_at"] == publication["due_at"]
    time.sleep(2.5)  # two dispatcher rounds: it is still not due
    waiting = world.publication(publication["id"])
    assert (waiting["state"], waiting["attempts"], waiting["next_attempt_at"]) == ("scheduled", 0, publication["due_at"])

    assert world.api.post(f"/publications/{publication['id']}/cancel").status_code == 200
    now = world.api.post(f"/publications/{publication['id']}/retry", params={"now": "true"})
    assert now.status_code == 202 and now.json()["due_at"] < publication["due_at"] - 3600
    world.wait_state(publication["id"], "published")


def test_refusals_name_every_problem(world, short_clip):
    job = world.job(short_clip)
    answer = world.api.post(f"/jobs/{job['id']}/publications", json={
        "accounts": [world.accounts["instagram"], world.accounts["youtube"], "nope"],
        "privacy": "friends", "parts": [1, 9], "schedule": {"mode": "spread", "start": "tomorrow"},
    })  # fmt: skip
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    problems = answer.json()["problems"]
    assert any("parts [9] do not exist" in p for p in problems)
    assert any("no account 'nope'" in p for p in problems)
    answer = world.api.post(f"/jobs/{job['id']}/publications", json={
        "accounts": [world.accounts["instagram"], world.accounts["youtube"]], "privacy": "friends",
    })  # fmt: skip
    problems = answer.json()["problems"]
    assert any("Instagram Reels are always public" in p for p in problems)
    assert any("YouTube privacy is public, unlisted or private" in p for p in problems)
    bad = world.api.post(f"/jobs/{job['id']}/publications", json={"accounts": "x"})
    assert bad.status_code == 422 and "wrong type" in bad.json()["detail"]
    assert world.api.get(f"/jobs/{job['id']}/publications").json()["publications"] == [], "nothing half-made"


def test_sandbox_mode_publishes_to_the_fakes_inside_the_app(tmp_path, short_clip):
    """No client ids: the app's own /sandbox serves the platforms; connect and publish
    work with no developer accounts, and say sandbox."""
    server = Server(tmp_path / "data", tmp_path / "server.log", VIDPROD_DISPATCH_SECONDS="1").start()
    try:
        overview = server.client.get("/accounts").json()
        assert overview["sandbox"] is True
        assert all(p["configured"] and p["sandbox"] for p in overview["platforms"])
        accounts = []
        for platform in ("tiktok", "instagram", "youtube"):
            url = server.client.post(f"/accounts/{platform}/connect").json()["authorize_url"]
            assert url.startswith(f"{server.url}/sandbox/")
            page = httpx.get(url)
            assert page.status_code == 200 and "Sandbox" in page.text
            back = httpx.get(url + "&approve=1").headers["location"]
            callback = httpx.get(back)
            assert callback.status_code == 200 and "(sandbox)" in callback.text
        for platform in server.client.get("/accounts").json()["platforms"]:
            [account] = platform["accounts"]
            assert account["sandbox"] is True
            accounts.append(account["id"])
        upload = server.upload(short_clip)
        job = server.wait_done(upload.json()["id"])
        created = server.client.post(f"/jobs/{job['id']}/publications", json={"accounts": accounts})
        assert created.status_code == 201, created.text
        for publication in created.json()["publications"]:
            deadline = time.monotonic() + 60
            while server.client.get(f"/publications/{publication['id']}").json()["state"] != "published":
                assert time.monotonic() < deadline, server.log_path.read_text()[-3000:]
                time.sleep(0.2)
        state = (tmp_path / "data" / "sandbox" / "state.json").read_text()
        assert state.count('"sha256"') >= 3, "the sandbox keeps its posts across restarts"
        # issue 21: "View post" led to real tiktok.com / instagram.com / youtube.com
        # addresses where nothing exists; it opens the sandbox's page, playing the file posted
        part = server.client.get(job["segments"][0]["download_url"]).content
        hosts = {"tiktok": "www.tiktok.com/video/", "instagram": "www.instagram.com/reel/", "youtube": "www.youtube.com/shorts/"}
        for publication in server.client.get(f"/jobs/{job['id']}/publications").json()["publications"]:
            link = publication["post_url"]
            assert link.startswith(f"{server.url}/sandbox/{hosts[publication['platform']]}"), link
            page = httpx.get(link)  # a browser: no token
            assert page.status_code == 200 and "Sandbox" in page.text, page.text
            video = re.search(r'<video class="posted"[^>]* src="([^"]+)"', page.text).group(1)
            posted = httpx.get(f"{server.url}{video}")
            assert posted.status_code == 200 and posted.headers["content-type"] == "video/mp4"
            assert posted.content == part
        assert httpx.get(f"{server.url}/sandbox/www.tiktok.com/video/123").status_code == 404
    finally:
        server.stop()


def test_posts_chosen_at_upload_go_out_when_the_parts_are_ready(world, short_clip):
    choice = {"accounts": [world.accounts["tiktok"], world.accounts["youtube"]], "caption": "{title} #{part}",
              "privacy": "public"}  # fmt: skip
    answer = world.server.upload(short_clip, publish=json.dumps(choice))
    assert answer.status_code == 202, answer.text
    assert answer.json()["options"]["publish"]["accounts"] == choice["accounts"]
    job_id = answer.json()["id"]
    published = world.wait(
        lambda: (ps := world.api.get(f"/jobs/{job_id}/publications").json()["publications"])
        and all(p["state"] == "published" for p in ps) and ps,
        what="the posts chosen at upload",
    )  # fmt: skip
    assert sorted(p["platform"] for p in published) == ["tiktok", "youtube"]
    assert {p["caption"] for p in published} == {"short #1"}
    assert world.event_types(job_id).count("publication.scheduled") == 2


def test_the_videos_page_shows_a_thumbnail_the_title_typed_at_upload_and_how_the_posts_stand(world, short_clip):
    """Issue 21: /videos had no thumbnails, no post status and only the file's name."""
    choice = {"accounts": [world.accounts["tiktok"]], "title": "Three tips for mornings"}
    job_id = world.server.upload(short_clip, publish=json.dumps(choice)).json()["id"]
    [post] = world.wait(lambda: world.api.get(f"/jobs/{job_id}/publications").json()["publications"], what="the post")
    world.wait_state(post["id"], "published")
    page = world.api.get("/videos")
    assert page.status_code == 200
    row = page.text.split('class="job-item"')[1].split("</li>")[0]
    assert f'href="/videos/{job_id}"' in row
    assert "Three tips for mornings" in row and "short.mp4" in row  # the title, and the file it came from
    thumbnail = re.search(r'<img class="job-thumb" src="([^"]+)"', row).group(1)
    assert thumbnail == f"/jobs/{job_id}/segments/0/thumbnail"
    image = world.api.get(thumbnail)
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    assert "1 part" in row and "1 published" in row
    assert '<h1 class="video-title">Three tips for mornings</h1>' in world.api.get(f"/videos/{job_id}").text


def test_posts_chosen_at_upload_that_a_platform_refuses_are_told_not_lost(world, short_clip):
    choice = {"accounts": [world.accounts["instagram"]], "privacy": "friends"}  # Reels are public only
    answer = world.server.upload(short_clip, publish=json.dumps(choice))
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    world.server.wait_done(job_id)
    world.wait(lambda: "publication.refused" in world.event_types(job_id), what="the refusal")
    with sqlite3.connect(f"file:{world.server.data_dir / 'vidprod.db'}?mode=ro", uri=True) as conn:
        [(data,)] = conn.execute(
            "SELECT data FROM events WHERE job_id = ? AND type = 'publication.refused'", (job_id,)
        ).fetchall()
    assert "public" in data and "instagram" in data.lower()
    assert world.api.get(f"/jobs/{job_id}/publications").json()["publications"] == []
    # the parts are still there to post by hand
    assert world.api.post(f"/jobs/{job_id}/publications", json={**choice, "privacy": "public"}).status_code == 201


def test_each_posts_own_words_and_cover_reach_each_platform(world, long_clip):
    """Issue 21: caption, title, hashtags and cover per part and platform, edited after
    scheduling, are what each platform receives; the cover as each one takes it."""
    job = world.job(long_clip)
    tomorrow = time.strftime("%Y-%m-%dT09:00:00Z", time.gmtime(world.now() + 86400))
    posts = world.publish(job["id"], ["tiktok", "instagram", "youtube"], parts=[2], title="Rice",
                          caption="{title} {part}/{parts}", hashtags=["#cooking", "cooking", " "],
                          schedule={"mode": "at", "times": [tomorrow]})  # fmt: skip
    assert {p["hashtags"] == ["cooking"] and p["caption"] == "Rice 2/3" for p in posts} == {True}, posts
    covers = world.api.get(f"/jobs/{job['id']}/segments/1/covers").json()["covers"]
    assert len(covers) == 5 and covers == sorted(covers, key=lambda c: c["ms"])
    assert 0 < covers[0]["ms"] and covers[-1]["ms"] < job["segments"][1]["duration_seconds"] * 1000
    cover = covers[3]
    picture = world.api.get(cover["url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
    assert picture.content[:2] == b"\xff\xd8" and picture.content != world.api.get(covers[0]["url"]).content
    by = {p["platform"]: p["id"] for p in posts}
    sent = {op: world.fake.seen(op) for op in ("tiktok.init", "instagram.create", "youtube.insert")}
    changes = {
        "tiktok": {"caption": "Rice, the easy way", "hashtags": ["fyp", "#rice"], "cover_ms": cover["ms"]},
        "instagram": {"caption": "Reels words", "hashtags": [], "cover_ms": cover["ms"]},
        "youtube": {"title": "Rice in 60 s", "caption": "Step two.", "hashtags": ["shorts"], "cover_ms": cover["ms"]},
    }
    for platform, body in changes.items():
        answer = world.api.patch(f"/publications/{by[platform]}", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["options"]["cover_ms"] == cover["ms"] and answer.json()["state"] == "scheduled"
    length = int(job["segments"][1]["duration_seconds"] * 1000)
    for bad, words in (({"cover_ms": length}, "cover"), ({"title": " "}, "title"), ({"colour": 1}, "Unknown"),
                       ({"due_at": "2020-01-01T00:00:00Z"}, "passed"), ({"due_at": "tomorrow"}, "ISO 8601")):  # fmt: skip
        answer = world.api.patch(f"/publications/{by['youtube']}", json=bad)
        assert answer.status_code == 422 and words in answer.text, (bad, answer.text)
    assert {op: world.fake.seen(op) for op in sent} == sent, "changing a post sends nothing"

    for platform in changes:
        answer = world.api.patch(f"/publications/{by[platform]}", json={"due_at": "now"})
        assert answer.status_code == 200, answer.text
    done = {platform: world.wait_state(by[platform], "published") for platform in changes}

    init = world.fake.requests("tiktok.init")[-1]["post_info"]
    assert init["title"] == "Rice, the easy way #fyp #rice" and init["video_cover_timestamp_ms"] == cover["ms"]
    [tiktok] = [p for p in world.fake.posts("tiktok") if p["id"] == done["tiktok"]["post_id"]]
    assert tiktok["settings"]["video_cover_timestamp_ms"] == cover["ms"]
    created = world.fake.requests("instagram.create")[-1]
    assert created["caption"] == "Reels words" and created["thumb_offset"] == str(cover["ms"])
    insert = world.fake.requests("youtube.insert")[-1]["body"]["snippet"]
    assert (insert["title"], insert["description"], insert["tags"]) == ("Rice in 60 s", "Step two. #shorts", ["shorts"])
    [youtube] = [p for p in world.fake.posts("youtube") if p["id"] == done["youtube"]["post_id"]]
    assert youtube["thumbnail"]["sha256"] == hashlib.sha256(picture.content).hexdigest(), "the chosen frame itself"
    assert youtube["thumbnail"]["height"] > youtube["thumbnail"]["width"], "a vertical frame"
    assert done["youtube"]["remote"]["thumbnail"] == "set"
    late = world.api.patch(f"/publications/{by['tiktok']}", json={"caption": "too late"})
    assert late.status_code == 409 and "published" in late.text


def test_a_channel_without_custom_thumbnails_still_gets_its_video(world, short_clip):
    job = world.job(short_clip)
    world.fake.rules.youtube_custom_thumbnails = False
    try:
        [post] = world.publish(job["id"], ["youtube"], options={"cover_ms": 500})
        done = world.wait_state(post["id"], "published")
    finally:
        world.fake.rules.youtube_custom_thumbnails = True
    assert done["remote"]["thumbnail"].startswith("forbidden:"), done["remote"]
    assert world.fake.requests("youtube.thumbnails")[-1]["query"]["videoId"] == done["post_id"]
    [youtube] = [p for p in world.fake.posts("youtube") if p["id"] == done["post_id"]]
    assert "thumbnail" not in youtube


def test_a_cover_past_the_end_is_refused_before_anything_is_sent(world, short_clip):
    job = world.job(short_clip)
    inits = world.fake.seen("tiktok.init")
    length = int(job["segments"][0]["duration_seconds"] * 1000)
    answer = world.api.post(f"/jobs/{job['id']}/publications",
                            json={"accounts": [world.accounts["tiktok"]], "options": {"cover_ms": length + 5}})  # fmt: skip
    assert answer.status_code == 422 and "cover" in answer.json()["problems"][0], answer.text
    assert world.fake.seen("tiktok.init") == inits


def test_a_part_length_a_chosen_platform_cannot_take_is_refused_at_upload(world, short_clip):
    """Per-platform length targets (issue 21): Shorts take 3 min, so parts of up to 5 min
    chosen for YouTube are refused before the file is kept; TikTok takes this one."""
    for platform, seconds, refused in (("youtube", "300", True), ("youtube", "180", False), ("tiktok", "300", False)):
        choice = {"accounts": [world.accounts[platform]]}
        answer = world.server.upload(short_clip, publish=json.dumps(choice), segment_seconds=seconds)
        if refused:
            assert answer.status_code == 422, answer.text
            assert any("too long for youtube" in p and "180 s at most; choose 180 s or less" in p
                       for p in answer.json()["problems"]), answer.text  # fmt: skip
        else:
            assert answer.status_code == 202, answer.text


def test_youtube_gets_the_parts_subtitles_as_its_caption_track(world, tmp_path):
    import numpy as np
    import srt

    from tests.clips import AUDIO_RATE, make_clip, spoken

    voice = spoken("Captions help people follow what the speaker says. Today we cook rice.", tmp_path)
    clip = make_clip(tmp_path / "spoken.mp4", seconds=len(voice) / AUDIO_RATE + 0.5, size=(360, 640),
                     voice=np.asarray(voice))  # fmt: skip
    plain = world.job(clip)  # no captions: nothing to send as a track
    refused = world.api.post(f"/jobs/{plain['id']}/publications",
                             json={"accounts": [world.accounts["youtube"]], "options": {"captions": True}})  # fmt: skip
    assert refused.status_code == 422 and "upload the video with captions on" in refused.text

    answer = world.server.upload(clip, captions="on")
    job = world.server.wait_done(answer.json()["id"], timeout=300)
    assert job["state"] == "done", job["error"]
    # with a chosen cover too: the upload, then thumbnails.set, then captions.insert
    # (the fake is the module's: count only this post's requests)
    thumbnails_before = len(world.fake.requests("youtube.thumbnails"))
    captions_before = len(world.fake.requests("youtube.captions"))
    [publication] = world.publish(job["id"], ["youtube"], options={"captions": True, "cover_ms": 1000})
    done = world.wait_state(publication["id"], "published", timeout=120)
    assert done["remote"]["thumbnail"] == "set" and done["remote"]["caption_id"], done["remote"]
    assert len(world.fake.requests("youtube.thumbnails")) == thumbnails_before + 1
    with world.fake.lock:
        tracks = [c for c in world.fake.data["youtube"]["captions"].values() if c["videoId"] == done["post_id"]]
    assert len(tracks) == 1 and tracks[0]["language"] == "en" and tracks[0]["name"] == "English"
    sent = list(srt.parse(world.api.get(job["segments"][0]["srt_url"]).text))
    assert [(c["start"], c["end"], c["text"]) for c in tracks[0]["cues"]] == [
        (c.start.total_seconds(), c.end.total_seconds(), c.content) for c in sent
    ] != []
    [request] = world.fake.requests("youtube.captions")[captions_before:]
    assert request["query"]["uploadType"] == "multipart" and request["query"]["part"] == "snippet"
