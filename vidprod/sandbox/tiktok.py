"""Fake TikTok: Login Kit OAuth (v2) and the Content Posting API (Direct Post and
inbox upload, FILE_UPLOAD in chunks).

Real URL https://HOST/PATH is served at /HOST/PATH. A publish moves through
PROCESSING_UPLOAD (while chunks arrive, and for `rules.tiktok_processing_polls` status
polls after the last one) to PUBLISH_COMPLETE, SEND_TO_USER_INBOX (inbox) or FAILED.
The post is recorded the moment the last chunk is stored.
"""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Request, Response, get, post, put
from litestar.di import NamedDependency

from vidprod.sandbox import mp4
from vidprod.sandbox.errors import ok, tiktok_error, tiktok_oauth_error, tiktok_ok
from vidprod.sandbox.state import ACCOUNTS, DAY, FakePlatforms, new_id
from vidprod.sandbox.web import (
    PUBLIC,
    SMALL_BODY,
    Call,
    ConsentRules,
    base_url,
    bearer_token,
    consent,
    content_length,
    form_params,
    json_body,
    parse_content_range,
    pkce_matches,
    receive_into,
    serve,
    sha256_of,
    truncate,
)

API = "open.tiktokapis.com"
UPLOAD_HOST = "open-upload.tiktokapis.com"
SCOPES = frozenset(
    {"user.info.basic", "user.info.profile", "user.info.stats", "video.list", "video.publish", "video.upload"}
)
DEFAULT_SCOPES = ("user.info.basic", "video.publish", "video.upload")
PRIVACY_LEVELS = ("PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY")
VIDEO_TYPES = ("video/mp4", "video/quicktime", "video/webm")
USER_FIELDS = {
    "open_id": "user.info.basic",
    "union_id": "user.info.basic",
    "avatar_url": "user.info.basic",
    "avatar_url_100": "user.info.basic",
    "avatar_large_url": "user.info.basic",
    "display_name": "user.info.basic",
    "bio_description": "user.info.profile",
    "profile_deep_link": "user.info.profile",
    "is_verified": "user.info.profile",
    "username": "user.info.profile",
    "follower_count": "user.info.stats",
    "following_count": "user.info.stats",
    "likes_count": "user.info.stats",
    "video_count": "user.info.stats",
}
# A grey square; a data: URI so the app's img-src policy lets it show.
AVATAR = (
    "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHdpZHRoPSI2"
    "NCIgaGVpZ2h0PSI2NCI+PHJlY3Qgd2lkdGg9IjY0IiBoZWlnaHQ9IjY0IiBmaWxsPSIjODg4Ii8+PC9zdmc+"
)

CONSENT = ConsentRules(
    platform="tiktok",
    title="TikTok",
    client_param="client_key",
    scope_separators=",",
    known_scopes=SCOPES,
    scopes_in_redirect="scopes",
)


# ---- OAuth ----------------------------------------------------------------------------


@get("/www.tiktok.com/v2/auth/authorize", opt=PUBLIC)
async def authorize(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "tiktok.authorize", lambda call: consent(call, CONSENT))


@post("/open.tiktokapis.com/v2/oauth/token", opt=PUBLIC, request_max_body_size=SMALL_BODY)
async def token(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "tiktok.token", _token)


async def _token(call: Call) -> Response:
    fake, request = call.fake, call.request
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        raise tiktok_oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded.")
    params = await form_params(request)
    call.record(params)
    client_key, secret = fake.clients["tiktok"]
    if params.get("client_key") != client_key or params.get("client_secret") != secret:
        raise tiktok_oauth_error(401, "invalid_client", "Client key or secret is incorrect.")
    grant_type = params.get("grant_type")
    if grant_type == "authorization_code":
        grant, why = fake.redeem_code("tiktok", params.get("code", ""))
        if grant is None:
            raise tiktok_oauth_error(400, "invalid_grant", f"Authorization code is {why}.")
        if grant["client_id"] != client_key or grant["redirect_uri"] != params.get("redirect_uri"):
            raise tiktok_oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request.")
        if grant["code_challenge"] and not pkce_matches(
            grant["code_challenge"], grant["code_challenge_method"], params.get("code_verifier", "")
        ):
            raise tiktok_oauth_error(400, "invalid_grant", "code_verifier does not match the code_challenge.")
        return ok(grant_tokens(fake, client_key, grant["scopes"]))
    if grant_type == "refresh_token":
        old, _ = fake.token("tiktok", params.get("refresh_token"), kinds=("refresh",))
        if old is None:
            raise tiktok_oauth_error(400, "invalid_grant", "Refresh token is invalid or expired.")
        fake.revoke(old["token"])  # TikTok rotates refresh tokens: the old one stops working
        return ok(grant_tokens(fake, client_key, old["scopes"]))
    raise tiktok_oauth_error(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token.")


def grant_tokens(fake: FakePlatforms, client_id: str, scopes: list[str]) -> dict[str, Any]:
    """A new access and refresh token pair, as /v2/oauth/token/ answers it."""
    rules = fake.rules
    access = fake.new_token("tiktok", "access", scopes, client_id, rules.tiktok_access_ttl)
    refresh = fake.new_token("tiktok", "refresh", scopes, client_id, rules.tiktok_refresh_ttl)
    return {
        "access_token": access["token"],
        "expires_in": int(rules.tiktok_access_ttl),
        "open_id": ACCOUNTS["tiktok"]["id"],
        "refresh_expires_in": int(rules.tiktok_refresh_ttl),
        "refresh_token": refresh["token"],
        "scope": ",".join(scopes),
        "token_type": "Bearer",
    }


def _access(call: Call, *scopes: str) -> dict[str, Any]:
    """The caller's token record; 401 in TikTok's format when it is missing, unknown,
    expired or lacks every one of `scopes`."""
    record, _ = call.fake.token("tiktok", bearer_token(call.request))
    if record is None:
        raise tiktok_error(401, "access_token_invalid", "The access token is invalid or not found in the request.")
    if scopes and not set(scopes) & set(record["scopes"]):
        raise tiktok_error(
            401, "scope_not_authorized", f"The user did not authorize the scope required: {' or '.join(scopes)}."
        )
    return record


def _rate(call: Call, key: str, limit: int, token: dict[str, Any]) -> None:
    if retry := call.fake.take_rate(key, token["token"], limit):
        raise tiktok_error(429, "rate_limit_exceeded", "API rate limit exceeded, please retry later.", retry)


# ---- user info and creator info ----------------------------------------------------------


@get("/open.tiktokapis.com/v2/user/info", opt=PUBLIC)
async def user_info(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "tiktok.user_info", _user_info)


async def _user_info(call: Call) -> Response:
    token = _access(call, "user.info.basic")
    fields = [f for f in call.request.query_params.get("fields", "").split(",") if f]
    call.record({"fields": fields})
    if not fields:
        raise tiktok_error(400, "invalid_params", "fields is required.")
    if unknown := [f for f in fields if f not in USER_FIELDS]:
        raise tiktok_error(400, "invalid_params", f"Unknown fields: {', '.join(unknown)}.")
    for field in fields:
        if USER_FIELDS[field] not in token["scopes"]:
            raise tiktok_error(401, "scope_not_authorized", f"Field {field} needs scope {USER_FIELDS[field]}.")
    account = ACCOUNTS["tiktok"]
    everything = {
        "open_id": account["id"],
        "union_id": account["id"] + "-union",
        "avatar_url": AVATAR,
        "avatar_url_100": AVATAR,
        "avatar_large_url": AVATAR,
        "display_name": account["name"],
        "bio_description": "The vidprod sandbox's TikTok creator.",
        "profile_deep_link": "https://www.tiktok.com/@" + account["username"],
        "is_verified": False,
        "username": account["username"],
        "follower_count": 0,
        "following_count": 0,
        "likes_count": 0,
        "video_count": call.fake.posts_since("tiktok", 0),
    }
    return tiktok_ok({"user": {field: everything[field] for field in fields}})


@post("/open.tiktokapis.com/v2/post/publish/creator_info/query", opt=PUBLIC, request_max_body_size=SMALL_BODY)
async def creator_info(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "tiktok.creator_info", _creator_info)


async def _creator_info(call: Call) -> Response:
    token = _access(call, "video.publish")
    _rate(call, "creator_info", call.fake.rules.tiktok_creator_info_per_minute, token)
    call.record(await json_body(call.request))
    account = ACCOUNTS["tiktok"]
    return tiktok_ok(
        {
            "creator_avatar_url": AVATAR,
            "creator_username": account["username"],
            "creator_nickname": account["name"],
            "privacy_level_options": list(call.fake.rules.tiktok_privacy_options),
            "comment_disabled": False,
            "duet_disabled": False,
            "stitch_disabled": False,
            "max_video_post_duration_sec": call.fake.rules.tiktok_max_duration_sec,
        }
    )


# ---- init ---------------------------------------------------------------------------------


@post("/open.tiktokapis.com/v2/post/publish/video/init", opt=PUBLIC, request_max_body_size=SMALL_BODY)
async def direct_post_init(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "tiktok.init", lambda call: _init(call, direct=True))


@post("/open.tiktokapis.com/v2/post/publish/inbox/video/init", opt=PUBLIC, request_max_body_size=SMALL_BODY)
async def inbox_init(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "tiktok.init", lambda call: _init(call, direct=False))


async def _init(call: Call, direct: bool) -> Response:
    fake, rules = call.fake, call.fake.rules
    token = _access(call, "video.publish" if direct else "video.upload")
    _rate(call, "init", rules.tiktok_init_per_minute, token)  # one budget for both kinds
    if "application/json" not in call.request.headers.get("content-type", ""):
        raise tiktok_error(400, "invalid_params", "Content-Type must be application/json; charset=UTF-8.")
    body = await json_body(call.request)
    call.record(body)
    if not isinstance(body, dict) or not isinstance(body.get("source_info"), dict):
        raise tiktok_error(400, "invalid_params", "source_info is required.")
    source = body["source_info"]
    if source.get("source") == "PULL_FROM_URL":
        raise tiktok_error(403, "url_ownership_unverified", "No URL prefix is verified for this sandbox app.")
    if source.get("source") != "FILE_UPLOAD":
        raise tiktok_error(400, "invalid_params", "source_info.source must be FILE_UPLOAD or PULL_FROM_URL.")
    size, chunk, count = source.get("video_size"), source.get("chunk_size"), source.get("total_chunk_count")
    if problem := chunk_problem(fake, size, chunk, count):
        raise tiktok_error(400, "invalid_params", problem)
    post_info = _check_post_info(fake, body.get("post_info")) if direct else {}

    now = fake.clock()
    with fake.changing() as data:
        publishes = data["tiktok"]["publishes"].values()
        recent = [p for p in publishes if p["direct"] == direct and p["created_at"] > now - DAY]
        if direct and sum(p["status"] != "FAILED" for p in recent) >= rules.tiktok_daily_posts:
            raise tiktok_error(
                403, "spam_risk_too_many_posts", "The daily post cap from the API is reached for the current user."
            )
        if not direct and len(recent) >= rules.tiktok_pending_shares:
            raise tiktok_error(
                403, "spam_risk_too_many_pending_share", "The daily upload cap to the inbox is reached for this user."
            )
        publish_id = ("v_pub_file~v2-1." if direct else "v_inbox_file~v2.") + str(secrets.randbelow(10**18))
        upload_token = new_id(nbytes=16)
        data["tiktok"]["publishes"][publish_id] = {
            "publish_id": publish_id,
            "direct": direct,
            "account": token["account"],
            "created_at": now,
            "video_size": size,
            "chunk_size": chunk,
            "chunk_count": count,
            "chunks_received": 0,
            "bytes_received": 0,
            "upload_token": upload_token,
            "post_info": post_info,
            "status": "PROCESSING_UPLOAD",  # what status/fetch answers once polls_left is 0
            "complete": False,
            "polls_left": 0,
            "fail_reason": None,
            "post_id": None,
        }
    upload_url = (
        f"{base_url(call.request, API)}/{UPLOAD_HOST}/video/?upload_id={publish_id}&upload_token={upload_token}"
    )
    return tiktok_ok({"publish_id": publish_id, "upload_url": upload_url})


def chunk_problem(fake: FakePlatforms, size: Any, chunk: Any, count: Any) -> str | None:
    """TikTok's chunk rules for FILE_UPLOAD, or None when the numbers follow them."""
    rules = fake.rules
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (size, chunk, count)):
        return "video_size, chunk_size and total_chunk_count must be integers."
    if size <= 0 or size > rules.tiktok_max_video_size:
        return f"video_size must be between 1 and {rules.tiktok_max_video_size} bytes."
    if size < rules.tiktok_min_chunk:
        if chunk != size or count != 1:
            return (
                f"A video under {rules.tiktok_min_chunk} bytes is uploaded whole: chunk_size must equal "
                "video_size and total_chunk_count must be 1."
            )
        return None
    if not rules.tiktok_min_chunk <= chunk <= rules.tiktok_max_chunk:
        return f"chunk_size must be between {rules.tiktok_min_chunk} and {rules.tiktok_max_chunk} bytes."
    if chunk > size:
        return "chunk_size cannot be larger than video_size."
    if count != size // chunk:
        return f"total_chunk_count must be floor(video_size / chunk_size) = {size // chunk}."
    if not 1 <= count <= rules.tiktok_max_chunks:
        return f"total_chunk_count must be between 1 and {rules.tiktok_max_chunks}."
    if size - chunk * (count - 1) > rules.tiktok_max_last_chunk:
        return f"The last chunk would be larger than {rules.tiktok_max_last_chunk} bytes."
    return None


def _check_post_info(fake: FakePlatforms, info: Any) -> dict[str, Any]:
    if not isinstance(info, dict):
        raise tiktok_error(400, "invalid_params", "post_info is required for Direct Post.")
    privacy = info.get("privacy_level")
    if privacy not in PRIVACY_LEVELS:
        raise tiktok_error(400, "invalid_params", f"privacy_level must be one of {', '.join(PRIVACY_LEVELS)}.")
    if privacy not in fake.rules.tiktok_privacy_options:
        raise tiktok_error(
            400,
            "privacy_level_option_mismatch",
            f"privacy_level {privacy} is not among this creator's privacy_level_options.",
        )
    title = info.get("title", "")
    if not isinstance(title, str):
        raise tiktok_error(400, "invalid_params", "title must be a string.")
    if len(title.encode("utf-16-le")) // 2 > fake.rules.tiktok_title_max:  # TikTok counts UTF-16 units
        raise tiktok_error(400, "invalid_params", f"title is longer than {fake.rules.tiktok_title_max} characters.")
    if not isinstance(info.get("brand_content_toggle"), bool):
        raise tiktok_error(400, "invalid_params", "brand_content_toggle (boolean) is required.")
    for name in ("disable_duet", "disable_comment", "disable_stitch", "brand_organic_toggle", "is_aigc"):
        if name in info and not isinstance(info[name], bool):
            raise tiktok_error(400, "invalid_params", f"{name} must be a boolean.")
    cover = info.get("video_cover_timestamp_ms", 0)
    if not isinstance(cover, int) or isinstance(cover, bool) or cover < 0:
        raise tiktok_error(400, "invalid_params", "video_cover_timestamp_ms must be a non-negative integer.")
    if info["brand_content_toggle"] and privacy == "SELF_ONLY":
        raise tiktok_error(400, "invalid_params", "Branded content cannot be posted with privacy SELF_ONLY.")
    return dict(info)


# ---- upload -------------------------------------------------------------------------------


@put("/open-upload.tiktokapis.com/video", opt=PUBLIC, request_max_body_size=None)
async def upload(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "tiktok.upload", _upload)


async def _upload(call: Call) -> Response:
    fake, request = call.fake, call.request
    headers = request.headers
    declared = content_length(request)
    call.record(
        {
            "content_type": headers.get("content-type"),
            "content_range": headers.get("content-range"),
            "content_length": declared,
        }
    )
    publish_id = request.query_params.get("upload_id", "")
    with fake.lock:
        publish = fake.data["tiktok"]["publishes"].get(publish_id)
        publish = dict(publish) if publish else None
    if publish is None or publish["upload_token"] != request.query_params.get("upload_token"):
        raise tiktok_error(400, "invalid_params", "upload_id or upload_token is invalid.")
    if fake.clock() > publish["created_at"] + fake.rules.tiktok_upload_url_ttl:
        raise tiktok_error(400, "invalid_params", "The upload URL has expired (it is valid for one hour after init).")
    if headers.get("content-type", "").split(";")[0].strip() not in VIDEO_TYPES:
        raise tiktok_error(400, "invalid_params", f"Content-Type must be one of {', '.join(VIDEO_TYPES)}.")
    if declared is None:
        raise tiktok_error(400, "invalid_params", "Content-Length is required.")
    span = parse_content_range(headers.get("content-range"))
    if span is None or span[0] is None:
        raise tiktok_error(400, "invalid_params", "Content-Range must be bytes {first}-{last}/{total}.")
    first, last, total = span
    assert first is not None and last is not None
    size, chunk, count = publish["video_size"], publish["chunk_size"], publish["chunk_count"]
    if total != size:
        raise tiktok_error(400, "invalid_params", f"The total in Content-Range must be video_size ({size}).")
    index = min(first // chunk, count - 1)
    start, end = index * chunk, (size - 1 if index == count - 1 else (index + 1) * chunk - 1)
    if (first, last) != (start, end):
        raise tiktok_error(
            400, "invalid_params", f"Content-Range must cover a whole chunk: chunk {index} is bytes {start}-{end}."
        )
    if declared != last - first + 1:
        raise tiktok_error(400, "invalid_params", f"Content-Length {declared} does not match Content-Range.")
    received = publish["chunks_received"]
    if index not in (received, received - 1):
        raise tiktok_error(
            400,
            "invalid_params",
            f"Chunks must arrive in order: expected chunk {received} (or chunk {received - 1} again).",
        )
    if publish["complete"]:  # the last chunk again, after its answer was lost: nothing to store
        return Response(content=b"", status_code=201)

    if not fake.claim(publish_id):
        raise tiktok_error(400, "invalid_params", "Another chunk of this upload is still being received.")
    path = fake.upload_path(f"tiktok-{publish_id}")
    try:
        got = await receive_into(request, path, first)
        if got != declared:
            await truncate(path, first)
            _set(fake, publish_id, chunks_received=index, bytes_received=first)
            raise tiktok_error(400, "invalid_params", f"The body has {got} bytes; Content-Length said {declared}.")
        if call.keep_bytes is not None and call.keep_bytes < got:
            # A chunk cut short is dropped whole; a retry of chunk N-1 replaces the kept copy.
            await truncate(path, first)
            _set(fake, publish_id, chunks_received=index, bytes_received=first)
            return Response(content=b"", status_code=206)
        _set(fake, publish_id, chunks_received=index + 1, bytes_received=last + 1)
        if index + 1 < count:
            return Response(content=b"", status_code=206)
        await _finish(fake, publish_id, path)
        return Response(content=b"", status_code=201)
    finally:
        fake.release(publish_id)


def _set(fake: FakePlatforms, publish_id: str, **fields: Any) -> None:
    with fake.changing() as data:
        data["tiktok"]["publishes"][publish_id].update(fields)


async def _finish(fake: FakePlatforms, publish_id: str, path: Any) -> None:
    """The last chunk is in: judge the file, record the post, keep only size and hash."""
    problem = mp4.problem(path, faststart=False)
    duration = mp4.duration_seconds(path) if problem is None else None
    digest = await sha256_of(path)
    size = path.stat().st_size
    with fake.changing() as data:
        publish = data["tiktok"]["publishes"][publish_id]
        publish.update(complete=True, polls_left=fake.rules.tiktok_processing_polls, sha256=digest)
        if problem:
            publish.update(status="FAILED", fail_reason="file_format_check_failed")
        elif duration is not None and not (
            fake.rules.tiktok_min_duration_sec <= duration <= fake.rules.tiktok_max_duration_sec
        ):
            publish.update(status="FAILED", fail_reason="duration_check_failed")
        elif duration is not None and publish["direct"] and (
            publish["post_info"].get("video_cover_timestamp_ms", 0) >= duration * 1000
        ):
            # TikTok documents no reason for a cover past the end; the sandbox names its own.
            publish.update(status="FAILED", fail_reason="video_cover_timestamp_out_of_range")
        else:
            info = publish["post_info"]
            post_id = str(7_000_000_000_000_000_000 + secrets.randbelow(10**18))
            publish.update(status="PUBLISH_COMPLETE" if publish["direct"] else "SEND_TO_USER_INBOX", post_id=post_id)
            fake.add_post(
                "tiktok",
                post_id,
                title=info.get("title"),
                caption=info.get("title"),
                privacy=info.get("privacy_level"),
                size=size,
                sha256=digest,
                draft=not publish["direct"],
                publish_id=publish_id,
                settings={k: v for k, v in info.items() if k not in ("title", "privacy_level")},
            )
            fake.keep_posted(path, "tiktok", post_id)
    path.unlink(missing_ok=True)


# ---- status -------------------------------------------------------------------------------


@post("/open.tiktokapis.com/v2/post/publish/status/fetch", opt=PUBLIC, request_max_body_size=SMALL_BODY)
async def status(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "tiktok.status", _status)


async def _status(call: Call) -> Response:
    fake = call.fake
    token = _access(call, "video.publish", "video.upload")
    _rate(call, "status", fake.rules.tiktok_status_per_minute, token)
    body = await json_body(call.request)
    call.record(body)
    publish_id = body.get("publish_id") if isinstance(body, dict) else None
    with fake.changing() as data:
        publish = data["tiktok"]["publishes"].get(publish_id or "")
        if publish is None or publish["account"] != token["account"]:
            raise tiktok_error(400, "invalid_params", "publish_id is invalid.")
        if not publish["complete"] or publish["polls_left"] > 0:
            if publish["complete"]:
                publish["polls_left"] -= 1
            answer: dict[str, Any] = {"status": "PROCESSING_UPLOAD", "uploaded_bytes": publish["bytes_received"]}
        else:
            answer = {"status": publish["status"], "uploaded_bytes": publish["bytes_received"]}
            if publish["status"] == "FAILED":
                answer["fail_reason"] = publish["fail_reason"]
            public = publish["post_info"].get("privacy_level") == "PUBLIC_TO_EVERYONE"
            if publish["status"] == "PUBLISH_COMPLETE" and public:  # only public posts get a public id
                answer["publicaly_available_post_id"] = [int(publish["post_id"])]
    answer.setdefault("publicaly_available_post_id", [])
    return tiktok_ok(answer)


ROUTES = [authorize, token, user_info, creator_info, direct_post_init, inbox_init, upload, status]
