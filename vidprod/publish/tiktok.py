"""TikTok Content Posting API: Direct Post with FILE_UPLOAD chunks, status polling, and
the inbox (draft) upload as a fallback when configured.

Steps and what is stored before the next one: publish_id + upload_url + chunk plan
(init), chunks_done after each chunk's 206, uploaded after the 201. A resumed run asks
the status endpoint first, so an upload TikTok already has is never sent again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
from authlib.common.urls import add_params_to_qs
from authlib.integrations.httpx_client import OAuth2Client

from vidprod.publish.base import (
    PlatformHttp,
    Profile,
    Published,
    PublishFailure,
    Session,
    Tokens,
    Upload,
    retry_after_seconds,
    transport_failure,
)

log = logging.getLogger(__name__)

API = "open.tiktokapis.com"
AUTH = "www.tiktok.com"
MAX_CAPTION = 2200
MIN_SECONDS = 3.0  # TikTok's media rules: 3 s to 10 min (the account's own maximum may be lower)
PRIVACY_LEVELS = {
    "public": "PUBLIC_TO_EVERYONE",
    "friends": "MUTUAL_FOLLOW_FRIENDS",
    "private": "SELF_ONLY",
}
POLL_SECONDS = (1, 2, 3, 5, 5, 10)
POLL_LIMIT_SECONDS = 600.0  # then "unknown": the next run polls again
CAP_CODES = {
    "spam_risk_too_many_posts": 24 * 3600.0,
    "spam_risk_user_banned_from_posting": 24 * 3600.0,
    "reached_active_user_cap": 24 * 3600.0,
    "spam_risk_too_many_pending_share": 3600.0,
}
PERMANENT_CODES = {
    "privacy_level_option_mismatch", "invalid_params", "url_ownership_unverified",
    "unaudited_client_can_only_post_to_private_accounts", "invalid_file_upload",
    "video_pull_failed", "file_format_check_failed", "duration_check_failed",
    "frame_rate_check_failed", "picture_size_check_failed",
}  # fmt: skip
INBOX_FALLBACK_CODES = {"unaudited_client_can_only_post_to_private_accounts", "scope_not_authorized"}


MIN_CHUNK, MAX_CHUNK = 5 * 1024 * 1024, 64 * 1024 * 1024  # TikTok's FILE_UPLOAD rules


def chunk_plan(size: int, chunk: int, bounds: tuple[int, int] = (MIN_CHUNK, MAX_CHUNK)) -> tuple[int, int]:
    """(chunk_size, total_chunk_count) by TikTok's rules: one chunk when the video fits
    in one, else floor(size / chunk) chunks with the remainder in the last (so the last
    stays under 2 x 64 = 128 MiB). `chunk` (VIDPROD_PUBLISH_CHUNK_BYTES, shared with
    YouTube) is held to TikTok's 5-64 MiB; tests against scaled-down fakes pass theirs."""
    chunk = min(max(chunk, bounds[0]), bounds[1])
    if size <= chunk:
        return size, 1
    return chunk, size // chunk


class TikTok(PlatformHttp):
    name = "tiktok"
    label = "TikTok"
    shortest = MIN_SECONDS
    longest = 600.0  # 10 min; an account's own max_video_post_duration_sec may be lower
    scope = "user.info.basic,video.publish,video.upload"
    token_host = API
    token_path = "/v2/oauth/token/"
    lost_grant_errors = frozenset({"invalid_grant", "invalid_request"})

    # --- accounts ----------------------------------------------------------------

    def oauth(self, redirect_uri: str | None = None) -> OAuth2Client:
        client = super().oauth(redirect_uri)
        # TikTok names the client id `client_key`; authlib's client_secret_post says
        # client_id, so the token requests use this method instead.
        client.register_client_auth_method(("client_key_post", _client_key_post))
        client.token_endpoint_auth_method = "client_key_post"
        return client

    def authorize_url(self, state: str, redirect_uri: str) -> tuple[str, str | None]:
        # PKCE is for TikTok's mobile and desktop apps; the web flow uses state only.
        with self.oauth(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                self.url(AUTH, "/v2/auth/authorize/", browser=True), state=state,
                client_key=self.client_id,
            )  # fmt: skip
        return url, None

    def connect(self, code: str, verifier: str | None, redirect_uri: str) -> tuple[Tokens, Profile]:
        now = self.clock()
        tokens = Tokens.from_oauth(self.exchange_code(code, None, redirect_uri), now)
        user = self._call("GET", "/v2/user/info/?fields=open_id,display_name", tokens.access_token)["user"]
        return tokens, Profile(user["open_id"], user.get("display_name") or user["open_id"])

    def fetch_profile(self, tokens: Tokens) -> dict[str, Any]:
        return self.creator_info(tokens.access_token)

    def creator_info(self, token: str) -> dict[str, Any]:
        return self._call("POST", "/v2/post/publish/creator_info/query/", token, json={})

    def problems(self, upload: Upload, profile: dict[str, Any]) -> list[str]:
        found = []
        level = PRIVACY_LEVELS.get(upload.privacy)
        allowed = profile.get("privacy_level_options") or []
        if level is None:
            found.append(f"TikTok has no '{upload.privacy}' privacy; use public, friends or private")
        elif allowed and level not in allowed:
            names = [k for k, v in PRIVACY_LEVELS.items() if v in allowed]
            found.append(f"this TikTok account allows only {', '.join(names) or allowed} posts")
        if upload.duration < MIN_SECONDS:
            found.append(f"a TikTok video lasts at least {MIN_SECONDS:.0f} s; the part is {upload.duration:.1f} s")
        longest = profile.get("max_video_post_duration_sec")
        if longest and upload.duration > float(longest):
            found.append(f"this TikTok account posts videos up to {longest} s; the part is {upload.duration:.0f} s")
        if len(upload.caption) > MAX_CAPTION:
            found.append(f"a TikTok caption has at most {MAX_CAPTION} characters")
        return found

    # --- posting -----------------------------------------------------------------

    def chunk_bounds(self) -> tuple[int, int]:
        """TikTok's 5-64 MiB, except against fakes at VIDPROD_PLATFORM_BASE_URL (tests),
        whose rules are scaled down so that small parts span several chunks."""
        if self.settings.platform_base_url and not self.settings.sandbox:
            return 1, MAX_CHUNK
        return MIN_CHUNK, MAX_CHUNK

    def publish(self, session: Session) -> Published:
        upload, remote = session.upload, session.upload.remote
        if remote.get("publish_id"):
            state = self._status(session)
            if state["status"] != "PROCESSING_UPLOAD" or remote.get("uploaded"):
                return self._await_result(session, state)
        else:
            self._init(session)
        self._send_chunks(session, Path(upload.path))
        session.remember(uploaded=True)
        return self._await_result(session, self._status(session))

    def _init(self, session: Session) -> None:
        upload = session.upload
        token = session.tokens.access_token
        inbox = bool(upload.options.get("tiktok_inbox"))
        chunk_size, count = chunk_plan(upload.size, self.settings.publish_chunk_bytes, self.chunk_bounds())
        source = {"source": "FILE_UPLOAD", "video_size": upload.size, "chunk_size": chunk_size,
                  "total_chunk_count": count}  # fmt: skip
        if not inbox:
            # The audit rules want creator_info read right before each direct post.
            session.throttle("creator_info")
            problems = self.problems(upload, self.creator_info(token))
            if problems:
                raise PublishFailure("permanent", "privacy_level_option_mismatch", "; ".join(problems))
        session.throttle("init")
        try:
            if inbox:
                data = self._call("POST", "/v2/post/publish/inbox/video/init/", token, json={"source_info": source})
            else:
                data = self._call("POST", "/v2/post/publish/video/init/", token, json={
                    "post_info": {
                        "title": upload.caption,
                        "privacy_level": PRIVACY_LEVELS[upload.privacy],
                        "disable_comment": bool(upload.options.get("disable_comment", False)),
                        "disable_duet": bool(upload.options.get("disable_duet", False)),
                        "disable_stitch": bool(upload.options.get("disable_stitch", False)),
                        "video_cover_timestamp_ms": cover_ms(upload),
                        "brand_content_toggle": bool(upload.options.get("brand_content", False)),
                        "brand_organic_toggle": bool(upload.options.get("brand_organic", False)),
                        "is_aigc": bool(upload.options.get("is_aigc", False)),
                    },
                    "source_info": source,
                })  # fmt: skip
        except PublishFailure as failure:
            if not inbox and self.settings.tiktok_inbox_fallback and failure.code in INBOX_FALLBACK_CODES:
                log.info("TikTok refused a direct post (%s): uploading to the inbox as a draft", failure.code)
                upload.options["tiktok_inbox"] = True
                session.remember(inbox=True)
                return self._init(session)
            raise
        session.remember(
            publish_id=data["publish_id"], upload_url=data["upload_url"], chunk_size=chunk_size,
            chunks=count, chunks_done=0, inbox=inbox,
        )  # fmt: skip

    def _send_chunks(self, session: Session, path: Path) -> None:
        remote, size = session.upload.remote, session.upload.size
        chunk_size, count = remote["chunk_size"], remote["chunks"]
        with path.open("rb") as f:
            for index in range(remote.get("chunks_done", 0), count):
                session.check_stop()
                start = index * chunk_size
                end = size if index == count - 1 else start + chunk_size
                f.seek(start)
                body = f.read(end - start)
                final = index == count - 1
                if final:
                    # Past here TikTok may hold the whole video: sending this chunk again
                    # is harmless, starting over is not.
                    session.remember(last_chunk_sent=True)
                try:
                    response = self.http.put(
                        remote["upload_url"], content=body,
                        headers={"Content-Type": "video/mp4", "Content-Range": f"bytes {start}-{end - 1}/{size}"},
                    )  # fmt: skip
                except httpx.HTTPError as exc:
                    raise transport_failure(exc, f"TikTok chunk {index + 1}/{count}") from None
                if response.status_code not in (201, 206):
                    failure = _failure(response)
                    if final and failure.kind == "permanent":
                        raise PublishFailure("unknown", failure.code, f"the last chunk was refused: {failure.message}")
                    if response.status_code in (400, 403, 404, 410) and failure.kind == "permanent":
                        # An expired or refused upload URL: nothing was posted, start over.
                        session.upload.remote.clear()
                        session.save({})
                        raise PublishFailure("retry", failure.code, f"upload URL refused: {failure.message}")
                    raise failure
                session.remember(chunks_done=index + 1)

    def _status(self, session: Session) -> dict[str, Any]:
        session.throttle("status")
        return self._call(
            "POST", "/v2/post/publish/status/fetch/", session.tokens.access_token,
            json={"publish_id": session.upload.remote["publish_id"]},
        )  # fmt: skip

    def _await_result(self, session: Session, state: dict[str, Any]) -> Published:
        remote = session.upload.remote
        waited = 0.0
        for step in range(10_000):
            status = state.get("status")
            if status == "PUBLISH_COMPLETE":
                ids = state.get("publicaly_available_post_id") or []
                post_id = str(ids[0]) if ids else remote["publish_id"]
                return Published(post_id, self.post_link(f"https://www.tiktok.com/video/{ids[0]}") if ids else None)
            if status == "SEND_TO_USER_INBOX" or (remote.get("inbox") and status == "PROCESSING_DOWNLOAD"):
                return Published(remote["publish_id"], None, inbox=True)
            if status == "FAILED":
                reason = state.get("fail_reason") or "failed"
                remote.clear()
                session.save({})  # no post exists: the next attempt starts over
                message = f"TikTok could not publish the video: {reason}"
                if reason in CAP_CODES or reason.startswith("spam_risk"):
                    raise PublishFailure("cap", reason, message, retry_after=CAP_CODES.get(reason, 24 * 3600.0))
                if reason == "auth_removed":
                    raise PublishFailure("reconnect", reason, message)
                kind = "permanent" if reason in PERMANENT_CODES else "retry"
                raise PublishFailure(kind, reason, message)
            if waited >= POLL_LIMIT_SECONDS:
                raise PublishFailure("unknown", "still_processing", f"TikTok still says {status}")
            session.check_stop()
            pause = POLL_SECONDS[min(step, len(POLL_SECONDS) - 1)]
            session.sleep(pause)
            waited += pause
            state = self._status(session)
        raise AssertionError("unreachable")

    def _call(self, method: str, path: str, token: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(
                method, self.url(API, path), headers={"Authorization": f"Bearer {token}"}, **kwargs
            )
        except httpx.HTTPError as exc:
            raise transport_failure(exc, f"TikTok {path}") from None
        if response.status_code >= 300:
            raise _failure(response)
        body = response.json()
        error = body.get("error") or {}
        if error.get("code", "ok") != "ok":
            raise _failure(response)
        return body.get("data") or {}



def _client_key_post(client: Any, method: str, uri: str, headers: dict, body: str) -> tuple[str, dict, str]:
    body = add_params_to_qs(body or "", [("client_key", client.client_id), ("client_secret", client.client_secret)])
    if "Content-Length" in headers:
        headers["Content-Length"] = str(len(body))
    return uri, headers, body


def _failure(response: httpx.Response) -> PublishFailure:
    """Classify a TikTok error answer by its error.code (and HTTP status)."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    code = str(error.get("code") or f"http_{response.status_code}")
    message = str(error.get("message") or response.text[:300])
    trace = error.get("log_id")
    status = response.status_code
    if code == "access_token_invalid" or status == 401 and code != "scope_not_authorized":
        return PublishFailure("refresh", code, message, trace_id=trace)
    if code == "scope_not_authorized":
        return PublishFailure("reconnect", code, message, trace_id=trace)
    if code in CAP_CODES:
        return PublishFailure("cap", code, message, retry_after=CAP_CODES[code], trace_id=trace)
    if code == "rate_limit_exceeded" or status == 429:
        return PublishFailure("cap", code, message, retry_after=retry_after_seconds(response) or 60.0, trace_id=trace)
    if status >= 500 or code == "internal_error":
        return PublishFailure("retry", code, message, retry_after=retry_after_seconds(response), trace_id=trace)
    return PublishFailure("permanent", code, message, trace_id=trace)


def cover_ms(upload: Upload) -> int:
    """The creator's cover frame, else 1 s in (the middle of a part shorter than 2 s)."""
    chosen = upload.options.get("cover_ms")
    return int(chosen) if chosen is not None else min(1000, int(upload.duration * 500))
