"""The pure rules of publishing: schedules, captions, backoff, caps, token sealing and
how each platform's error answers are classified."""

from __future__ import annotations

import json
import random
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from cryptography.fernet import Fernet

from vidprod.config import ConfigError, Settings
from vidprod.publish import instagram, tiktok, youtube
from vidprod.publish.base import Tokens
from vidprod.publish.limits import rolling_cap_frees_at
from vidprod.publish.schedule import (
    ScheduleError,
    backoff_seconds,
    due_times,
    render_template,
    with_hashtags,
)
from vidprod.vault import Vault, VaultError

BERLIN = ZoneInfo("Europe/Berlin")


def test_caption_templates():
    assert render_template("{title} ({part}/{parts}) #shorts", title="My trip", part=2, parts=5) == "My trip (2/5) #shorts"
    assert render_template("{{braces}} {title}", title="x", part=1, parts=1) == "{braces} x"
    with pytest.raises(ScheduleError, match=r"\{author\}"):
        render_template("{title} by {author}", title="x", part=1, parts=1)
    with pytest.raises(ScheduleError, match="malformed"):
        render_template("{title", title="x", part=1, parts=1)


def test_hashtags_are_added_once():
    assert with_hashtags("My trip #Shorts", ["shorts", "#travel", "travel", " "]) == "My trip #Shorts #travel"


def test_spread_keeps_local_time_across_daylight_saving():
    # Europe/Berlin leaves summer time on 2026-10-25: 18:00 stays 18:00 local.
    times = due_times({"mode": "spread", "start": "2026-10-24T18:00", "timezone": "Europe/Berlin",
                       "every_hours": 24}, 3, now=0)  # fmt: skip
    local = [datetime.fromtimestamp(t, BERLIN) for t in times]
    assert [(d.day, d.hour, d.minute) for d in local] == [(24, 18, 0), (25, 18, 0), (26, 18, 0)]
    assert times[1] - times[0] == 25 * 3600, "the day with the extra hour is 25 h long"


def test_spread_start_in_a_skipped_hour_moves_forward():
    # 2026-03-29 02:30 does not exist in Berlin: it lands an hour later, like a clock.
    [when] = due_times({"mode": "spread", "start": "2026-03-29T02:30", "timezone": "Europe/Berlin"}, 1, now=0)
    assert datetime.fromtimestamp(when, BERLIN).strftime("%H:%M") == "03:30"


def test_schedule_modes_and_their_errors():
    assert due_times({"mode": "now"}, 2, now=123.0) == [123.0, 123.0]
    at = due_times({"mode": "at", "times": ["2026-11-23T18:00:00+01:00", "2026-11-24T17:00:00Z"]}, 2, now=0)
    assert at == [datetime(2026, 11, 23, 17, tzinfo=ZoneInfo("UTC")).timestamp(),
                  datetime(2026, 11, 24, 17, tzinfo=ZoneInfo("UTC")).timestamp()]  # fmt: skip
    with pytest.raises(ScheduleError, match="one ISO 8601 time for each of the 2"):
        due_times({"mode": "at", "times": ["2026-11-23T18:00:00Z"]}, 2, now=0)
    with pytest.raises(ScheduleError, match="UTC offset"):
        due_times({"mode": "at", "times": ["2026-11-23T18:00"]}, 1, now=0)
    with pytest.raises(ScheduleError, match="unknown time zone"):
        due_times({"mode": "spread", "start": "2026-11-23T18:00", "timezone": "Mars/Base"}, 1, now=0)
    with pytest.raises(ScheduleError, match="every_hours"):
        due_times({"mode": "spread", "start": "2026-11-23T18:00", "every_hours": 0}, 1, now=0)
    with pytest.raises(ScheduleError, match="mode"):
        due_times({"mode": "weekly"}, 1, now=0)


def test_backoff_is_full_jitter_under_a_growing_ceiling_and_honours_retry_after():
    rng = random.Random(7)
    first = [backoff_seconds(1, None, rng) for _ in range(500)]
    third = [backoff_seconds(3, None, rng) for _ in range(500)]
    assert 0 <= min(first) < 3 and 25 < max(first) <= 30, "uniform over [0, 30 s]"
    assert max(third) <= 120 and max(third) > 100
    assert min(backoff_seconds(1, 90.0, rng) for _ in range(100)) >= 90.0
    assert max(backoff_seconds(30, None, rng) for _ in range(200)) <= 3600


def test_rolling_cap():
    now = 100_000.0
    assert rolling_cap_frees_at([now - 10, now - 20], cap=3, now=now) is None
    times = [now - 86_000, now - 500, now - 10]
    assert rolling_cap_frees_at(times, cap=3, now=now) == now - 86_000 + 86_400
    assert rolling_cap_frees_at([now - 90_000, *times[1:]], cap=3, now=now) is None, "older than 24 h"


def test_vault_seals_rotates_and_refuses_the_wrong_key(tmp_path):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = Vault([old]).seal({"access_token": "secret-abc"})
    assert "secret-abc" not in sealed
    assert Vault([new, old]).open(sealed) == {"access_token": "secret-abc"}, "rotation keeps old tokens readable"
    with pytest.raises(VaultError, match="reconnect"):
        Vault([new]).open(sealed)
    with pytest.raises(ConfigError, match="Fernet"):
        Vault(["not a key"])
    settings = Settings(data_dir=tmp_path)
    first = Vault.from_settings(settings).seal({"a": 1})
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert Vault.from_settings(settings).open(first) == {"a": 1}, "the generated key is kept"


def test_tokens_keep_the_newest_refresh_token():
    first = Tokens.from_oauth({"access_token": "a1", "refresh_token": "r1", "expires_in": 60}, now=1000)
    assert first.expires_at == 1060 and first.refresh_token == "r1"
    rotated = Tokens.from_oauth({"access_token": "a2", "refresh_token": "r2", "expires_in": 60}, 2000, first)
    assert rotated.refresh_token == "r2", "TikTok rotates: the new one replaces the old"
    kept = Tokens.from_oauth({"access_token": "a3", "expires_in": 3600}, 3000, rotated)
    assert kept.refresh_token == "r2", "Google sends none on refresh: keep the one we have"


def test_parts_shorter_than_a_platform_takes_are_refused_in_words(tmp_path):
    """Issue 21: a 0.1 s part was "Ready" to post. TikTok and Reels take 3 s or more."""
    from vidprod.publish.base import Upload

    settings = Settings(data_dir=tmp_path)

    def upload(seconds: float) -> Upload:
        return Upload("pub_1", tmp_path / "p.mp4", 1000, seconds, "t", "c", "public", {}, {})

    clients = {"tiktok": tiktok.TikTok(settings, "id", "secret"), "instagram": instagram.Instagram(settings, "id", "secret")}
    assert "a TikTok video lasts at least 3 s; the part is 0.1 s" in clients["tiktok"].problems(upload(0.1), {})
    assert "a Reel lasts 3 s to 15 min; the part is 0.1 s" in clients["instagram"].problems(upload(0.1), {})
    for client in clients.values():
        assert client.shortest == 3.0 and client.problems(upload(3.0), {}) == []
    assert youtube.YouTube(settings, "id", "secret").shortest == 0.0  # Google states no minimum


def test_tiktok_chunk_plan():
    mib = 1024 * 1024
    assert tiktok.chunk_plan(3 * mib, 10 * mib) == (3 * mib, 1)
    assert tiktok.chunk_plan(25 * mib, 10 * mib) == (10 * mib, 2), "the last chunk takes the remainder"
    assert tiktok.chunk_plan(10 * mib, 10 * mib) == (10 * mib, 1)


def test_tiktok_chunks_are_held_to_5_to_64_mib_whatever_the_setting():
    """Issue 20 finding 12: VIDPROD_PUBLISH_CHUNK_BYTES (shared with YouTube) went to
    TikTok unchecked."""
    mib = 1024 * 1024
    assert tiktok.chunk_plan(100 * mib, 1 * mib) == (5 * mib, 20)
    assert tiktok.chunk_plan(1024 * mib, 256 * mib) == (64 * mib, 16)
    assert tiktok.chunk_plan(6 * mib, 1 * mib) == (5 * mib, 1), "the last chunk takes the remainder"
    assert tiktok.chunk_plan(3 * mib, 1 * mib) == (3 * mib, 1), "under 5 MiB: one chunk"
    for size in (5 * mib, 77 * mib + 3, 4000 * mib):
        chunk, count = tiktok.chunk_plan(size, 256 * 1024)
        assert 5 * mib <= chunk <= 64 * mib and size - chunk * (count - 1) <= 128 * mib
    small = tiktok.TikTok(Settings(publish_chunk_bytes=256 * 1024), "k", "s")
    assert small.chunk_bounds() == (5 * mib, 64 * mib)
    against_fakes = tiktok.TikTok(
        Settings(publish_chunk_bytes=256 * 1024, platform_base_url="http://127.0.0.1:9", platforms="live",
                 tiktok_client_key="k", tiktok_client_secret="s"), "k", "s",
    )  # fmt: skip
    assert tiktok.chunk_plan(3 * mib, 256 * 1024, against_fakes.chunk_bounds()) == (256 * 1024, 12)


def answer(status: int, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers=headers or {})


def tiktok_error(status: int, code: str, headers: dict | None = None) -> httpx.Response:
    return answer(status, {"data": {}, "error": {"code": code, "message": code, "log_id": "L1"}}, headers)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "access_token_invalid", "refresh"),
        (401, "scope_not_authorized", "reconnect"),
        (403, "spam_risk_too_many_posts", "cap"),
        (403, "spam_risk_too_many_pending_share", "cap"),
        (429, "rate_limit_exceeded", "cap"),
        (500, "internal_error", "retry"),
        (400, "privacy_level_option_mismatch", "permanent"),
        (400, "invalid_params", "permanent"),
    ],
)
def test_tiktok_errors_are_classified(status, code, kind):
    failure = tiktok._failure(tiktok_error(status, code, {"Retry-After": "42"}))
    assert (failure.kind, failure.code, failure.trace_id) == (kind, code, "L1")
    if code == "rate_limit_exceeded":
        assert failure.retry_after == 42


def graph_error(status: int, code: int, subcode: int | None = None, **extra) -> httpx.Response:
    error = {"message": "m", "type": "OAuthException", "code": code, "fbtrace_id": "T1", **extra}
    if subcode:
        error["error_subcode"] = subcode
    return answer(status, {"error": error})


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (graph_error(400, 190), "refresh"),
        (graph_error(400, 9, 2207042), "cap"),
        (graph_error(400, 4), "cap"),
        (graph_error(400, 80002), "cap"),
        (graph_error(400, 9007, 2207027), "retry"),
        (graph_error(400, 2207051 // 1000, 2207051), "permanent"),  # spam: never retried
        (graph_error(400, 1, 2207020), "retry"),
        (graph_error(500, 2, is_transient=True), "retry"),
        (graph_error(400, 100), "permanent"),
        # rupload.facebook.com's shape (issue 20 finding 4: a 401 there was permanent)
        (answer(401, {"debug_info": {"type": "AuthError", "message": "Invalid OAuth access token"}}), "refresh"),
        (answer(400, {"debug_info": {"type": "OAuthException", "message": "expired"}}), "refresh"),
        (answer(429, {"debug_info": {"type": "RateLimit", "message": "slow"}}), "cap"),
        (answer(503, {"debug_info": {"type": "InternalServerError", "message": "x"}}), "retry"),
        (answer(400, {"debug_info": {"type": "ProcessingFailedError", "message": "bad", "retriable": True}}), "retry"),
        (answer(400, {"debug_info": {"type": "ProcessingFailedError", "message": "complete or expired"}}), "permanent"),
    ],
)
def test_instagram_errors_are_classified(response, kind):
    assert instagram._failure(response).kind == kind


def test_instagram_usage_near_the_limit_blocks_the_account():
    class FakeSession:
        block_until = None

        @staticmethod
        def clock() -> float:
            return 1000.0

    session = FakeSession()
    instagram._note_usage(session, httpx.Response(200, headers={"X-App-Usage": '{"call_count": 50}'}))
    assert session.block_until is None
    instagram._note_usage(session, httpx.Response(200, headers={"X-App-Usage": '{"call_count": 93}'}))
    assert session.block_until == 1600.0
    usage = {"123": [{"type": "instagram", "call_count": 10, "estimated_time_to_regain_access": 30}]}
    instagram._note_usage(session, httpx.Response(200, headers={"X-Business-Use-Case-Usage": json.dumps(usage)}))
    assert session.block_until == 1000.0 + 1800


@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [
        (401, "authError", "refresh"),
        (403, "quotaExceeded", "cap"),
        (400, "uploadLimitExceeded", "cap"),
        (403, "rateLimitExceeded", "cap"),
        (403, "userRateLimitExceeded", "cap"),
        (503, "backendError", "retry"),
        (400, "invalidTitle", "permanent"),
    ],
)
def test_youtube_errors_are_classified(status, reason, kind):
    from googleapiclient.errors import HttpError
    from httplib2 import Response

    body = {"error": {"code": status, "message": "m", "errors": [{"reason": reason, "domain": "youtube"}]}}
    failure = youtube._failure(HttpError(Response({"status": status}), json.dumps(body).encode()), now=0.0)
    assert (failure.kind, failure.code) == (kind, reason)


def test_youtube_429_is_a_throttle_that_honours_retry_after():
    """Issue 20 finding 12: a fixed 60 s and an attempt spent on every 429."""
    from googleapiclient.errors import HttpError
    from httplib2 import Response

    body = json.dumps({"error": {"code": 429, "message": "slow down", "errors": [{"reason": "rateLimitExceeded"}]}})
    told = youtube._failure(HttpError(Response({"status": 429, "retry-after": "240"}), body.encode()), now=0.0)
    assert (told.kind, told.retry_after) == ("cap", 240.0), "a cap gives the attempt back and blocks the account"
    unsaid = youtube._failure(HttpError(Response({"status": 429}), b"{}"), now=0.0)
    assert (unsaid.kind, unsaid.code, unsaid.retry_after) == ("cap", "http_429", 60.0)


def test_youtube_quota_waits_for_midnight_pacific():
    now = datetime(2026, 11, 21, 23, 0, tzinfo=ZoneInfo("America/Los_Angeles")).timestamp()
    assert youtube.seconds_to_pacific_midnight(now) == 65 * 60
