"""Fake Google OAuth and YouTube Data API v3: channels.list, videos.list and the
resumable videos.insert upload exactly as google-api-python-client drives it, and
captions.insert (a caption track for an uploaded video, sent as multipart/related).

The client library, built from its bundled discovery document with rootUrl set to
BASE/youtube.googleapis.com/, starts the upload with POST
BASE/youtube.googleapis.com/upload/youtube/v3/videos?uploadType=resumable&part=...
and PUTs the chunks to the session URI answered in Location (same path, plus
upload_id). The video exists, and is counted as a post, once the last byte is stored.
Quotas count per Pacific day, as Google's do.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import json
import secrets
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import srt
import webvtt
import webvtt.errors
from litestar import Request, Response, get, post, put
from litestar.di import NamedDependency

from vidprod.sandbox.errors import google_error, google_oauth_error, ok, page_error
from vidprod.sandbox.state import ACCOUNTS, FakePlatforms
from vidprod.sandbox.web import (
    PUBLIC,
    SMALL_BODY,
    Call,
    ConsentRules,
    base_url,
    bearer_token,
    client_credentials,
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

API = "youtube.googleapis.com"
UPLOAD_PATH = "/youtube.googleapis.com/upload/youtube/v3/videos"
THUMBNAIL_PATH = "/youtube.googleapis.com/upload/youtube/v3/thumbnails/set"
THUMBNAIL_TYPES = ("image/jpeg", "image/png", "application/octet-stream")
CAPTIONS_PATH = "/youtube.googleapis.com/upload/youtube/v3/captions"
MAX_CAPTION_BYTES = 100 * 1024 * 1024  # the discovery document's maxSize
PACIFIC = ZoneInfo("America/Los_Angeles")
AUTH = "https://www.googleapis.com/auth/"
READ_SCOPES = {AUTH + "youtube", AUTH + "youtube.readonly", AUTH + "youtube.force-ssl", AUTH + "youtubepartner"}
CAPTION_SCOPES = {AUTH + "youtube.force-ssl", AUTH + "youtubepartner"}
UPLOAD_SCOPES = {AUTH + "youtube", AUTH + "youtube.upload", AUTH + "youtube.force-ssl", AUTH + "youtubepartner"}
SCOPES = frozenset(
    READ_SCOPES | UPLOAD_SCOPES | {"openid", "email", "profile", AUTH + "userinfo.email", AUTH + "userinfo.profile"}
)
DEFAULT_SCOPES = (AUTH + "youtube.upload", AUTH + "youtube.readonly")
PRIVACY = ("public", "private", "unlisted")
VIDEO_PARTS = frozenset(
    {
        "id",
        "snippet",
        "status",
        "contentDetails",
        "fileDetails",
        "liveStreamingDetails",
        "localizations",
        "player",
        "processingDetails",
        "recordingDetails",
        "statistics",
        "suggestions",
        "topicDetails",
    }
)
CHANNEL_PARTS = frozenset(
    {
        "id",
        "snippet",
        "contentDetails",
        "statistics",
        "status",
        "brandingSettings",
        "topicDetails",
        "localizations",
        "contentOwnerDetails",
        "auditDetails",
    }
)

CONSENT = ConsentRules(
    platform="youtube",
    title="Google (YouTube)",
    client_param="client_id",
    scope_separators=" ",
    known_scopes=SCOPES,
    scopes_in_redirect="scope",
)


def pacific_day(seconds: float) -> str:
    """Google's daily quotas reset at midnight Pacific time."""
    return datetime.fromtimestamp(seconds, PACIFIC).date().isoformat()


# ---- OAuth ----------------------------------------------------------------------------


@get("/accounts.google.com/o/oauth2/v2/auth", opt=PUBLIC)
async def authorize(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "youtube.authorize", _authorize)


async def _authorize(call: Call) -> Response:
    if call.request.query_params.get("access_type", "online") not in ("online", "offline"):
        raise page_error(400, "access_type must be online or offline.")
    return await consent(call, CONSENT)


@post("/oauth2.googleapis.com/token", opt=PUBLIC, request_max_body_size=SMALL_BODY)
async def token(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "youtube.token", _token)


async def _token(call: Call) -> Response:
    fake = call.fake
    params = await form_params(call.request)
    call.record(params)
    client_id, secret = client_credentials(call.request, params)
    if (client_id, secret) != fake.clients["youtube"]:
        raise google_oauth_error(401, "invalid_client", "Unauthorized")
    grant_type = params.get("grant_type")
    ttl = fake.rules.youtube_access_ttl
    if grant_type == "authorization_code":
        grant, why = fake.redeem_code("youtube", params.get("code", ""))
        if grant is None:
            raise google_oauth_error(
                400, "invalid_grant", "Malformed auth code." if why == "unknown" else "Bad Request"
            )
        if grant["client_id"] != client_id:
            raise google_oauth_error(400, "invalid_grant", "Bad Request")
        if grant["redirect_uri"] != params.get("redirect_uri"):
            raise google_oauth_error(400, "redirect_uri_mismatch", "Bad Request")
        if grant["code_challenge"]:
            verifier = params.get("code_verifier")
            if not verifier:
                raise google_oauth_error(400, "invalid_grant", "Missing code verifier.")
            if not pkce_matches(grant["code_challenge"], grant["code_challenge_method"], verifier):
                raise google_oauth_error(400, "invalid_grant", "Invalid code verifier.")
        return ok(grant_tokens(fake, client_id, grant["scopes"], offline=grant["access_type"] == "offline"))
    if grant_type == "refresh_token":
        refresh, _ = fake.token("youtube", params.get("refresh_token"), kinds=("refresh",))
        if refresh is None or refresh["client_id"] != client_id:
            raise google_oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        access = fake.new_token("youtube", "access", refresh["scopes"], client_id, ttl)
        # Google keeps the refresh token: the answer has none.
        return ok(
            {
                "access_token": access["token"],
                "expires_in": int(ttl),
                "scope": " ".join(refresh["scopes"]),
                "token_type": "Bearer",
            }
        )
    raise google_oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")


def grant_tokens(fake: FakePlatforms, client_id: str, scopes: list[str], offline: bool = True) -> dict[str, Any]:
    """The token endpoint's answer to a code exchange; a refresh token only for offline access."""
    ttl = fake.rules.youtube_access_ttl
    access = fake.new_token("youtube", "access", scopes, client_id, ttl)
    answer = {
        "access_token": access["token"],
        "expires_in": int(ttl),
        "scope": " ".join(scopes),
        "token_type": "Bearer",
    }
    if offline:
        answer["refresh_token"] = fake.new_token("youtube", "refresh", scopes, client_id, 10 * 365 * 86400.0)["token"]
    return answer


def _access(call: Call, scopes: set[str], value: str | None = None) -> dict[str, Any]:
    value = value or bearer_token(call.request) or call.request.query_params.get("access_token")
    record, _ = call.fake.token("youtube", value)
    if record is None:
        raise google_error(
            401,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
            "valid authentication credential.",
            location="Authorization",
            locationType="header",
        )
    if not scopes & set(record["scopes"]):
        raise google_error(403, "insufficientPermissions", "Request had insufficient authentication scopes.")
    return record


def _parts(call: Call, known: frozenset[str]) -> list[str]:
    parts = [p.strip() for p in call.request.query_params.get("part", "").split(",") if p.strip()]
    if not parts:
        raise google_error(400, "required", "Required parameter: part", location="part", locationType="parameter")
    if unknown := [p for p in parts if p not in known]:
        raise google_error(
            400, "unknownPart", unknown[0], domain="youtube.part", location="part", locationType="parameter"
        )
    return parts


# ---- channels and videos ------------------------------------------------------------------


@get("/youtube.googleapis.com/youtube/v3/channels", opt=PUBLIC)
async def channels(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "youtube.channels", _channels)


async def _channels(call: Call) -> Response:
    params = call.request.query_params
    call.record(dict(params))
    token = _access(call, READ_SCOPES)
    parts = _parts(call, CHANNEL_PARTS)
    account = ACCOUNTS["youtube"]
    if params.get("mine") == "true":
        ids = [token["account"]]
    elif params.get("id"):
        ids = [i for i in params["id"].split(",") if i == account["id"]]
    else:
        raise google_error(400, "missingRequiredParameter", "No filter selected. Expected one of: id, mine, forHandle.")
    channel = {
        "id": account["id"],
        "snippet": {
            "title": account["name"],
            "description": "The vidprod sandbox's YouTube channel.",
            "customUrl": account["username"],
            "publishedAt": "2026-01-01T00:00:00Z",
            "thumbnails": {},
        },
        "contentDetails": {"relatedPlaylists": {"likes": "", "uploads": "UU" + account["id"][2:]}},
        "statistics": {
            "videoCount": str(call.fake.posts_since("youtube", 0)),
            "subscriberCount": "0",
            "viewCount": "0",
        },
        "status": {"privacyStatus": "public", "isLinked": True, "longUploadsStatus": "allowed"},
    }
    items = [_resource("youtube#channel", channel, parts) for _ in ids]
    return ok(_list("youtube#channelListResponse", items))


@get("/youtube.googleapis.com/youtube/v3/videos", opt=PUBLIC)
async def videos(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "youtube.videos", _videos)


async def _videos(call: Call) -> Response:
    fake = call.fake
    params = call.request.query_params
    call.record(dict(params))
    token = _access(call, READ_SCOPES)
    parts = _parts(call, VIDEO_PARTS)
    if not params.get("id"):
        raise google_error(400, "missingRequiredParameter", "No filter selected. The sandbox supports: id.")
    with fake.lock:
        stored = fake.data["youtube"]["videos"]
        found = [dict(stored[i]) for i in params["id"].split(",") if i in stored]
    items = [_resource("youtube#video", _video_now(fake, v), parts) for v in found if v["channel"] == token["account"]]
    return ok(_list("youtube#videoListResponse", items))


def _video_now(fake: FakePlatforms, video: dict[str, Any]) -> dict[str, Any]:
    """The stored video as YouTube shows it now: processed, and public once publishAt passed."""
    status = dict(video["status"], uploadStatus="processed")
    publish_at = status.get("publishAt")
    if publish_at and datetime.fromisoformat(publish_at).timestamp() <= fake.clock():
        status["privacyStatus"] = "public"
        del status["publishAt"]
    return {
        "id": video["id"],
        "snippet": video["snippet"],
        "status": status,
        "processingDetails": {"processingStatus": "succeeded"},
    }


def _resource(kind: str, fields: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    resource = {"kind": kind, "etag": secrets.token_urlsafe(20), "id": fields["id"]}
    resource.update({part: fields[part] for part in parts if part in fields and part != "id"})
    return resource


def _list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": kind,
        "etag": secrets.token_urlsafe(20),
        "pageInfo": {"totalResults": len(items), "resultsPerPage": max(len(items), 5)},
        "items": items,
    }


@post("/youtube.googleapis.com/youtube/v3/videos", opt=PUBLIC, request_max_body_size=SMALL_BODY)
async def insert_without_media(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    async def refuse(call: Call) -> Response:
        _access(call, UPLOAD_SCOPES)
        raise google_error(
            400, "mediaBodyRequired", "The request does not include the video content.", domain="youtube.video"
        )

    return await serve(request, fake, "youtube.insert", refuse)


# ---- videos.insert: start a resumable session --------------------------------------------


@post(UPLOAD_PATH, opt=PUBLIC, request_max_body_size=SMALL_BODY)
async def insert(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "youtube.insert", _insert)


async def _insert(call: Call) -> Response:
    fake, rules, request = call.fake, call.fake.rules, call.request
    token = _access(call, UPLOAD_SCOPES)
    body = await json_body(request)
    declared_size = request.headers.get("x-upload-content-length", "")
    declared_type = request.headers.get("x-upload-content-type", "")
    call.record(
        {
            "query": dict(request.query_params),
            "body": body,
            "x_upload_content_length": declared_size,
            "x_upload_content_type": declared_type,
        }
    )
    # Every call that gets past authentication costs quota, valid or not (as Google charges).
    today = pacific_day(fake.clock())
    with fake.changing() as data:
        key = f"{token['client_id']}|{today}"
        if data["youtube"]["inserts"].get(key, 0) >= rules.youtube_daily_inserts:
            raise google_error(
                403,
                "quotaExceeded",
                "The request cannot be completed because you have exceeded your "
                '<a href="/youtube/v3/getting-started#quota">quota</a>.',
                domain="youtube.quota",
            )
        data["youtube"]["inserts"][key] = data["youtube"]["inserts"].get(key, 0) + 1
    if request.query_params.get("uploadType") != "resumable":
        raise google_error(400, "badRequest", "The sandbox accepts videos.insert only with uploadType=resumable.")
    parts = _parts(call, VIDEO_PARTS)
    snippet, status = _check_metadata(fake, body, parts)
    if not declared_size.isdigit() or int(declared_size) == 0:
        raise google_error(400, "badRequest", "X-Upload-Content-Length (the video's size in bytes) is required.")
    if int(declared_size) > rules.youtube_max_file_size:
        raise google_error(400, "badRequest", f"The video is larger than {rules.youtube_max_file_size} bytes.")
    if not (declared_type.startswith("video/") or declared_type == "application/octet-stream"):
        raise google_error(400, "badRequest", "X-Upload-Content-Type must be video/* or application/octet-stream.")
    uploads_today = sum(
        1 for p in fake.posts("youtube") if p["account"] == token["account"] and pacific_day(p["published_at"]) == today
    )
    if uploads_today >= rules.youtube_daily_uploads:
        raise google_error(
            400,
            "uploadLimitExceeded",
            "The user has exceeded the number of videos they may upload.",
            domain="youtube.video",
        )
    upload_id = "ABPtcP" + secrets.token_urlsafe(48)
    with fake.changing() as data:
        data["youtube"]["sessions"][upload_id] = {
            "upload_id": upload_id,
            "channel": token["account"],
            "client_id": token["client_id"],
            "created_at": fake.clock(),
            "size": int(declared_size),
            "content_type": declared_type,
            "received": 0,
            "snippet": snippet,
            "status": status,
            "parts": parts,
            "video_id": None,
        }
    location = f"{base_url(request, API)}{UPLOAD_PATH}?uploadType=resumable&upload_id={upload_id}"
    return Response(content=b"", status_code=200, headers={"Location": location, "X-GUploader-UploadID": upload_id})


def _check_metadata(fake: FakePlatforms, body: Any, parts: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """snippet and status as YouTube checks them, and a little stricter where a
    forgotten field is a bug (selfDeclaredMadeForKids, a part sent but not listed)."""
    if not isinstance(body, dict):
        raise google_error(
            400,
            "invalidVideoMetadata",
            "The request metadata (a JSON video resource) is missing.",
            domain="youtube.video",
        )
    if unlisted := [p for p in body if p in VIDEO_PARTS and p not in parts]:
        raise google_error(
            400, "badRequest", f"The body sets '{unlisted[0]}' but part does not list it: it would be ignored."
        )
    snippet, status = body.get("snippet"), body.get("status")
    if not isinstance(snippet, dict) or not isinstance(status, dict):
        raise google_error(
            400, "invalidVideoMetadata", "The sandbox needs both snippet and status.", domain="youtube.video"
        )
    title = snippet.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= 100 or "<" in title or ">" in title:
        raise google_error(
            400,
            "invalidTitle",
            "The request metadata specifies an invalid or empty video title.",
            domain="youtube.video",
        )
    description = snippet.get("description", "")
    if not isinstance(description, str) or len(description.encode()) > 5000 or "<" in description or ">" in description:
        raise google_error(
            400,
            "invalidDescription",
            "The request metadata specifies an invalid video description.",
            domain="youtube.video",
        )
    tags = snippet.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags) or sum(len(t) for t in tags) > 500:
        raise google_error(
            400, "invalidTags", "The request metadata specifies invalid video keywords.", domain="youtube.video"
        )
    if "categoryId" in snippet and not str(snippet["categoryId"]).isdigit():
        raise google_error(
            400,
            "invalidCategoryId",
            "The snippet.categoryId property specifies an invalid category ID.",
            domain="youtube.video",
        )
    privacy = status.get("privacyStatus")
    if privacy not in PRIVACY:
        raise google_error(
            400,
            "invalidVideoMetadata",
            f"status.privacyStatus must be one of {', '.join(PRIVACY)}.",
            domain="youtube.video",
        )
    if not isinstance(status.get("selfDeclaredMadeForKids"), bool):
        raise google_error(
            400,
            "invalidVideoMetadata",
            "status.selfDeclaredMadeForKids (true or false) is required by the sandbox.",
            domain="youtube.video",
        )
    if "publishAt" in status:
        try:
            when = datetime.fromisoformat(str(status["publishAt"]))
        except ValueError:
            when = None
        if privacy != "private" or when is None or when.tzinfo is None or when.timestamp() <= fake.clock():
            raise google_error(
                400,
                "invalidPublishAt",
                "The request metadata specifies an invalid scheduled publishing time: publishAt must be a future "
                "time with a zone, and privacyStatus must be private.",
                domain="youtube.video",
            )
    return dict(snippet), dict(status)


# ---- videos.insert: chunks ----------------------------------------------------------------


@put(UPLOAD_PATH, opt=PUBLIC, request_max_body_size=None)
async def upload(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "youtube.upload", _upload)


async def _upload(call: Call) -> Response:
    fake, request = call.fake, call.request
    gran = fake.rules.youtube_chunk_granularity
    declared = content_length(request)
    call.record({"content_range": request.headers.get("content-range"), "content_length": declared})
    upload_id = request.query_params.get("upload_id", "")
    with fake.lock:
        found = fake.data["youtube"]["sessions"].get(upload_id)
        session = dict(found) if found else None
    if session is None:
        raise google_error(404, "notFound", "The upload session does not exist.")
    if request.headers.get("authorization"):  # the session URI is the credential; a token sent must be valid
        _access(call, UPLOAD_SCOPES)
    span = parse_content_range(request.headers.get("content-range"))
    if span is None:
        raise google_error(400, "badRequest", "Content-Range must be bytes {first}-{last}/{total} or bytes */{total}.")
    first, last, total = span
    if total != session["size"]:
        raise google_error(
            400, "badRequest", f"The total in Content-Range must be X-Upload-Content-Length ({session['size']})."
        )
    if session["video_id"]:  # done already: every question about it gets the video
        return ok(_video_resource(fake, session["video_id"]))
    if first is None or last is None:  # a status query: how much has arrived?
        if declared:
            raise google_error(400, "badRequest", "A status query (bytes */total) has an empty body.")
        return _resume_incomplete(session["received"])
    if first != session["received"]:
        raise google_error(
            400,
            "badRequest",
            f"Content-Range must start at byte {session['received']}, the first one not yet received.",
        )
    if declared is None or declared != last - first + 1:
        raise google_error(400, "badRequest", "Content-Length must match Content-Range.")
    final = last + 1 == total
    if not final and declared % gran:
        raise google_error(
            400,
            "badRequest",
            f"Invalid request. The number of bytes uploaded is required to be a multiple of {gran}, except for the "
            f"final request. The received request contained {declared} bytes, which does not meet this requirement.",
        )

    if not fake.claim(upload_id):
        raise google_error(409, "conflict", "Another request is uploading to this session.")
    path = fake.upload_path(f"youtube-{upload_id}")
    try:
        got = await receive_into(request, path, first)
        if got != declared:
            await truncate(path, first)
            raise google_error(400, "badRequest", f"The body has {got} bytes; Content-Length said {declared}.")
        if call.keep_bytes is not None and call.keep_bytes < got:
            kept = call.keep_bytes // gran * gran  # Google keeps whole multiples of 256 KiB
            await truncate(path, first + kept)
            _set(fake, upload_id, received=first + kept)
            return _resume_incomplete(first + kept)
        _set(fake, upload_id, received=last + 1)
        if not final:
            return _resume_incomplete(last + 1)
        video_id = await _finish(fake, upload_id, path)
        return ok(_video_resource(fake, video_id))
    finally:
        fake.release(upload_id)


def _resume_incomplete(received: int) -> Response:
    """308 with the bytes stored so far; no Range header when there are none."""
    headers = {"Range": f"bytes=0-{received - 1}"} if received else {}
    return Response(content=b"", status_code=308, headers=headers)


def _set(fake: FakePlatforms, upload_id: str, **fields: Any) -> None:
    with fake.changing() as data:
        data["youtube"]["sessions"][upload_id].update(fields)


async def _finish(fake: FakePlatforms, upload_id: str, path: Any) -> str:
    """Every byte is in: the video exists and counts as a post; only size and hash stay."""
    digest = await sha256_of(path)
    size = path.stat().st_size
    video_id = secrets.token_urlsafe(8)[:11]
    now = fake.clock()
    with fake.changing() as data:
        session = data["youtube"]["sessions"][upload_id]
        status = dict(session["status"])
        if fake.rules.youtube_unverified_project:  # Google locks uploads from unaudited projects to private
            status["privacyStatus"] = "private"
        snippet = {
            "publishedAt": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "channelId": session["channel"],
            "title": session["snippet"]["title"],
            "description": session["snippet"].get("description", ""),
            "thumbnails": {},
            "channelTitle": ACCOUNTS["youtube"]["name"],
            "tags": session["snippet"].get("tags", []),
            "categoryId": str(session["snippet"].get("categoryId", "22")),
            "liveBroadcastContent": "none",
        }
        status.update(
            uploadStatus="uploaded",
            license=status.get("license", "youtube"),
            embeddable=status.get("embeddable", True),
            publicStatsViewable=status.get("publicStatsViewable", True),
            madeForKids=status["selfDeclaredMadeForKids"],
        )
        data["youtube"]["videos"][video_id] = {
            "id": video_id,
            "channel": session["channel"],
            "snippet": snippet,
            "status": status,
        }
        session["video_id"] = video_id
        fake.add_post(
            "youtube",
            video_id,
            title=snippet["title"],
            caption=snippet["description"],
            privacy=status["privacyStatus"],
            size=size,
            sha256=digest,
            scheduled_at=status.get("publishAt"),
            settings={"selfDeclaredMadeForKids": status["selfDeclaredMadeForKids"], "tags": snippet["tags"]},
        )
        fake.keep_posted(path, "youtube", video_id)
    path.unlink(missing_ok=True)
    return video_id


def _video_resource(fake: FakePlatforms, video_id: str) -> dict[str, Any]:
    with fake.lock:
        video = dict(fake.data["youtube"]["videos"][video_id])
    return {
        "kind": "youtube#video",
        "etag": secrets.token_urlsafe(20),
        **{k: video[k] for k in ("id", "snippet", "status")},
    }


# ---- thumbnails.set --------------------------------------------------------------------------


@post(THUMBNAIL_PATH, opt=PUBLIC, request_max_body_size=SMALL_BODY * 4)
async def thumbnail(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "youtube.thumbnails", _thumbnail)


async def _thumbnail(call: Call) -> Response:
    """A simple (uploadType=media) upload of one picture for a video of the caller's
    channel, checked as YouTube does: the type, 2 MB, a picture that decodes, and a
    channel allowed custom thumbnails (verified) — else 403 forbidden."""
    fake, request = call.fake, call.request
    token = _access(call, UPLOAD_SCOPES)
    params = request.query_params
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    call.record({"query": dict(params), "content_type": content_type, "size": len(body),
                 "sha256": hashlib.sha256(body).hexdigest()})  # fmt: skip
    if params.get("uploadType") not in ("media", "multipart"):
        raise google_error(400, "badRequest", "The sandbox takes thumbnails.set with uploadType=media or multipart.")
    video_id = params.get("videoId")
    if not video_id:
        raise google_error(400, "required", "Required parameter: videoId", location="videoId", locationType="parameter")
    with fake.lock:
        video = fake.data["youtube"]["videos"].get(video_id)
    if video is None or video["channel"] != token["account"]:
        raise google_error(404, "videoNotFound", "The video that you are trying to update cannot be found.",
                           domain="youtube.thumbnail")  # fmt: skip
    if not fake.rules.youtube_custom_thumbnails:
        raise google_error(403, "forbidden", "The authenticated user doesn't have permissions to upload and set custom "
                           "video thumbnails.", domain="youtube.thumbnail")  # fmt: skip
    if content_type not in THUMBNAIL_TYPES:
        raise google_error(400, "invalidImage", f"The thumbnail is {content_type or 'untyped'}; JPEG or PNG only.",
                           domain="youtube.thumbnail")  # fmt: skip
    if len(body) > fake.rules.youtube_max_thumbnail:
        raise google_error(413, "mediaBodyTooLarge", "The thumbnail image file is too large (2 MB at most).",
                           domain="youtube.thumbnail")  # fmt: skip
    picture = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR) if body else None
    if picture is None:
        raise google_error(400, "invalidImage", "The provided image content is invalid.", domain="youtube.thumbnail")
    height, width = picture.shape[:2]
    shown = {"url": f"{base_url(request, API)}/vi/{video_id}/custom.jpg", "width": width, "height": height}
    with fake.changing() as data:
        data["youtube"]["videos"][video_id]["snippet"]["thumbnails"] = {"default": shown}
        for post in data["posts"]:
            if post["platform"] == "youtube" and post["id"] == video_id:
                post["thumbnail"] = {"sha256": hashlib.sha256(body).hexdigest(), "width": width, "height": height}
    return ok({"kind": "youtube#thumbnailSetResponse", "etag": secrets.token_urlsafe(20), "items": [{"default": shown}]})


# ---- captions.insert ----------------------------------------------------------------------


@post(CAPTIONS_PATH, opt=PUBLIC, request_max_body_size=MAX_CAPTION_BYTES + SMALL_BODY)
async def insert_caption(request: Request, fake: NamedDependency[FakePlatforms]) -> Response:
    return await serve(request, fake, "youtube.captions", _insert_caption)


async def _insert_caption(call: Call) -> Response:
    """As Google checks it: the scope (youtube.upload alone is not enough), part=snippet,
    a multipart/related body of the snippet (videoId, language, name) and the track, a
    video of the caller's channel, a track it can read (SRT or WebVTT here), and no
    second track of the same language and name."""
    fake, request = call.fake, call.request
    token = _access(call, CAPTION_SCOPES)
    _parts(call, frozenset({"id", "snippet"}))
    upload_type = request.query_params.get("uploadType")
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    if upload_type != "multipart" or not content_type.startswith("multipart/related"):
        raise google_error(400, "invalidMetadata", "The request must send the caption's snippet and its file "
                           "together (uploadType=multipart).", domain="youtube.caption")  # fmt: skip
    # The standard library's MIME parser reads multipart/related as Google sends it.
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    parts = list(message.iter_parts()) if message.is_multipart() else []
    if len(parts) != 2 or parts[0].get_content_type() != "application/json":
        raise google_error(400, "invalidMetadata", "The body must be the snippet (JSON) and then the track.",
                           domain="youtube.caption")  # fmt: skip
    try:
        body = json.loads(parts[0].get_payload(decode=True) or b"")
        snippet = body["snippet"]
        video_id, language, name = snippet["videoId"], snippet["language"], snippet.get("name", "")
    except (ValueError, KeyError, TypeError):
        raise google_error(400, "invalidMetadata", "snippet.videoId and snippet.language are required.",
                           domain="youtube.caption") from None  # fmt: skip
    track = parts[1].get_payload(decode=True) or b""
    call.record({"query": dict(request.query_params), "body": body, "track_bytes": len(track)})
    with fake.lock:
        video = fake.data["youtube"]["videos"].get(video_id)
        taken = [c for c in fake.data["youtube"].setdefault("captions", {}).values()
                 if c["videoId"] == video_id and c["language"] == language and c["name"] == name]  # fmt: skip
    if video is None:
        raise google_error(404, "videoNotFound", "The video that you are trying to add a caption track to cannot "
                           "be found.", domain="youtube.caption")  # fmt: skip
    if video["channel"] != token["account"]:
        raise google_error(403, "forbidden", "The permissions associated with the request are not sufficient to "
                           "upload the caption track.", domain="youtube.caption")  # fmt: skip
    cues = _cues(track)
    if not cues:
        raise google_error(400, "contentRequired", "The request does not contain the caption track contents.",
                           domain="youtube.caption")  # fmt: skip
    if taken:
        raise google_error(409, "captionExists", "The specified caption track already exists.",
                           domain="youtube.caption")  # fmt: skip
    caption_id = secrets.token_urlsafe(24)
    now = datetime.fromtimestamp(fake.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with fake.changing() as data:
        data["youtube"].setdefault("captions", {})[caption_id] = {
            "videoId": video_id, "language": language, "name": name, "cues": cues, "lastUpdated": now,
        }  # fmt: skip
    resource = {
        "kind": "youtube#caption",
        "etag": secrets.token_urlsafe(20),
        "id": caption_id,
        "snippet": {
            "videoId": video_id, "lastUpdated": now, "trackKind": "standard", "language": language,
            "name": name, "audioTrackType": "unknown", "isCC": False, "isLarge": False,
            "isEasyReader": False, "isDraft": bool(snippet.get("isDraft", False)), "isAutoSynced": False,
            "status": "serving",
        },
    }  # fmt: skip
    return ok(resource)


def _cues(track: bytes) -> list[dict[str, Any]]:
    """The track's cues (start, end, text) when it is SRT or WebVTT; [] otherwise."""
    try:
        text = track.decode("utf-8-sig")
    except UnicodeDecodeError:
        return []
    try:
        if text.lstrip().startswith("WEBVTT"):
            return [{"start": c.start_in_seconds, "end": c.end_in_seconds, "text": c.text}
                    for c in webvtt.from_buffer(io.StringIO(text)).captions]  # fmt: skip
        return [{"start": c.start.total_seconds(), "end": c.end.total_seconds(), "text": c.content}
                for c in srt.parse(text)]  # fmt: skip
    except (srt.SRTParseError, webvtt.errors.MalformedFileError, ValueError):
        return []


ROUTES = [authorize, token, channels, videos, insert_without_media, insert, upload, thumbnail, insert_caption]
