"""The fake platforms (vidprod.sandbox) over real HTTP: OAuth flows, the upload rules
each platform enforces, quotas, token expiry, and the fault handles tests use."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import threading
import time
from http.client import IncompleteRead
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import googleapiclient
import httpx
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaFileUpload, build_http
from litestar import Litestar, get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.testing import TestClient

from tests.clips import make_clip
from tests.fakes import running_fake
from vidprod.sandbox import FakePlatforms, Rules, issue_tokens, sandbox_router
from vidprod.sandbox.mp4 import top_level_boxes
from vidprod.sandbox.state import ACCOUNTS, KiB

IG = "/graph.instagram.com/v23.0"
IG_USER = ACCOUNTS["instagram"]["id"]
YT_DOC = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "youtube.v3.json"
REDIRECT = "http://127.0.0.1:9/callback"


class Clock:
    """A clock tests move forward by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(tmp_path: Path, clock: Clock) -> FakePlatforms:
    # TikTok chunks scaled down 80x (64 KiB..128 KiB, last up to 256 KiB); the rest as real.
    rules = Rules(tiktok_min_chunk=64 * KiB, tiktok_max_chunk=128 * KiB, tiktok_max_last_chunk=256 * KiB)
    return FakePlatforms(clock=clock, rules=rules, upload_dir=tmp_path / "uploads")


@pytest.fixture
def base(fake: FakePlatforms):
    with running_fake(fake) as url:
        yield url


@pytest.fixture
def http(base: str):
    with httpx.Client(base_url=base, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """3 s 64x64 H.264 clips (TikTok and Reels take 3 s or more): `good` has moov before
    mdat (faststart), `bad` after."""
    folder = tmp_path_factory.mktemp("sandbox-clips")
    good = make_clip(folder / "good.mp4", seconds=3, size=(64, 64), fps=24, audio=False, faststart=True)
    bad = make_clip(folder / "bad.mp4", seconds=3, size=(64, 64), fps=24, audio=False, faststart=False)
    order = {name: [kind for kind, _, _ in top_level_boxes(path)] for name, path in (("good", good), ("bad", bad))}
    assert order["good"].index("moov") < order["good"].index("mdat")
    assert order["bad"].index("mdat") < order["bad"].index("moov")
    return {"good": good, "bad": bad}


def padded(clip: Path, size: int) -> bytes:
    """The clip with a `free` box appended: still a valid MP4, exactly `size` bytes."""
    data = clip.read_bytes()
    pad = size - len(data)
    assert pad >= 8
    return data + struct.pack(">I4s", pad, b"free") + bytes(pad - 8)


def approve(http: httpx.Client, path: str, params: dict[str, str]) -> dict[str, str]:
    """Click Allow on a consent page: the query of the redirect back to the app."""
    answer = http.get(path, params={**params, "approve": "1"})
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location.split("#")[0]).query).items()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- OAuth ----------------------------------------------------------------------------


def test_tiktok_oauth_code_is_single_use_and_refresh_rotates(clock: Clock, http: httpx.Client) -> None:
    params = {
        "client_key": "sandbox-tiktok",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "user.info.basic,video.publish",
        "state": "xyz",
    }
    page = http.get("/www.tiktok.com/v2/auth/authorize/", params=params)
    assert page.status_code == 200 and "Sandbox" in page.text and "Allow" in page.text
    assert "sandbox-tiktok" in page.text and "video.publish" in page.text
    assert "<script" not in page.text and "<style" not in page.text and " style=" not in page.text
    assert 'name="approve" value="1"' in page.text and 'action="/www.tiktok.com/v2/auth/authorize/"' in page.text

    answer = approve(http, "/www.tiktok.com/v2/auth/authorize/", params)
    assert answer["state"] == "xyz"
    form = {
        "client_key": "sandbox-tiktok",
        "client_secret": "sandbox-secret",
        "code": answer["code"],
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
    }
    tokens = http.post("/open.tiktokapis.com/v2/oauth/token/", data=form).json()
    assert tokens["open_id"] == ACCOUNTS["tiktok"]["id"] and tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "user.info.basic,video.publish" and tokens["expires_in"] == 86400

    reused = http.post("/open.tiktokapis.com/v2/oauth/token/", data=form)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    late = approve(http, "/www.tiktok.com/v2/auth/authorize/", params)["code"]
    clock.advance(601)  # codes live 10 minutes
    expired = http.post("/open.tiktokapis.com/v2/oauth/token/", data=form | {"code": late})
    assert expired.status_code == 400 and "expired" in expired.json()["error_description"]

    me = http.get(
        "/open.tiktokapis.com/v2/user/info/",
        params={"fields": "open_id,display_name"},
        headers=bearer(tokens["access_token"]),
    )
    assert me.json() == {
        "data": {"user": {"open_id": ACCOUNTS["tiktok"]["id"], "display_name": "Sandbox TikTok creator"}},
        "error": {"code": "ok", "message": "", "log_id": me.json()["error"]["log_id"]},
    }

    refresh = {k: form[k] for k in ("client_key", "client_secret")} | {"grant_type": "refresh_token"}
    rotated = http.post(
        "/open.tiktokapis.com/v2/oauth/token/", data=refresh | {"refresh_token": tokens["refresh_token"]}
    )
    assert rotated.status_code == 200 and rotated.json()["refresh_token"] != tokens["refresh_token"]
    old = http.post("/open.tiktokapis.com/v2/oauth/token/", data=refresh | {"refresh_token": tokens["refresh_token"]})
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"
    again = http.post(
        "/open.tiktokapis.com/v2/oauth/token/", data=refresh | {"refresh_token": rotated.json()["refresh_token"]}
    )
    assert again.status_code == 200


def test_instagram_oauth_short_then_long_lived_then_refresh(
    fake: FakePlatforms, clock: Clock, http: httpx.Client
) -> None:
    params = {
        "client_id": "sandbox-instagram",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "instagram_business_basic,instagram_business_content_publish",
        "state": "s",
    }
    redirect = http.get("/www.instagram.com/oauth/authorize", params={**params, "approve": "1"}).headers["location"]
    assert redirect.endswith("#_")  # as Instagram does
    code = approve(http, "/www.instagram.com/oauth/authorize", params)["code"]
    form = {
        "client_id": "sandbox-instagram",
        "client_secret": "sandbox-secret",
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
        "code": code,
    }
    short = http.post("/api.instagram.com/oauth/access_token", data=form)
    assert short.status_code == 200 and short.json()["user_id"] == int(IG_USER)
    reused = http.post("/api.instagram.com/oauth/access_token", data=form)
    assert reused.status_code == 400 and reused.json()["error_type"] == "OAuthException"

    long = http.get(
        "/graph.instagram.com/access_token",
        params={
            "grant_type": "ig_exchange_token",
            "client_secret": "sandbox-secret",
            "access_token": short.json()["access_token"],
        },
    ).json()
    assert long["token_type"] == "bearer" and long["expires_in"] == 60 * 86400
    me = http.get(f"{IG}/me", params={"fields": "user_id,username"}, headers=bearer(long["access_token"]))
    assert me.json() == {"user_id": IG_USER, "username": "sandbox_creator"}
    assert "X-App-Usage" in me.headers

    refresh = {"grant_type": "ig_refresh_token", "access_token": long["access_token"]}
    too_young = http.get("/graph.instagram.com/refresh_access_token", params=refresh)
    assert too_young.status_code == 400 and too_young.json()["error"]["type"] == "OAuthException"
    clock.advance(2 * 86400)
    renewed = http.get("/graph.instagram.com/refresh_access_token", params=refresh)
    assert renewed.status_code == 200 and renewed.json()["expires_in"] == 60 * 86400


def test_google_oauth_pkce_offline_and_refresh_keeps_the_token(http: httpx.Client) -> None:
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "client_id": "sandbox-youtube.apps.googleusercontent.com",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "https://www.googleapis.com/auth/youtube.upload https://www.googleapis.com/auth/youtube.readonly",
        "state": "st",
        "access_type": "offline",
        "prompt": "consent",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    form = {
        "client_id": params["client_id"],
        "client_secret": "sandbox-secret",
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
    }
    wrong = http.post(
        "/oauth2.googleapis.com/token",
        data=form
        | {"code": approve(http, "/accounts.google.com/o/oauth2/v2/auth", params)["code"], "code_verifier": "x" * 64},
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    code = approve(http, "/accounts.google.com/o/oauth2/v2/auth", params)["code"]
    tokens = http.post("/oauth2.googleapis.com/token", data=form | {"code": code, "code_verifier": verifier}).json()
    assert tokens["refresh_token"] and tokens["expires_in"] == 3600 and tokens["token_type"] == "Bearer"
    reused = http.post("/oauth2.googleapis.com/token", data=form | {"code": code, "code_verifier": verifier})
    assert reused.json()["error"] == "invalid_grant"

    # client_secret_basic works too; the refresh token stays the same and keeps working.
    for _ in range(2):
        refreshed = http.post(
            "/oauth2.googleapis.com/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=(params["client_id"], "sandbox-secret"),
        )
        assert refreshed.status_code == 200 and "refresh_token" not in refreshed.json()


@pytest.mark.parametrize(
    "path, params",
    [
        ("/www.tiktok.com/v2/auth/authorize/", {"client_key": "someone-else", "scope": "video.publish"}),
        ("/www.instagram.com/oauth/authorize", {"client_id": "someone-else", "scope": "instagram_business_basic"}),
        ("/accounts.google.com/o/oauth2/v2/auth", {"client_id": "someone-else", "scope": "openid"}),
    ],
)
def test_consent_pages_refuse_unknown_clients(http: httpx.Client, path: str, params: dict[str, str]) -> None:
    answer = http.get(path, params={**params, "redirect_uri": REDIRECT, "response_type": "code", "approve": "1"})
    assert (
        answer.status_code == 400
        and "Unknown" in answer.text
        and answer.headers["content-type"].startswith("text/html")
    )


def test_consent_page_checks_redirect_uri_and_response_type(http: httpx.Client) -> None:
    params = {
        "client_key": "sandbox-tiktok",
        "scope": "video.publish",
        "redirect_uri": REDIRECT,
        "response_type": "code",
    }
    assert http.get("/www.tiktok.com/v2/auth/authorize/", params=params | {"response_type": "token"}).status_code == 400
    assert (
        http.get(
            "/www.tiktok.com/v2/auth/authorize/", params={k: v for k, v in params.items() if k != "redirect_uri"}
        ).status_code
        == 400
    )
    denied = http.get("/www.tiktok.com/v2/auth/authorize/", params=params | {"approve": "0", "state": "q"})
    assert "error=access_denied" in denied.headers["location"] and "state=q" in denied.headers["location"]


# ---- TikTok -------------------------------------------------------------------------------


def tiktok_init(
    http: httpx.Client, token: str, size: int, chunk: int, count: int, privacy: str = "SELF_ONLY", prefix: str = "",
    cover_ms: int = 0,
) -> httpx.Response:
    body = {
        "post_info": {
            "title": "Sandbox #test",
            "privacy_level": privacy,
            "disable_duet": False,
            "disable_comment": False,
            "disable_stitch": False,
            "video_cover_timestamp_ms": cover_ms,
            "brand_content_toggle": False,
            "brand_organic_toggle": False,
            "is_aigc": False,
        },
        "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk, "total_chunk_count": count},
    }
    return http.post(f"{prefix}/open.tiktokapis.com/v2/post/publish/video/init/", json=body, headers=bearer(token))


def put_chunk(url: str, data: bytes, first: int, total: int, **headers: str) -> httpx.Response:
    sent = {"Content-Type": "video/mp4", "Content-Range": f"bytes {first}-{first + len(data) - 1}/{total}", **headers}
    return httpx.put(url, content=data, headers=sent, timeout=10)


def tiktok_status(http: httpx.Client, token: str, publish_id: str) -> dict[str, Any]:
    answer = http.post(
        "/open.tiktokapis.com/v2/post/publish/status/fetch/", json={"publish_id": publish_id}, headers=bearer(token)
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def test_tiktok_refuses_chunk_plans_that_break_the_rules(fake: FakePlatforms, http: httpx.Client) -> None:
    token = issue_tokens(fake, "tiktok")["access_token"]
    size = 300 * KiB
    cases = [
        (size, 32 * KiB, 9),  # chunk under the minimum
        (size, 200 * KiB, 1),  # chunk over the maximum
        (size, 64 * KiB, 5),  # total_chunk_count is floor(300/64) = 4
        (40 * KiB, 20 * KiB, 2),  # a video under the minimum goes whole
        (size, 64 * KiB, 0),
    ]
    for video_size, chunk, count in cases:
        answer = tiktok_init(http, token, video_size, chunk, count)
        assert answer.status_code == 400, (video_size, chunk, count)
        assert answer.json()["error"]["code"] == "invalid_params" and answer.json()["data"] == {}
    assert tiktok_init(http, token, 40 * KiB, 40 * KiB, 1).status_code == 200


def test_tiktok_refuses_chunks_out_of_order_or_mislabelled(fake: FakePlatforms, http: httpx.Client) -> None:
    token = issue_tokens(fake, "tiktok")["access_token"]
    size, chunk = 200 * KiB, 64 * KiB  # three chunks: 64, 64, 72 KiB
    data = os.urandom(size)
    url = tiktok_init(http, token, size, chunk, 3).json()["data"]["upload_url"]
    assert url.startswith(f"{http.base_url}".rstrip("/") + "/open-upload.tiktokapis.com/")

    def refused(answer: httpx.Response) -> str:
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_params"
        return answer.json()["error"]["message"]

    assert "order" in refused(put_chunk(url, data[chunk : 2 * chunk], chunk, size))  # chunk 1 first
    assert "whole chunk" in refused(put_chunk(url, data[:1000], 0, size))  # not a chunk's range
    short_body = httpx.put(
        url, content=data[:1000], headers={"Content-Type": "video/mp4", "Content-Range": f"bytes 0-{chunk - 1}/{size}"}
    )
    assert "Content-Length" in refused(short_body)
    assert "total" in refused(put_chunk(url, data[:chunk], 0, size + 1))
    assert "Content-Type" in refused(put_chunk(url, data[:chunk], 0, size, **{"Content-Type": "text/plain"}))
    bad_token = url.replace("upload_token=", "upload_token=x")
    assert "invalid" in refused(put_chunk(bad_token, data[:chunk], 0, size))
    assert put_chunk(url, data[:chunk], 0, size).status_code == 206
    assert put_chunk(url, data[:chunk], 0, size).status_code == 206  # the same chunk again: a retry
    assert "order" in refused(put_chunk(url, data[2 * chunk :], 2 * chunk, size))


def test_tiktok_direct_post_in_chunks_publishes_once(
    fake: FakePlatforms, http: httpx.Client, clips: dict[str, Path]
) -> None:
    token = issue_tokens(fake, "tiktok")["access_token"]
    creator = http.post(
        "/open.tiktokapis.com/v2/post/publish/creator_info/query/", json={}, headers=bearer(token)
    ).json()["data"]
    assert (
        creator["creator_nickname"] == "Sandbox TikTok creator"
        and "PUBLIC_TO_EVERYONE" in creator["privacy_level_options"]
    )
    size, chunk = 300 * KiB, 64 * KiB  # 4 chunks, the last one 108 KiB
    video = padded(clips["good"], size)
    init = tiktok_init(http, token, size, chunk, 4, privacy="PUBLIC_TO_EVERYONE").json()["data"]
    url, publish_id = init["upload_url"], init["publish_id"]

    assert put_chunk(url, video[:chunk], 0, size).status_code == 206
    fake.cut_next("tiktok.upload", after_bytes=1000)  # TikTok keeps nothing of a cut chunk
    with pytest.raises(httpx.RemoteProtocolError):
        put_chunk(url, video[chunk : 2 * chunk], chunk, size)
    assert tiktok_status(http, token, publish_id) == {
        "status": "PROCESSING_UPLOAD",
        "uploaded_bytes": chunk,
        "publicaly_available_post_id": [],
    }
    for index in (1, 2):
        assert put_chunk(url, video[index * chunk : (index + 1) * chunk], index * chunk, size).status_code == 206
    assert put_chunk(url, video[3 * chunk :], 3 * chunk, size).status_code == 201
    assert put_chunk(url, video[3 * chunk :], 3 * chunk, size).status_code == 201  # its answer was lost: no new post

    assert tiktok_status(http, token, publish_id)["status"] == "PROCESSING_UPLOAD"  # one poll of processing
    done = tiktok_status(http, token, publish_id)
    posts = fake.posts("tiktok")
    assert len(posts) == 1 and done["status"] == "PUBLISH_COMPLETE"
    assert done["publicaly_available_post_id"] == [int(posts[0]["id"])]
    assert posts[0]["sha256"] == hashlib.sha256(video).hexdigest() and posts[0]["size"] == size
    assert posts[0]["privacy"] == "PUBLIC_TO_EVERYONE" and posts[0]["title"] == "Sandbox #test"
    assert list(fake.upload_dir.glob("*.part")) == []  # no upload left half-kept
    # the posted file is kept for the post's sandbox page, which plays it
    assert fake.posted_file(posts[0]).read_bytes() == video
    sent = fake.requests("tiktok.init")[0]["post_info"]
    assert sent["privacy_level"] == "PUBLIC_TO_EVERYONE" and sent["brand_content_toggle"] is False


def test_tiktok_random_bytes_fail_the_format_check(fake: FakePlatforms, http: httpx.Client) -> None:
    fake.rules.tiktok_processing_polls = 0
    token = issue_tokens(fake, "tiktok")["access_token"]
    init = tiktok_init(http, token, 10 * KiB, 10 * KiB, 1).json()["data"]
    assert put_chunk(init["upload_url"], os.urandom(10 * KiB), 0, 10 * KiB).status_code == 201
    status = tiktok_status(http, token, init["publish_id"])
    assert status["status"] == "FAILED" and status["fail_reason"] == "file_format_check_failed"
    assert fake.posts("tiktok") == []


def test_tiktok_cover_time_must_fall_inside_the_video(fake: FakePlatforms, http: httpx.Client, clips: dict[str, Path]) -> None:
    fake.rules.tiktok_processing_polls = 0
    token = issue_tokens(fake, "tiktok")["access_token"]
    video = clips["good"].read_bytes()  # 3 s
    bad = http.post("/open.tiktokapis.com/v2/post/publish/video/init/", headers=bearer(token), json={
        "post_info": {"title": "x", "privacy_level": "SELF_ONLY", "brand_content_toggle": False,
                      "video_cover_timestamp_ms": -1},
        "source_info": {"source": "FILE_UPLOAD", "video_size": len(video), "chunk_size": len(video), "total_chunk_count": 1},
    })  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_params"
    outcomes = {}
    for cover in (2900, 3500):
        init = tiktok_init(http, token, len(video), len(video), 1, cover_ms=cover).json()["data"]
        assert put_chunk(init["upload_url"], video, 0, len(video)).status_code == 201
        outcomes[cover] = tiktok_status(http, token, init["publish_id"])
    assert outcomes[2900]["status"] == "PUBLISH_COMPLETE"
    assert outcomes[3500]["status"] == "FAILED" and outcomes[3500]["fail_reason"] == "video_cover_timestamp_out_of_range"
    [post] = fake.posts("tiktok")
    assert post["settings"]["video_cover_timestamp_ms"] == 2900


def test_tiktok_fails_a_video_under_3_s(fake: FakePlatforms, http: httpx.Client, tmp_path: Path) -> None:
    token = issue_tokens(fake, "tiktok")["access_token"]
    video = make_clip(tmp_path / "blink.mp4", seconds=1, size=(64, 64), fps=24, audio=False).read_bytes()
    init = tiktok_init(http, token, len(video), len(video), 1, privacy="PUBLIC_TO_EVERYONE").json()["data"]
    assert put_chunk(init["upload_url"], video, 0, len(video)).status_code == 201
    assert tiktok_status(http, token, init["publish_id"])["status"] == "PROCESSING_UPLOAD"  # one poll of processing
    state = tiktok_status(http, token, init["publish_id"])
    assert (state["status"], state["fail_reason"]) == ("FAILED", "duration_check_failed")
    assert fake.posts("tiktok") == []


def test_tiktok_privacy_must_be_among_the_creators_options(fake: FakePlatforms, http: httpx.Client) -> None:
    fake.rules.tiktok_privacy_options = ("SELF_ONLY",)  # an unaudited app
    token = issue_tokens(fake, "tiktok")["access_token"]
    answer = tiktok_init(http, token, 10 * KiB, 10 * KiB, 1, privacy="PUBLIC_TO_EVERYONE")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "privacy_level_option_mismatch"
    assert tiktok_init(http, token, 10 * KiB, 10 * KiB, 1, privacy="SELF_ONLY").status_code == 200


def test_tiktok_init_rate_limit_and_daily_post_cap(fake: FakePlatforms, clock: Clock, http: httpx.Client) -> None:
    fake.rules.tiktok_daily_posts = 8
    token = issue_tokens(fake, "tiktok")["access_token"]
    for _ in range(6):
        assert tiktok_init(http, token, 10 * KiB, 10 * KiB, 1).status_code == 200
    limited = tiktok_init(http, token, 10 * KiB, 10 * KiB, 1)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    clock.advance(61)
    for _ in range(2):
        assert tiktok_init(http, token, 10 * KiB, 10 * KiB, 1).status_code == 200
    capped = tiktok_init(http, token, 10 * KiB, 10 * KiB, 1)
    assert capped.status_code == 403 and capped.json()["error"]["code"] == "spam_risk_too_many_posts"
    clock.advance(86400)
    # A day later the cap has room again; by then the hour-long upload URLs are dead too.
    fresh = issue_tokens(fake, "tiktok")["access_token"]
    assert tiktok_init(http, fresh, 10 * KiB, 10 * KiB, 1).status_code == 200


# ---- Instagram ------------------------------------------------------------------------------


def ig_container(http: httpx.Client, token: str, caption: str = "Sandbox reel #one") -> dict[str, str]:
    answer = http.post(
        f"{IG}/{IG_USER}/media",
        data={"media_type": "REELS", "upload_type": "resumable", "caption": caption, "share_to_feed": "true"},
        headers=bearer(token),
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def ig_upload(uri: str, token: str, data: bytes, offset: int = 0, total: int | None = None) -> httpx.Response:
    headers = {"Authorization": f"OAuth {token}", "offset": str(offset), "file_size": str(total or len(data))}
    return httpx.post(uri, content=data, headers=headers, timeout=10)


def ig_status(http: httpx.Client, token: str, container: str) -> str:
    answer = http.get(f"{IG}/{container}", params={"fields": "status_code,status", "access_token": token})
    return answer.json()["status_code"]


def ig_publish(http: httpx.Client, token: str, container: str) -> httpx.Response:
    return http.post(f"{IG}/{IG_USER}/media_publish", data={"creation_id": container}, headers=bearer(token))


def test_instagram_reel_publishes_once_and_only_when_finished(
    fake: FakePlatforms, http: httpx.Client, clips: dict[str, Path]
) -> None:
    token = issue_tokens(fake, "instagram")["access_token"]
    video = clips["good"].read_bytes()
    container = ig_container(http, token)
    assert (
        container["uri"]
        == f"{http.base_url}".rstrip("/") + f"/rupload.facebook.com/ig-api-upload/v23.0/{container['id']}"
    )

    early = ig_publish(http, token, container["id"])
    assert early.status_code == 400 and "X-App-Usage" in early.headers
    assert (early.json()["error"]["code"], early.json()["error"]["error_subcode"]) == (9007, 2207027)

    half = len(video) // 2
    assert ig_upload(container["uri"], token, video[:half], 0, len(video)).json() == {"success": True}
    assert ig_upload(container["uri"], token, video[half:], half, len(video)).json() == {"success": True}
    assert ig_status(http, token, container["id"]) == "IN_PROGRESS"  # one poll of processing (the default)
    assert ig_status(http, token, container["id"]) == "FINISHED"

    published = ig_publish(http, token, container["id"])
    assert published.status_code == 200
    again = ig_publish(http, token, container["id"])
    assert again.status_code == 400 and again.json()["error"]["type"] == "OAuthException"
    assert ig_status(http, token, container["id"]) == "PUBLISHED"
    posts = fake.posts("instagram")
    assert len(posts) == 1 and posts[0]["id"] == published.json()["id"] and posts[0]["caption"] == "Sandbox reel #one"
    assert posts[0]["sha256"] == hashlib.sha256(video).hexdigest()
    media = http.get(f"{IG}/{posts[0]['id']}", params={"fields": "id,permalink"}, headers=bearer(token)).json()
    assert media["permalink"].startswith("https://www.instagram.com/reel/")
    limit = http.get(
        f"{IG}/{IG_USER}/content_publishing_limit", params={"fields": "quota_usage,config"}, headers=bearer(token)
    )
    assert limit.json() == {"data": [{"quota_usage": 1, "config": {"quota_total": 50, "quota_duration": 86400}}]}
    usage = json.loads(limit.headers["X-App-Usage"])
    assert set(usage) == {"call_count", "total_time", "total_cputime"}
    assert fake.requests("instagram.create")[0]["caption"] == "Sandbox reel #one"


def test_instagram_upload_host_answers_its_offset_and_refuses_resends_over_held_bytes(
    fake: FakePlatforms, http: httpx.Client, clips: dict[str, Path]
) -> None:
    """Issue 20 finding 3: the fake took a resend from 0 that Meta refuses ("the upload is
    complete or expired") and had no way to ask where an upload stands."""
    token = issue_tokens(fake, "instagram")["access_token"]
    video = clips["good"].read_bytes()
    container = ig_container(http, token)
    oauth = {"Authorization": f"OAuth {token}"}
    assert httpx.get(container["uri"], headers=oauth).json() == {"offset": 0}
    assert httpx.get(container["uri"]).status_code == 401
    half = len(video) // 2
    fake.cut_next("instagram.upload", after_bytes=100)  # Meta keeps every byte that arrived
    with pytest.raises(httpx.RemoteProtocolError):
        ig_upload(container["uri"], token, video[:half], 0, len(video))
    assert httpx.get(container["uri"], headers=oauth).json() == {"offset": 100}
    restart = ig_upload(container["uri"], token, video, 0, len(video))
    assert restart.status_code == 400 and "offset must be 100" in restart.text
    assert ig_upload(container["uri"], token, video[100:], 100, len(video)).json() == {"success": True}
    again = ig_upload(container["uri"], token, video, 0, len(video))
    assert again.status_code == 400 and "complete or expired" in again.text
    asked = httpx.get(container["uri"], headers=oauth)
    assert asked.status_code == 400 and "complete or expired" in asked.text
    assert ig_status(http, token, container["id"]) == "IN_PROGRESS"  # processing the whole file
    assert ig_status(http, token, container["id"]) == "FINISHED"


def test_instagram_mp4_without_faststart_goes_to_error(
    fake: FakePlatforms, http: httpx.Client, clips: dict[str, Path]
) -> None:
    token = issue_tokens(fake, "instagram")["access_token"]
    container = ig_container(http, token)
    assert ig_upload(container["uri"], token, clips["bad"].read_bytes()).status_code == 200
    status = http.get(f"{IG}/{container['id']}", params={"fields": "status_code,status"}, headers=bearer(token)).json()
    assert status["status_code"] == "ERROR" and "moov" in status["status"]
    assert ig_publish(http, token, container["id"]).json()["error"]["error_subcode"] == 2207027
    assert fake.posts() == []


def test_instagram_daily_publishing_cap(fake: FakePlatforms, http: httpx.Client, clips: dict[str, Path]) -> None:
    fake.rules.instagram_daily_posts = 1
    fake.rules.instagram_processing_polls = 0
    token = issue_tokens(fake, "instagram")["access_token"]
    video = clips["good"].read_bytes()
    first, second = ig_container(http, token), ig_container(http, token)
    for container in (first, second):
        assert ig_upload(container["uri"], token, video).status_code == 200
    assert ig_publish(http, token, first["id"]).status_code == 200
    capped = ig_publish(http, token, second["id"]).json()["error"]
    assert (capped["code"], capped["error_subcode"]) == (9, 2207042)
    assert len(fake.posts("instagram")) == 1


def test_instagram_container_expires_after_a_day(fake: FakePlatforms, clock: Clock, http: httpx.Client) -> None:
    token = issue_tokens(fake, "instagram")["access_token"]
    container = ig_container(http, token)
    clock.advance(86400 + 1)
    assert ig_status(http, token, container["id"]) == "EXPIRED"
    error = ig_publish(http, token, container["id"]).json()["error"]
    assert error["error_subcode"] == 2207020


def test_instagram_caption_limits(fake: FakePlatforms, http: httpx.Client) -> None:
    token = issue_tokens(fake, "instagram")["access_token"]
    for caption in ("x" * 2201, " ".join(f"#tag{i}" for i in range(31))):
        answer = http.post(
            f"{IG}/{IG_USER}/media",
            data={"media_type": "REELS", "upload_type": "resumable", "caption": caption},
            headers=bearer(token),
        )
        assert answer.status_code == 400 and answer.json()["error"]["code"] == 100


# ---- YouTube --------------------------------------------------------------------------------


def youtube(base: str, token: str):
    """The real client library, built from its bundled discovery document, aimed at the fake.
    build_http() matters: it stops httplib2 from treating 308 as a redirect."""
    doc = json.loads(YT_DOC.read_text())
    doc["rootUrl"] = f"{base}/youtube.googleapis.com/"
    return build_from_document(doc, http=AuthorizedHttp(Credentials(token), http=build_http()))


VIDEO_BODY = {
    "snippet": {"title": "Sandbox video", "description": "From the sandbox", "categoryId": "22"},
    "status": {"privacyStatus": "private", "selfDeclaredMadeForKids": False},
}


def upload_request(client, path: Path, body: dict[str, Any] = VIDEO_BODY, chunksize: int = 256 * KiB):
    media = MediaFileUpload(str(path), mimetype="video/mp4", chunksize=chunksize, resumable=True)
    return client.videos().insert(part="snippet,status", body=body, media_body=media)


def finish(request) -> dict[str, Any]:
    response = None
    while response is None:
        _, response = request.next_chunk()
    return response


def test_youtube_resumable_upload_with_the_client_library(fake: FakePlatforms, base: str, tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    path.write_bytes(os.urandom(700 * KiB))  # three chunks: 256, 256, 188 KiB
    client = youtube(base, issue_tokens(fake, "youtube")["access_token"])
    channel = client.channels().list(part="snippet", mine=True).execute()["items"][0]
    assert channel["snippet"]["title"] == "Sandbox YouTube channel"

    video = finish(upload_request(client, path))
    assert video["kind"] == "youtube#video" and video["status"]["privacyStatus"] == "private"
    ranges = [r["content_range"] for r in fake.requests("youtube.upload")]
    assert ranges == [
        f"bytes 0-262143/{700 * KiB}",
        f"bytes 262144-524287/{700 * KiB}",
        f"bytes 524288-716799/{700 * KiB}",
    ]
    sent = fake.requests("youtube.insert")[0]
    assert sent["body"]["status"]["selfDeclaredMadeForKids"] is False and sent["query"]["uploadType"] == "resumable"
    posts = fake.posts("youtube")
    assert [p["id"] for p in posts] == [video["id"]] and posts[0]["sha256"] == hashlib.sha256(
        path.read_bytes()
    ).hexdigest()
    looked_up = client.videos().list(part="status", id=video["id"]).execute()["items"]
    assert looked_up[0]["status"]["privacyStatus"] == "private"


def test_youtube_thumbnails_set_checks_the_picture_the_video_and_the_channel(
    fake: FakePlatforms, base: str, tmp_path: Path
) -> None:
    import cv2
    import numpy as np

    path = tmp_path / "video.mp4"
    path.write_bytes(os.urandom(300 * KiB))
    client = youtube(base, issue_tokens(fake, "youtube")["access_token"])
    video = finish(upload_request(client, path))
    picture = tmp_path / "cover.jpg"
    picture.write_bytes(cv2.imencode(".jpg", np.full((1280, 720, 3), 90, np.uint8))[1].tobytes())
    notes = tmp_path / "notes.jpg"
    notes.write_bytes(b"not a picture at all")

    def set_thumbnail(file: Path, video_id: str = video["id"]) -> dict[str, Any]:
        media = MediaFileUpload(str(file), mimetype="image/jpeg", resumable=False)
        return client.thumbnails().set(videoId=video_id, media_body=media).execute()

    def refusal(file: Path, video_id: str = video["id"]) -> tuple[int, str]:
        with pytest.raises(HttpError) as refused:
            set_thumbnail(file, video_id)
        return refused.value.resp.status, json.loads(refused.value.content)["error"]["errors"][0]["reason"]

    assert refusal(notes) == (400, "invalidImage")
    assert refusal(picture, "no-such-video") == (404, "videoNotFound")
    fake.rules.youtube_custom_thumbnails = False
    assert refusal(picture) == (403, "forbidden")
    fake.rules.youtube_custom_thumbnails = True
    fake.rules.youtube_max_thumbnail = 100
    assert refusal(picture) == (413, "mediaBodyTooLarge")
    fake.rules.youtube_max_thumbnail = Rules.youtube_max_thumbnail
    assert "thumbnail" not in fake.posts("youtube")[0], "no refusal set anything"
    answer = set_thumbnail(picture)
    assert answer["items"][0]["default"]["width"] == 720
    [post] = fake.posts("youtube")
    assert post["thumbnail"] == {"sha256": hashlib.sha256(picture.read_bytes()).hexdigest(), "width": 720, "height": 1280}
    sent = fake.requests("youtube.thumbnails")[-1]
    assert sent["query"]["uploadType"] == "media" and sent["content_type"] == "image/jpeg"


def test_youtube_refuses_a_chunk_that_is_not_a_multiple_of_256_kib(fake: FakePlatforms, http: httpx.Client) -> None:
    token = issue_tokens(fake, "youtube")["access_token"]
    start = http.post(
        "/youtube.googleapis.com/upload/youtube/v3/videos",
        params={"uploadType": "resumable", "part": "snippet,status"},
        json=VIDEO_BODY,
        headers=bearer(token) | {"X-Upload-Content-Length": str(600 * KiB), "X-Upload-Content-Type": "video/mp4"},
    )
    session = start.headers["location"]
    assert start.status_code == 200 and session.startswith(f"{http.base_url}".rstrip("/") + "/youtube.googleapis.com/")
    odd = httpx.put(session, content=os.urandom(100_000), headers={"Content-Range": f"bytes 0-99999/{600 * KiB}"})
    assert odd.status_code == 400 and odd.json()["error"]["errors"][0]["reason"] == "badRequest"
    query = httpx.put(session, headers={"Content-Range": f"bytes */{600 * KiB}"})
    assert query.status_code == 308 and "range" not in query.headers  # nothing received yet
    first = httpx.put(session, content=os.urandom(256 * KiB), headers={"Content-Range": f"bytes 0-262143/{600 * KiB}"})
    assert first.status_code == 308 and first.headers["range"] == "bytes=0-262143"


def test_youtube_resumes_from_what_the_server_kept_after_a_cut(fake: FakePlatforms, base: str, tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    path.write_bytes(os.urandom(1600 * KiB))
    total = 1600 * KiB
    request = upload_request(youtube(base, issue_tokens(fake, "youtube")["access_token"]), path, chunksize=512 * KiB)
    request.next_chunk()  # bytes 0-512 KiB
    fake.cut_next("youtube.upload", after_bytes=300 * KiB)  # Google keeps whole 256 KiB multiples: 256 KiB
    with pytest.raises(IncompleteRead):  # a transport error, through httplib2
        request.next_chunk()
    request.next_chunk()  # asks where to resume (bytes */N), then sends from 768 KiB
    fake.cut_next("youtube.upload")  # the last chunk is stored, its answer lost
    with pytest.raises(IncompleteRead):
        request.next_chunk()
    video = finish(request)  # the status query answers with the video
    assert [r["content_range"] for r in fake.requests("youtube.upload")] == [
        f"bytes 0-524287/{total}",
        f"bytes 524288-1048575/{total}",  # cut after 300 KiB
        f"bytes */{total}",
        f"bytes 786432-1310719/{total}",
        f"bytes 1310720-1638399/{total}",  # cut after the video was made
        f"bytes */{total}",
    ]
    posts = fake.posts("youtube")
    assert [p["id"] for p in posts] == [video["id"]]
    assert posts[0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_youtube_caption_track_insert_is_checked_like_googles(fake: FakePlatforms, base: str, tmp_path: Path) -> None:
    from googleapiclient.errors import HttpError

    video_path = tmp_path / "video.mp4"
    video_path.write_bytes(os.urandom(300 * KiB))
    track = tmp_path / "part.srt"
    track.write_text("1\n00:00:00,500 --> 00:00:01,200\nCook the rice.\n\n")
    scopes = ["https://www.googleapis.com/auth/youtube.upload", "https://www.googleapis.com/auth/youtube.force-ssl"]
    client = youtube(base, issue_tokens(fake, "youtube", scopes)["access_token"])
    video = finish(upload_request(client, video_path))

    def insert(client, path: Path, video_id: str = video["id"]):  # type: ignore[no-untyped-def]
        body = {"snippet": {"videoId": video_id, "language": "en", "name": "English", "isDraft": False}}
        media = MediaFileUpload(str(path), mimetype="application/octet-stream", resumable=False)
        return client.captions().insert(part="snippet", body=body, media_body=media).execute()

    def reason(call) -> tuple[int, str]:  # type: ignore[no-untyped-def]
        with pytest.raises(HttpError) as refused:
            call()
        return refused.value.resp.status, json.loads(refused.value.content)["error"]["errors"][0]["reason"]

    upload_only = youtube(base, issue_tokens(fake, "youtube")["access_token"])  # youtube.upload, readonly
    assert reason(lambda: insert(upload_only, track)) == (403, "insufficientPermissions")
    junk = tmp_path / "junk.srt"
    junk.write_bytes(os.urandom(2000))
    assert reason(lambda: insert(client, junk)) == (400, "contentRequired")
    assert reason(lambda: insert(client, track, "noSuchVideo")) == (404, "videoNotFound")
    caption = insert(client, track)
    assert caption["kind"] == "youtube#caption" and caption["snippet"]["videoId"] == video["id"]
    assert fake.data["youtube"]["captions"][caption["id"]]["cues"] == [{"start": 0.5, "end": 1.2, "text": "Cook the rice."}]
    assert reason(lambda: insert(client, track)) == (409, "captionExists")


def test_youtube_insert_quota_and_channel_upload_cap(
    fake: FakePlatforms, clock: Clock, base: str, tmp_path: Path
) -> None:
    fake.rules.youtube_daily_inserts = 2
    fake.rules.youtube_daily_uploads = 1
    path = tmp_path / "video.mp4"
    path.write_bytes(os.urandom(1000))
    client = youtube(base, issue_tokens(fake, "youtube")["access_token"])
    finish(upload_request(client, path))
    with pytest.raises(HttpError) as capped:
        upload_request(client, path).next_chunk()
    assert capped.value.status_code == 400 and capped.value.error_details[0]["reason"] == "uploadLimitExceeded"
    with pytest.raises(HttpError) as quota:
        upload_request(client, path).next_chunk()
    assert quota.value.status_code == 403 and quota.value.error_details[0]["reason"] == "quotaExceeded"
    clock.advance(86400)
    client = youtube(base, issue_tokens(fake, "youtube")["access_token"])
    finish(upload_request(client, path))
    assert len(fake.posts("youtube")) == 2


def test_youtube_metadata_rules(fake: FakePlatforms, base: str, tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    path.write_bytes(os.urandom(1000))
    client = youtube(base, issue_tokens(fake, "youtube")["access_token"])
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
    public_scheduled = {
        "snippet": VIDEO_BODY["snippet"],
        "status": {"privacyStatus": "public", "publishAt": future, "selfDeclaredMadeForKids": False},
    }
    no_kids_flag = {"snippet": VIDEO_BODY["snippet"], "status": {"privacyStatus": "private"}}
    bad_title = {"snippet": {"title": "<b>hi</b>"}, "status": VIDEO_BODY["status"]}
    for body, reason in (
        (public_scheduled, "invalidPublishAt"),
        (no_kids_flag, "invalidVideoMetadata"),
        (bad_title, "invalidTitle"),
    ):
        with pytest.raises(HttpError) as refused:
            upload_request(client, path, body).next_chunk()
        assert refused.value.status_code == 400 and refused.value.error_details[0]["reason"] == reason
    scheduled = {"snippet": VIDEO_BODY["snippet"], "status": {**public_scheduled["status"], "privacyStatus": "private"}}
    assert finish(upload_request(client, path, scheduled))["status"]["publishAt"] == future


# ---- tokens and faults ------------------------------------------------------------------------


def test_expired_tokens_answer_in_each_platforms_format(fake: FakePlatforms, clock: Clock, http: httpx.Client) -> None:
    tiktok = issue_tokens(fake, "tiktok")["access_token"]
    instagram = issue_tokens(fake, "instagram")["access_token"]
    google = issue_tokens(fake, "youtube")["access_token"]
    fake.expire_tokens("tiktok")
    answer = http.post("/open.tiktokapis.com/v2/post/publish/creator_info/query/", json={}, headers=bearer(tiktok))
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "access_token_invalid"
    clock.advance(3601)  # Google's access tokens live an hour
    answer = http.get(
        "/youtube.googleapis.com/youtube/v3/channels",
        params={"part": "snippet", "mine": "true"},
        headers=bearer(google),
    )
    assert answer.status_code == 401 and answer.json()["error"]["errors"][0]["reason"] == "authError"
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    fake.expire_tokens("instagram")
    answer = http.get(f"{IG}/me", params={"fields": "user_id,username", "access_token": instagram})
    error = answer.json()["error"]
    assert (
        answer.status_code == 400 and error["code"] == 190 and error["type"] == "OAuthException" and error["fbtrace_id"]
    )
    unknown = http.get(f"{IG}/me", params={"access_token": "IGAAnot-a-token"})
    assert unknown.json()["error"]["code"] == 190


def test_token_expires_right_after_the_named_operation(fake: FakePlatforms, base: str, tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    path.write_bytes(os.urandom(600 * KiB))
    tokens = issue_tokens(fake, "youtube")
    request = upload_request(youtube(base, tokens["access_token"]), path)
    fake.expire_tokens("youtube", after="youtube.upload")
    request.next_chunk()  # the first chunk is stored, then the token dies
    # google-auth sees the 401 and wants to refresh; these credentials cannot. (Letting it
    # refresh is no cure mid-upload: its retry re-sends a file slice already read, and hangs.)
    with pytest.raises(RefreshError):
        request.next_chunk()
    expired = httpx.put(
        request.resumable_uri, headers=bearer(tokens["access_token"]) | {"Content-Range": f"bytes */{600 * KiB}"}
    )
    assert expired.status_code == 401 and expired.json()["error"]["errors"][0]["reason"] == "authError"
    refreshed = httpx.post(
        f"{base}/oauth2.googleapis.com/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": fake.clients["youtube"][0],
            "client_secret": "sandbox-secret",
        },
    ).json()
    request.http = AuthorizedHttp(Credentials(refreshed["access_token"]), http=build_http())
    assert finish(request)["kind"] == "youtube#video"  # resumes where the server stopped
    assert [r["content_range"].split("/")[0] for r in fake.requests("youtube.upload")][-3:] == [
        "bytes *",
        "bytes 262144-524287",
        "bytes 524288-614399",
    ]


def test_fail_next_answers_in_the_platforms_format_with_retry_after(fake: FakePlatforms, http: httpx.Client) -> None:
    token = issue_tokens(fake, "instagram")["access_token"]
    fake.fail_next("instagram.create", 503, code=2, message="Service temporarily unavailable", retry_after=7, times=2)
    for _ in range(2):
        answer = http.post(
            f"{IG}/{IG_USER}/media", data={"media_type": "REELS", "upload_type": "resumable"}, headers=bearer(token)
        )
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "7"
        assert answer.json()["error"]["code"] == 2 and answer.json()["error"]["is_transient"] is True
    assert (
        http.post(
            f"{IG}/{IG_USER}/media", data={"media_type": "REELS", "upload_type": "resumable"}, headers=bearer(token)
        ).status_code
        == 200
    )
    assert fake.seen("instagram.create") == 3 and len(fake.requests("instagram.create")) == 1

    fake.fail_next("tiktok.token", 500)
    answer = http.post("/open.tiktokapis.com/v2/oauth/token/", data={"grant_type": "refresh_token"})
    assert answer.status_code == 500 and set(answer.json()) == {"error", "error_description", "log_id"}
    fake.fail_next("youtube.upload", 503, retry_after=2)
    answer = http.put("/youtube.googleapis.com/upload/youtube/v3/videos", params={"upload_id": "x"}, content=b"abc")
    assert answer.status_code == 503 and answer.json()["error"]["errors"][0]["reason"] == "backendError"
    with pytest.raises(ValueError):
        fake.fail_next("instagram.publsh", 500)  # a typo fails loudly


def test_hang_next_publishes_before_answering_and_wait_for_sees_it(
    fake: FakePlatforms, base: str, clips: dict[str, Path]
) -> None:
    fake.rules.instagram_processing_polls = 0
    token = issue_tokens(fake, "instagram")["access_token"]
    with httpx.Client(base_url=base, timeout=10) as http:
        container = ig_container(http, token)
        ig_upload(container["uri"], token, clips["good"].read_bytes())
        fake.hang_next("instagram.publish", 1.0)
        answers: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: answers.append(ig_publish(http, token, container["id"])))
        thread.start()
        assert fake.wait_for("instagram.publish", timeout=5)
        deadline = time.monotonic() + 5
        while not fake.posts("instagram") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(fake.posts("instagram")) == 1 and not answers  # published, the answer still held back
        thread.join(timeout=5)
        assert answers[0].status_code == 200 and answers[0].json()["id"] == fake.posts("instagram")[0]["id"]
    assert not fake.wait_for("instagram.publish", count=2, timeout=0.05)


# ---- state and mounting ------------------------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Path, clips: dict[str, Path]) -> None:
    state = tmp_path / "sandbox.json"
    first = FakePlatforms(state_file=state, upload_dir=tmp_path / "uploads")
    tokens = issue_tokens(first, "instagram")
    with running_fake(first) as base, httpx.Client(base_url=base) as http:
        container = ig_container(http, tokens["access_token"])
        ig_upload(container["uri"], tokens["access_token"], clips["good"].read_bytes())
        assert not list(tmp_path.glob("*.tmp"))  # written whole, then renamed
    second = FakePlatforms(state_file=state, upload_dir=tmp_path / "uploads")
    with running_fake(second) as base, httpx.Client(base_url=base) as http:
        assert ig_status(http, tokens["access_token"], container["id"]) == "IN_PROGRESS"
        assert ig_status(http, tokens["access_token"], container["id"]) == "FINISHED"
        assert ig_publish(http, tokens["access_token"], container["id"]).status_code == 200
    assert len(FakePlatforms(state_file=state, upload_dir=tmp_path / "uploads").posts("instagram")) == 1


def test_the_router_mounts_in_another_app_behind_its_guard(fake: FakePlatforms) -> None:
    def admin_only(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        if not handler.opt.get("public"):
            raise NotAuthorizedException()

    @get("/private")
    async def private() -> str:
        return "secret"

    app = Litestar(
        route_handlers=[private, sandbox_router(fake)],
        guards=[admin_only],
        state={"unrelated": 1},
        request_max_body_size=1 << 20,
    )
    token = issue_tokens(fake, "tiktok")["access_token"]
    fake.rules.tiktok_max_chunk = fake.rules.tiktok_max_last_chunk = size = 2 << 20  # twice the app's body limit
    with TestClient(app) as client:
        assert client.get("/private").status_code == 401
        init = tiktok_init(client, token, size, size, 1, prefix="/sandbox")  # type: ignore[arg-type]
        url = init.json()["data"]["upload_url"]
        assert url.startswith("http://testserver.local/sandbox/open-upload.tiktokapis.com/video/?upload_id=")
        path = urlsplit(url)
        put = client.put(
            f"{path.path}?{path.query}",
            content=os.urandom(size),
            headers={"Content-Type": "video/mp4", "Content-Range": f"bytes 0-{size - 1}/{size}"},
        )
        assert put.status_code == 201
        page = client.get(
            "/sandbox/accounts.google.com/o/oauth2/v2/auth",
            params={
                "client_id": fake.clients["youtube"][0],
                "redirect_uri": REDIRECT,
                "response_type": "code",
                "scope": "openid",
            },
        )
        assert page.status_code == 200 and 'action="/sandbox/accounts.google.com/o/oauth2/v2/auth"' in page.text


# ---- the built-in sandbox, open to the internet (issue 20 finding 2) -----------------


def _sandbox_app(tmp_path: Path, **settings: Any):
    from vidprod.config import Settings
    from vidprod.web.app import create_app

    config = Settings(data_dir=tmp_path / "data", admin_token="t" * 24, **settings)
    assert config.sandbox
    return TestClient(create_app(config, run_worker=False), raise_server_exceptions=False)


def test_open_redirects_are_refused_by_the_consent_pages(http: httpx.Client, tmp_path: Path) -> None:
    params = {"client_key": "sandbox-tiktok", "scope": "video.publish", "response_type": "code", "approve": "1"}
    for evil in ("https://evil.example/", "http://127.0.0.1.evil.example/cb", "https://evil.example/?x=http://127.0.0.1/"):
        answer = http.get("/www.tiktok.com/v2/auth/authorize/", params=params | {"redirect_uri": evil})
        assert answer.status_code == 400 and "location" not in answer.headers
        assert "redirect_uri is not registered" in answer.text

    with _sandbox_app(tmp_path) as client:
        auth = {"Authorization": "Bearer " + "t" * 24}
        url = urlsplit(client.post("/accounts/tiktok/connect", headers=auth).json()["authorize_url"])
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert query["redirect_uri"].endswith("/accounts/tiktok/callback")
        ours = client.get(url.path, params=query | {"approve": "1"}, follow_redirects=False)
        assert ours.status_code == 302 and ours.headers["location"].startswith(query["redirect_uri"] + "?")
        for evil in ("https://evil.example/", "http://testserver.local/elsewhere"):
            refused = client.get(url.path, params=query | {"redirect_uri": evil, "approve": "1"}, follow_redirects=False)
            assert refused.status_code == 400 and "location" not in refused.headers


def test_the_built_in_sandbox_uses_client_secrets_made_for_this_install(tmp_path: Path) -> None:
    with _sandbox_app(tmp_path) as client:
        clients_file = tmp_path / "data" / "sandbox" / "clients.json"
        assert clients_file.stat().st_mode & 0o777 == 0o600
        made = json.loads(clients_file.read_text())
        assert {secret for _, secret in made.values()}.isdisjoint({"sandbox-secret"})
        fake = client.app.state.sandbox
        assert fake.clients["tiktok"] == tuple(made["tiktok"])
        code = fake.issue_code("tiktok", {"redirect_uri": "http://testserver.local/accounts/tiktok/callback"},
                               ["video.publish"])  # fmt: skip
        form = {"client_key": "sandbox-tiktok", "grant_type": "authorization_code", "code": code,
                "redirect_uri": "http://testserver.local/accounts/tiktok/callback"}  # fmt: skip
        stolen = client.post("/sandbox/open.tiktokapis.com/v2/oauth/token/", data=form | {"client_secret": "sandbox-secret"})
        assert "access_token" not in stolen.text
    with _sandbox_app(tmp_path) as client:
        assert client.app.state.sandbox.clients["tiktok"] == tuple(made["tiktok"]), "kept across restarts"


def test_the_built_in_sandbox_is_rate_limited(tmp_path: Path) -> None:
    with _sandbox_app(tmp_path, rate_limit=5) as client:
        statuses = [client.get("/sandbox/www.tiktok.com/v2/auth/authorize/").status_code for _ in range(7)]
    assert statuses[:5] == [400] * 5 and statuses[5:] == [429, 429]


def test_the_built_in_sandbox_takes_no_more_than_the_app_would(tmp_path: Path) -> None:
    with _sandbox_app(tmp_path, max_upload_mb=8) as client:
        fake = client.app.state.sandbox
        limit = 8 * 1024 * 1024
        assert fake.rules.tiktok_max_video_size == fake.rules.instagram_max_file_size == limit
        assert fake.rules.youtube_max_file_size == limit
        token = issue_tokens(fake, "tiktok")["access_token"]
        big = tiktok_init(client, token, limit + 1, 5 << 20, 1, prefix="/sandbox")  # type: ignore[arg-type]
        assert big.status_code == 400 and str(limit) in big.text


def test_housekeeping_sweeps_abandoned_sandbox_uploads(fake: FakePlatforms, settings) -> None:
    from vidprod.domain.housekeeping import SANDBOX_PART_MAX_AGE, Housekeeper
    from vidprod.store import Database

    stale, live = fake.upload_path("tiktok-old"), fake.upload_path("youtube-now")
    for path in (stale, live):
        path.write_bytes(b"x" * 100)
    old = time.time() - SANDBOX_PART_MAX_AGE - 60
    os.utime(stale, (old, old))
    db = Database(settings.database_path)
    db.migrate()
    try:
        assert Housekeeper(db, settings, sandbox=fake).run()["uploads"] == 1
    finally:
        db.close()
    assert not stale.exists() and live.exists()
