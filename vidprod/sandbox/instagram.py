"""Fake Instagram: Business Login for Instagram, and Reels publishing with the
Instagram API with Instagram Login (graph.instagram.com), resumable upload included.

A container goes IN_PROGRESS (waiting for its bytes, then for
`rules.instagram_processing_polls` status reads) -> FINISHED -> PUBLISHED, or to
ERROR (a file that is not a faststart MP4) or EXPIRED (24 h after creation). Every
answer carries X-App-Usage; past `rules.instagram_hourly_calls` calls an hour the
Graph endpoints answer code 4.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from vidprod.sandbox import mp4
from vidprod.sandbox.errors import (
    graph_error,
    instagram_oauth_error,
    json_response,
    ok,
    rupload_error,
)
from vidprod.sandbox.state import ACCOUNTS, DAY, FakePlatforms, numeric_id
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
    receive_into,
    serve,
    sha256_of,
    truncate,
)

GRAPH = "graph.instagram.com"
RUPLOAD = "rupload.facebook.com"
PUBLISH_SCOPE = "instagram_business_content_publish"
SCOPES = frozenset(
    {
        "instagram_business_basic",
        PUBLISH_SCOPE,
        "instagram_business_manage_messages",
        "instagram_business_manage_comments",
        "instagram_business_manage_insights",
    }
)
DEFAULT_SCOPES = ("instagram_business_basic", PUBLISH_SCOPE)
VERSION = re.compile(r"^v\d+\.\d+$")
USER_FIELDS = (
    "id",
    "user_id",
    "username",
    "name",
    "account_type",
    "profile_picture_url",
    "followers_count",
    "follows_count",
    "media_count",
)
CONTAINER_FIELDS = ("id", "status_code", "status")
MEDIA_FIELDS = (
    "id",
    "permalink",
    "caption",
    "media_type",
    "media_product_type",
    "timestamp",
    "shortcode",
    "username",
    "like_count",
    "comments_count",
)

CONSENT = ConsentRules(
    platform="instagram",
    title="Instagram",
    client_param="client_id",
    scope_separators=", ",
    known_scopes=SCOPES,
    required_scopes=frozenset({"instagram_business_basic"}),
    fragment="#_",
)


async def _serve(
    request: Request,
    fake: FakePlatforms,
    operation: str,
    work: Callable[[Call], Awaitable[Response]],
    graph: bool = True,
) -> Response:
    """serve() plus Meta's app usage: the X-App-Usage header on every answer, and code 4
    once the app has used its hourly calls (Graph endpoints only)."""
    calls = fake.calls_in_window("instagram.app", "app", 3600.0)
    budget = fake.rules.instagram_hourly_calls
    usage = min(100, calls * 100 // budget)

    async def throttled(call: Call) -> Response:
        if graph and calls > budget:
            raise graph_error(400, 4, "(#4) Application request limit reached", transient=True)
        return await work(call)

    response = await serve(request, fake, operation, throttled)
    response.headers["X-App-Usage"] = json.dumps(
        {"call_count": usage, "total_cputime": usage // 4, "total_time": usage // 2}
    )
    return response


# ---- OAuth ----------------------------------------------------------------------------


@get("/www.instagram.com/oauth/authorize", opt=PUBLIC)
async def authorize(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await _serve(request, fake, "instagram.authorize", lambda call: consent(call, CONSENT), graph=False)


@post("/api.instagram.com/oauth/access_token", opt=PUBLIC, request_max_body_size=SMALL_BODY)
async def access_token(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await _serve(request, fake, "instagram.token", _access_token, graph=False)


async def _access_token(call: Call) -> Response:
    fake = call.fake
    params = await form_params(call.request)
    call.record(params)
    client_id, secret = fake.clients["instagram"]
    if params.get("client_id") != client_id:
        raise instagram_oauth_error("Invalid platform app")
    if params.get("client_secret") != secret:
        raise instagram_oauth_error("Error validating client secret.")
    if params.get("grant_type") != "authorization_code":
        raise instagram_oauth_error("Invalid grant_type: only authorization_code is supported here.")
    grant, why = fake.redeem_code("instagram", params.get("code", ""))
    if grant is None:
        messages = {"used": "This authorization code has been used", "expired": "This authorization code has expired"}
        raise instagram_oauth_error(messages.get(why, "Invalid authorization code"))
    if grant["redirect_uri"] != params.get("redirect_uri"):
        raise instagram_oauth_error(
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you "
            "used in the OAuth dialog request"
        )
    short = fake.new_token("instagram", "short", grant["scopes"], client_id, fake.rules.instagram_short_ttl)
    # user_id is a JSON number here, as Instagram sends it.
    return ok(
        {
            "access_token": short["token"],
            "user_id": int(ACCOUNTS["instagram"]["id"]),
            "permissions": ",".join(grant["scopes"]),
        }
    )


@get("/graph.instagram.com/access_token", opt=PUBLIC)
async def exchange_token(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await _serve(request, fake, "instagram.exchange", _exchange)


async def _exchange(call: Call) -> Response:
    fake = call.fake
    params = dict(call.request.query_params)
    call.record(params)
    if params.get("grant_type") != "ig_exchange_token":
        raise graph_error(400, 100, "Unsupported grant_type: use ig_exchange_token.")
    if params.get("client_secret") != fake.clients["instagram"][1]:
        raise graph_error(400, 101, "Error validating client secret.")
    short = _token_or_error(fake, params.get("access_token"), kinds=("short", "long"))
    if short["kind"] != "short":
        raise graph_error(400, 100, "access_token must be a short-lived token.")
    return ok(_long_lived(fake, short))


def _long_lived(fake: FakePlatforms, source: dict[str, Any]) -> dict[str, Any]:
    ttl = fake.rules.instagram_long_ttl
    token = fake.new_token("instagram", "long", source["scopes"], source["client_id"], ttl)
    return {"access_token": token["token"], "token_type": "bearer", "expires_in": int(ttl)}


@get("/graph.instagram.com/refresh_access_token", opt=PUBLIC)
async def refresh_token(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await _serve(request, fake, "instagram.refresh", _refresh)


async def _refresh(call: Call) -> Response:
    fake = call.fake
    params = dict(call.request.query_params)
    call.record(params)
    if params.get("grant_type") != "ig_refresh_token":
        raise graph_error(400, 100, "Unsupported grant_type: use ig_refresh_token.")
    token = _token_or_error(fake, params.get("access_token"), kinds=("short", "long"))
    if token["kind"] != "long":
        raise graph_error(400, 100, "Only long-lived tokens can be refreshed.")
    if fake.clock() - token["issued_at"] < fake.rules.instagram_refresh_min_age:
        raise graph_error(400, 100, "A long-lived token can be refreshed only once it is at least 24 hours old.")
    answer = _long_lived(fake, token)  # the old token stays valid until its own expiry
    answer["permissions"] = ",".join(token["scopes"])
    return ok(answer)


def _token_or_error(
    fake: FakePlatforms, value: str | None, kinds: tuple[str, ...] = ("short", "long")
) -> dict[str, Any]:
    record, why = fake.token("instagram", value, kinds=kinds)
    if record is not None:
        return record
    if why == "missing":
        raise graph_error(400, 104, "An access token is required to request this resource.")
    if why == "expired":
        with fake.lock:
            expired_at = fake.data["tokens"][value or ""]["expires_at"]
        raise graph_error(
            400,
            190,
            f"Error validating access token: Session has expired on {_when(expired_at)}. "
            f"The current time is {_when(fake.clock())}.",
            subcode=463,
        )
    raise graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")


def _when(seconds: float) -> str:
    return time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(seconds))


# ---- Graph API ----------------------------------------------------------------------------


def _caller(call: Call, params: dict[str, str], user: str, *, publish: bool = False) -> dict[str, Any]:
    """The token's record, checked against the {ig-user-id} in the path."""
    value = params.get("access_token") or bearer_token(call.request, ("bearer", "oauth"))
    token = _token_or_error(call.fake, value)
    if user not in ("me", token["account"]):
        raise _no_object(user, "post" if call.request.method == "POST" else "get")
    if publish and PUBLISH_SCOPE not in token["scopes"]:
        raise graph_error(400, 10, "(#10) Application does not have permission for this action")
    return token


def _no_object(node: str, verb: str = "get") -> Exception:
    return graph_error(
        400,
        100,
        f"Unsupported {verb} request. Object with ID '{node}' does not exist, cannot be loaded due to missing "
        "permissions, or does not support this operation.",
        subcode=33,
    )


def _check_version(version: str) -> None:
    if not VERSION.match(version):
        raise graph_error(400, 2500, f"Unknown path components: /{version}")


def _fields(
    params: dict[str, str], known: tuple[str, ...], node_type: str, default: tuple[str, ...] = ("id",)
) -> list[str]:
    fields = [f.strip() for f in params.get("fields", "").split(",") if f.strip()] or list(default)
    if unknown := [f for f in fields if f not in known]:
        raise graph_error(
            400, 100, f"(#100) Tried accessing nonexisting field ({unknown[0]}) on node type ({node_type})"
        )
    return fields


@get("/graph.instagram.com/{version:str}/{node:str}", opt=PUBLIC)
async def read_node(
    request: Request, fake: NamedDependency[FakePlatforms], version: FromPath[str], node: FromPath[str]
) -> Response:
    with fake.lock:
        kind = "container" if node in fake.data["instagram"]["containers"] else None
        kind = kind or ("media" if node in fake.data["instagram"]["media"] else "user")
    operation = {"container": "instagram.status", "media": "instagram.media", "user": "instagram.me"}[kind]
    return await _serve(request, fake, operation, lambda call: _read_node(call, version, node, kind))


async def _read_node(call: Call, version: str, node: str, kind: str) -> Response:
    _check_version(version)
    params = dict(call.request.query_params)
    call.record({"node": node, **{k: v for k, v in params.items() if k != "access_token"}})
    if kind == "user":
        _caller(call, params, node)
        return ok(_user_fields(call.fake, _fields(params, USER_FIELDS, "IGUser")))
    token = _caller(call, params, "me")
    if kind == "media":
        with call.fake.lock:
            media = dict(call.fake.data["instagram"]["media"][node])
        if media["account"] != token["account"]:
            raise _no_object(node)
        return ok(_media_fields(media, _fields(params, MEDIA_FIELDS, "IGMedia")))
    fields = _fields(params, CONTAINER_FIELDS, "ShadowIGMediaBuilder")
    with call.fake.changing() as data:
        container = data["instagram"]["containers"][node]
        if container["account"] != token["account"]:
            raise _no_object(node)
        status_code, status = _container_status(call.fake, container, poll=True)
    everything = {"id": node, "status_code": status_code, "status": status}
    return ok({field: everything[field] for field in fields})


def _user_fields(fake: FakePlatforms, fields: list[str]) -> dict[str, Any]:
    account = ACCOUNTS["instagram"]
    everything = {
        "id": account["id"],  # the sandbox uses one id where Instagram has an app-scoped one too
        "user_id": account["id"],
        "username": account["username"],
        "name": account["name"],
        "account_type": "BUSINESS",
        "profile_picture_url": "",
        "followers_count": 0,
        "follows_count": 0,
        "media_count": fake.posts_since("instagram", 0),
    }
    return {field: everything[field] for field in fields}


def _media_fields(media: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    everything = {
        "id": media["id"],
        "permalink": f"https://www.instagram.com/reel/{media['shortcode']}/",
        "caption": media["caption"],
        "media_type": "VIDEO",
        "media_product_type": "REELS",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(media["created_at"])),
        "shortcode": media["shortcode"],
        "username": ACCOUNTS["instagram"]["username"],
        "like_count": 0,
        "comments_count": 0,
    }
    return {field: everything[field] for field in fields if field in everything}


def _container_status(fake: FakePlatforms, container: dict[str, Any], poll: bool = False) -> tuple[str, str]:
    """(status_code, status) now; a poll counts down the processing reads (call inside
    `changing()` when poll is True)."""
    if container["state"] == "published":
        return "PUBLISHED", "Published: Media has been published."
    if fake.clock() > container["created_at"] + fake.rules.instagram_container_ttl:
        return "EXPIRED", "Expired: The media container was not published within 24 hours."
    if container["state"] == "error":
        return "ERROR", container["status_message"]
    if container["state"] == "uploading":
        return "IN_PROGRESS", "In Progress: Waiting for the upload to finish."
    if container["polls_left"] > 0:
        if poll:
            container["polls_left"] -= 1
        return "IN_PROGRESS", "In Progress: Media is still being processed."
    return "FINISHED", "Finished: Media has been uploaded and it is ready to be published."


# ---- containers -----------------------------------------------------------------------------


@post("/graph.instagram.com/{version:str}/{user:str}/media", opt=PUBLIC, request_max_body_size=SMALL_BODY)
async def create_container(
    request: Request, fake: NamedDependency[FakePlatforms], version: FromPath[str], user: FromPath[str]
) -> Response:
    return await _serve(request, fake, "instagram.create", lambda call: _create(call, version, user))


async def _create(call: Call, version: str, user: str) -> Response:
    fake, rules = call.fake, call.fake.rules
    _check_version(version)
    params = await form_params(call.request)
    call.record({k: v for k, v in params.items() if k != "access_token"})
    token = _caller(call, params, user, publish=True)
    media_type = params.get("media_type")
    if media_type != "REELS":
        raise graph_error(
            400,
            100,
            f"The media type {media_type or '(none)'} is not supported here: the sandbox takes media_type=REELS.",
            subcode=2207023,
        )
    resumable = params.get("upload_type") == "resumable"
    if not resumable and not params.get("video_url"):
        raise graph_error(400, 100, "(#100) video_url or upload_type=resumable is required for REELS.")
    caption = params.get("caption", "")
    if len(caption) > rules.instagram_caption_max:
        raise graph_error(
            400, 100, f"The caption is longer than {rules.instagram_caption_max} characters.", subcode=2207010
        )
    if len(re.findall(r"(?<!\w)#\w", caption)) > rules.instagram_max_hashtags:
        raise graph_error(
            400, 100, f"The caption has more than {rules.instagram_max_hashtags} hashtags.", subcode=2207010
        )
    if len(re.findall(r"(?<!\w)@[\w.]", caption)) > rules.instagram_max_mentions:
        raise graph_error(
            400, 100, f"The caption mentions more than {rules.instagram_max_mentions} accounts.", subcode=2207010
        )
    if params.get("share_to_feed", "true") not in ("true", "false"):
        raise graph_error(400, 100, "(#100) share_to_feed must be true or false.")
    thumb = params.get("thumb_offset", "0")
    if not thumb.isdigit():
        raise graph_error(400, 100, "(#100) thumb_offset must be a non-negative integer (milliseconds).")

    container_id = numeric_id(17)
    container = {
        "id": container_id,
        "account": token["account"],
        "created_at": fake.clock(),
        "resumable": resumable,
        "caption": caption,
        "share_to_feed": params.get("share_to_feed", "true") == "true",
        "thumb_offset": int(thumb),
        "file_size": None,
        "received": 0,
        "state": "uploading",
        "status_message": "",
        "polls_left": 0,
        "media_id": None,
        "sha256": None,
    }
    if not resumable:  # the sandbox never downloads anything
        container["state"] = "error"
        container["status_message"] = (
            "Error: Media download has failed. The media URI doesn't meet our requirements "
            "(the sandbox does not fetch video_url: use upload_type=resumable). (2207052)"
        )
    with fake.changing() as data:
        data["instagram"]["containers"][container_id] = container
    answer = {"id": container_id}
    if resumable:
        answer["uri"] = f"{base_url(call.request, GRAPH)}/{RUPLOAD}/ig-api-upload/{version}/{container_id}"
    return ok(answer)


@get("/graph.instagram.com/{version:str}/{user:str}/media", opt=PUBLIC)
async def list_media(
    request: Request, fake: NamedDependency[FakePlatforms], version: FromPath[str], user: FromPath[str]
) -> Response:
    return await _serve(request, fake, "instagram.media", lambda call: _list_media(call, version, user))


async def _list_media(call: Call, version: str, user: str) -> Response:
    _check_version(version)
    params = dict(call.request.query_params)
    token = _caller(call, params, user)
    fields = _fields(params, MEDIA_FIELDS, "IGMedia")
    with call.fake.lock:
        media = [dict(m) for m in call.fake.data["instagram"]["media"].values() if m["account"] == token["account"]]
    media.sort(key=lambda m: m["created_at"], reverse=True)
    return ok({"data": [_media_fields(m, fields) for m in media]})


# ---- upload -------------------------------------------------------------------------------


@post("/rupload.facebook.com/ig-api-upload/{version:str}/{container_id:str}", opt=PUBLIC, request_max_body_size=None)
async def upload(
    request: Request, fake: NamedDependency[FakePlatforms], version: FromPath[str], container_id: FromPath[str]
) -> Response:
    return await _serve(request, fake, "instagram.upload", lambda call: _upload(call, container_id), graph=False)


async def _upload(call: Call, container_id: str) -> Response:
    fake, request = call.fake, call.request
    headers = request.headers
    declared = content_length(request)
    call.record({"offset": headers.get("offset"), "file_size": headers.get("file_size"), "content_length": declared})
    container = _open_upload(call, container_id)
    offset, file_size = headers.get("offset", ""), headers.get("file_size", "")
    if not offset.isdigit() or not file_size.isdigit() or int(file_size) == 0:
        raise rupload_error(400, "ProcessingFailedError", "The offset and file_size headers are required.")
    offset_n, size = int(offset), int(file_size)
    if size > fake.rules.instagram_max_file_size:
        raise rupload_error(
            400, "ProcessingFailedError", f"file_size is over {fake.rules.instagram_max_file_size} bytes."
        )
    # Strict as the host: bytes it holds are kept, so an upload goes on at exactly the
    # offset it holds (ask with a GET on the upload URI); no restart from 0 over them.
    if offset_n != container["received"] or (container["file_size"] not in (None, size)):
        raise rupload_error(
            400, "ProcessingFailedError",
            f"offset must be {container['received']}, the bytes this upload holds (GET the upload URI to ask).",
        )
    if declared is None or offset_n + declared > size:
        raise rupload_error(400, "ProcessingFailedError", "Content-Length is missing or runs past file_size.")

    if not fake.claim(container_id):
        raise rupload_error(400, "ProcessingFailedError", "Another upload to this container is in progress.")
    path = fake.upload_path(f"instagram-{container_id}")
    try:
        got = await receive_into(request, path, offset_n)
        if got != declared:
            await truncate(path, offset_n)
            _set(fake, container_id, received=offset_n, file_size=size)
            raise rupload_error(
                400, "ProcessingFailedError", f"The body has {got} bytes; Content-Length said {declared}."
            )
        if call.keep_bytes is not None and call.keep_bytes < got:
            got = call.keep_bytes  # Meta keeps every byte that arrived
            await truncate(path, offset_n + got)
        received = offset_n + got
        _set(fake, container_id, received=received, file_size=size)
        if received == size:
            await _finish_upload(fake, container_id, path)
        return ok({"success": True})
    finally:
        fake.release(container_id)


def _refuse_finished_upload(fake: FakePlatforms, container: dict[str, Any]) -> None:
    """What the real host answers once a container has every byte, or is past use."""
    status_code, _ = _container_status(fake, container)
    if container["state"] != "uploading" or status_code in ("EXPIRED", "PUBLISHED", "ERROR"):
        raise rupload_error(400, "ProcessingFailedError", "The upload is complete or expired.")


@get("/rupload.facebook.com/ig-api-upload/{version:str}/{container_id:str}", opt=PUBLIC)
async def upload_offset(
    request: Request, fake: NamedDependency[FakePlatforms], version: FromPath[str], container_id: FromPath[str]
) -> Response:
    return await _serve(
        request, fake, "instagram.upload_offset", lambda call: _upload_offset(call, container_id), graph=False
    )


def _open_upload(call: Call, container_id: str) -> dict:
    """The caller's resumable container still taking bytes (a copy), or the host's error."""
    fake = call.fake
    token, _ = fake.token("instagram", bearer_token(call.request, ("oauth",)), kinds=("short", "long"))
    if token is None:
        raise rupload_error(401, "AuthError", "Invalid OAuth access token (send Authorization: OAuth <token>).")
    with fake.lock:
        found = fake.data["instagram"]["containers"].get(container_id)
        container = dict(found) if found else None
    if container is None or container["account"] != token["account"] or not container["resumable"]:
        raise rupload_error(400, "ProcessingFailedError", f"No resumable upload container {container_id}.")
    _refuse_finished_upload(fake, container)
    return container


async def _upload_offset(call: Call, container_id: str) -> Response:
    """Where an unfinished upload stands: {"offset": bytes held}."""
    call.record({"container": container_id})
    container = _open_upload(call, container_id)
    return ok({"offset": container["received"]})


def _set(fake: FakePlatforms, container_id: str, **fields: Any) -> None:
    with fake.changing() as data:
        data["instagram"]["containers"][container_id].update(fields)


async def _finish_upload(fake: FakePlatforms, container_id: str, path: Path) -> None:
    """All bytes are in: judge the file as Instagram would, then start processing."""
    problem = mp4.problem(path, faststart=True)
    duration = mp4.duration_seconds(path) if problem is None else None
    digest = await sha256_of(path)
    with fake.changing() as data:
        container = data["instagram"]["containers"][container_id]
        container["sha256"] = digest
        if problem:
            container.update(
                state="error", status_message=f"Error: Media upload has failed with error code 2207026. {problem}"
            )
        elif duration is not None and container["thumb_offset"] > duration * 1000:
            container.update(
                state="error",
                status_message="Error: Thumbnail offset must be greater than or equal to 0 and less than video "
                f"duration ({int(duration * 1000)} ms). (2207057)",
            )
        else:
            container.update(state="processing", polls_left=fake.rules.instagram_processing_polls)
    if problem:
        path.unlink(missing_ok=True)


# ---- publish and limits --------------------------------------------------------------------


@post("/graph.instagram.com/{version:str}/{user:str}/media_publish", opt=PUBLIC, request_max_body_size=SMALL_BODY)
async def publish(
    request: Request, fake: NamedDependency[FakePlatforms], version: FromPath[str], user: FromPath[str]
) -> Response:
    return await _serve(request, fake, "instagram.publish", lambda call: _publish(call, version, user))


async def _publish(call: Call, version: str, user: str) -> Response:
    fake, rules = call.fake, call.fake.rules
    _check_version(version)
    params = await form_params(call.request)
    call.record({k: v for k, v in params.items() if k != "access_token"})
    token = _caller(call, params, user, publish=True)
    creation_id = params.get("creation_id", "")
    with fake.changing() as data:
        container = data["instagram"]["containers"].get(creation_id)
        if container is None or container["account"] != token["account"]:
            raise graph_error(400, 24, "The media builder does not exist or has expired.", subcode=2207008)
        status_code, status = _container_status(fake, container)
        if status_code == "PUBLISHED":
            raise graph_error(
                400,
                100,
                f"(#100) The container {creation_id} has been published already (media {container['media_id']}).",
            )
        if status_code == "EXPIRED":
            raise graph_error(
                400, -2, "The media you are trying to access has expired. Please try to upload again.", subcode=2207020
            )
        if status_code != "FINISHED":
            raise graph_error(
                400,
                9007,
                f"The media is not ready for publishing, please wait for a moment ({status})",
                subcode=2207027,
            )
        if fake.posts_since("instagram", fake.clock() - DAY) >= rules.instagram_daily_posts:
            raise graph_error(
                400,
                9,
                "You reached maximum number of posts allowed by Content Publishing API within 24 hours.",
                subcode=2207042,
            )
        media_id = numeric_id(17)
        path = fake.upload_path(f"instagram-{creation_id}")
        size = path.stat().st_size if path.exists() else container["file_size"]
        container.update(state="published", media_id=media_id)
        data["instagram"]["media"][media_id] = {
            "id": media_id,
            "account": token["account"],
            "container_id": creation_id,
            "caption": container["caption"],
            "created_at": fake.clock(),
            "shortcode": secrets.token_urlsafe(8)[:11],
        }
        fake.add_post(
            "instagram",
            media_id,
            caption=container["caption"],
            size=size,
            sha256=container["sha256"],
            container_id=creation_id,
            shortcode=data["instagram"]["media"][media_id]["shortcode"],
            settings={"share_to_feed": container["share_to_feed"], "thumb_offset": container["thumb_offset"]},
        )
        fake.keep_posted(path, "instagram", media_id)
    path.unlink(missing_ok=True)
    return ok({"id": media_id})


@get("/graph.instagram.com/{version:str}/{user:str}/content_publishing_limit", opt=PUBLIC)
async def publishing_limit(
    request: Request, fake: NamedDependency[FakePlatforms], version: FromPath[str], user: FromPath[str]
) -> Response:
    return await _serve(request, fake, "instagram.limit", lambda call: _limit(call, version, user))


async def _limit(call: Call, version: str, user: str) -> Response:
    fake = call.fake
    _check_version(version)
    params = dict(call.request.query_params)
    _caller(call, params, user)
    fields = _fields(params, ("quota_usage", "config"), "ContentPublishingLimit", default=("quota_usage", "config"))
    everything = {
        "quota_usage": fake.posts_since("instagram", fake.clock() - DAY),
        "config": {"quota_total": fake.rules.instagram_daily_posts, "quota_duration": int(DAY)},
    }
    return json_response(200, {"data": [{field: everything[field] for field in fields}]})


ROUTES = [
    authorize,
    access_token,
    exchange_token,
    refresh_token,
    read_node,
    create_container,
    list_media,
    upload,
    upload_offset,
    publish,
    publishing_limit,
]


def grant_tokens(fake: FakePlatforms, client_id: str, scopes: list[str]) -> dict[str, Any]:
    """A long-lived token, as if the code and the short-lived token had been exchanged."""
    ttl = fake.rules.instagram_long_ttl
    token = fake.new_token("instagram", "long", scopes, client_id, ttl)
    return {
        "access_token": token["token"],
        "token_type": "bearer",
        "expires_in": int(ttl),
        "user_id": ACCOUNTS["instagram"]["id"],
    }
