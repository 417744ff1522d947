"""Instagram Reels through the Instagram API with Instagram Login: a resumable-upload
container, status polling until FINISHED, then media_publish, after checking the
account's 24 h publishing limit.

Steps and what is stored before the next one: container_id + upload_uri (create),
upload_started (before the first byte), uploaded (rupload done), publish_sent (just
before media_publish), media_id. The rupload goes in chunks of VIDPROD_PUBLISH_CHUNK_BYTES,
each POST naming its offset. A run that finds upload_started asks the upload host where it
stands (GET on the upload URI answers the offset it holds) and carries on from there; when
the host says the upload is complete or expired, the container's status decides (bytes in:
publish; EXPIRED/ERROR: a new container). A run that finds publish_sent without a media_id
asks the container: PUBLISHED means it went out (never publish again: the media is found
among the account's recent media for its id and permalink); FINISHED means the call never
landed, so publishing is safe.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

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

GRAPH = "graph.instagram.com"
VERSION = "v23.0"
MAX_CAPTION = 2200
MAX_HASHTAGS = 30
MIN_SECONDS, MAX_SECONDS = 3.0, 15 * 60.0
MAX_BYTES = 300 * 1024 * 1024
POLL_SECONDS = (2, 3, 5, 5, 10)
POLL_LIMIT_SECONDS = 900.0
USAGE_BACKOFF_PERCENT = 90  # back off before Meta throttles the app
CONTAINER_LIFETIME = 23 * 3600.0  # containers expire after 24 h; start over a little sooner
THROTTLE_CODES = {4, 17, 32, 613, *range(80001, 80015)}
NEW_CONTAINER_SUBCODES = {2207020, 2207053}
NEW_CONTAINER_CODES = {str(code) for code in NEW_CONTAINER_SUBCODES}
RETRY_SUBCODES = {2207001, 2207003, 2207032}
NOT_READY_SUBCODES = {2207027}
NOT_READY_CODES = {"2207027", "9007"}
RECHECK_SECONDS = 300.0  # after an unanswered media_publish, before trusting FINISHED
PUBLISHED_LOOKUP_SLACK = 120.0  # the media's timestamp vs our publish_sent_at (clock skew)
CAP_SUBCODE = 2207042
SPAM_SUBCODE = 2207051


class Instagram(PlatformHttp):
    name = "instagram"
    label = "Instagram"
    shortest = MIN_SECONDS
    longest = MAX_SECONDS
    scope = "instagram_business_basic,instagram_business_content_publish"
    token_host = "api.instagram.com"
    token_path = "/oauth/access_token"
    # A long-lived token cannot be refreshed once expired: refresh well before.
    refresh_margin = 30 * 24 * 3600.0

    # --- accounts ----------------------------------------------------------------

    def authorize_url(self, state: str, redirect_uri: str) -> tuple[str, str | None]:
        with self.oauth(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                self.url("www.instagram.com", "/oauth/authorize", browser=True), state=state
            )
        return url, None

    def connect(self, code: str, verifier: str | None, redirect_uri: str) -> tuple[Tokens, Profile]:
        short = self.exchange_code(code, None, redirect_uri)
        # Meta's own exchange for a 60-day token (not an OAuth grant type).
        now = self.clock()
        answer = self._graph("GET", "/access_token", params={
            "grant_type": "ig_exchange_token", "client_secret": self.client_secret,
            "access_token": short["access_token"],
        }, versioned=False)  # fmt: skip
        tokens = Tokens.from_oauth(answer, now)
        me = self._graph("GET", "/me", token=tokens.access_token, params={"fields": "user_id,username"})
        return tokens, Profile(str(me.get("user_id") or me["id"]), me.get("username") or str(me["id"]))

    def refresh(self, tokens: Tokens) -> Tokens:
        now = self.clock()
        try:
            answer = self._graph("GET", "/refresh_access_token", params={
                "grant_type": "ig_refresh_token", "access_token": tokens.access_token,
            }, versioned=False)  # fmt: skip
        except PublishFailure as failure:
            if failure.kind in ("refresh", "permanent"):
                raise PublishFailure("reconnect", failure.code, failure.message) from None
            raise
        return Tokens.from_oauth(answer, now, previous=tokens)

    def problems(self, upload: Upload, profile: dict[str, Any]) -> list[str]:
        found = []
        if upload.privacy != "public":
            found.append("Instagram Reels are always public; choose public")
        if not MIN_SECONDS <= upload.duration <= MAX_SECONDS:
            found.append(f"a Reel lasts 3 s to 15 min; the part is {upload.duration:.1f} s")
        if upload.size > MAX_BYTES:
            found.append("a Reel file is at most 300 MB")
        if len(upload.caption) > MAX_CAPTION:
            found.append(f"an Instagram caption has at most {MAX_CAPTION} characters")
        if sum(word.startswith("#") for word in upload.caption.split()) > MAX_HASHTAGS:
            found.append(f"an Instagram caption has at most {MAX_HASHTAGS} hashtags")
        return found

    # --- posting -----------------------------------------------------------------

    def publish(self, session: Session) -> Published:
        try:
            return self._publish(session)
        except PublishFailure as failure:
            if failure.code in NEW_CONTAINER_CODES:
                session.upload.remote.clear()
                session.save({})  # Meta asks for a new container
            raise

    def _publish(self, session: Session) -> Published:
        remote = session.upload.remote
        if remote.get("media_id"):
            return self._published(session, remote["media_id"])
        stale = session.clock() - remote.get("created_at", 0) > CONTAINER_LIFETIME
        if remote.get("container_id") and stale and not remote.get("publish_sent"):
            session.upload.remote.clear()
            session.save({})
        if not remote.get("container_id"):
            self._check_quota(session)
            self._create_container(session)
        if not remote.get("uploaded"):
            self._upload(session, Path(session.upload.path))
            session.remember(uploaded=True)
        status = self._await_container(session)
        if status == "FINISHED" and remote.get("publish_sent") and session.clock() - remote.get("publish_sent_at", 0) < RECHECK_SECONDS:
            # Our publish call got no clear answer and Meta may still be on it: a
            # FINISHED container is trusted to mean "not published" only a while later.
            raise PublishFailure("unknown", "publish_unanswered", "waiting before checking the container again")
        if status == "PUBLISHED":
            # Our earlier media_publish landed though its answer was lost. The media id
            # is not on the container: find the media among the account's recent ones.
            media_id = self._find_published(session)
            if media_id is None:  # not listed (yet): the container id names the post for us
                return Published(remote["container_id"], None)
            session.remember(media_id=media_id)
            return self._published(session, media_id)
        session.remember(publish_sent=True, publish_sent_at=session.clock())
        try:
            answer = self._graph(
                "POST", f"/{session.account_remote_id}/media_publish", token=session.tokens.access_token,
                data={"creation_id": remote["container_id"]}, session=session,
            )  # fmt: skip
        except PublishFailure as failure:
            if failure.kind == "retry" and failure.code not in NOT_READY_CODES:
                # No answer, or a 5xx from a gateway: the post may exist. Look it up.
                raise PublishFailure("unknown", "publish_unanswered", failure.message) from None
            # Meta refused it: the post did not happen, publishing again is safe.
            session.remember(publish_sent=False)
            raise
        session.remember(media_id=str(answer["id"]))
        return self._published(session, str(answer["id"]))

    def _check_quota(self, session: Session) -> None:
        answer = self._graph(
            "GET", f"/{session.account_remote_id}/content_publishing_limit",
            token=session.tokens.access_token, params={"fields": "quota_usage,config"}, session=session,
        )  # fmt: skip
        rows = answer.get("data") or [{}]
        usage = rows[0].get("quota_usage", 0)
        config = rows[0].get("config") or {}
        total = config.get("quota_total")
        if total is not None and usage >= total:
            window = float(config.get("quota_duration") or 86400)
            raise PublishFailure(
                "cap", str(CAP_SUBCODE), f"{usage} of {total} posts used in the last 24 h",
                retry_after=min(window, 3600.0),
            )  # fmt: skip

    def _create_container(self, session: Session) -> None:
        upload = session.upload
        fields = {
            "media_type": "REELS", "upload_type": "resumable", "caption": upload.caption,
            "share_to_feed": "true" if upload.options.get("share_to_feed", True) else "false",
        }  # fmt: skip
        if upload.options.get("cover_ms") is not None:  # else Instagram takes the first frame
            fields["thumb_offset"] = str(int(upload.options["cover_ms"]))
        answer = self._graph("POST", f"/{session.account_remote_id}/media", token=session.tokens.access_token,
                             data=fields, session=session)  # fmt: skip
        container = str(answer["id"])
        uri = answer.get("uri") or self.url("rupload.facebook.com", f"/ig-api-upload/{VERSION}/{container}")
        session.remember(container_id=container, upload_uri=uri, created_at=session.clock())

    def _upload(self, session: Session, path: Path) -> None:
        """Send the file in chunks into the container, resuming where the host stands."""
        remote, size = session.upload.remote, session.upload.size
        if remote.get("upload_started"):
            offset = self._upload_offset(session)
        else:
            session.remember(upload_started=True)
            offset = 0
        chunk = self.settings.publish_chunk_bytes
        with path.open("rb") as f:
            while offset < size:
                session.check_stop()
                f.seek(offset)
                body = f.read(min(chunk, size - offset))
                headers = {
                    "Authorization": f"OAuth {session.tokens.access_token}",
                    "offset": str(offset),
                    "file_size": str(size),
                    "Content-Type": "application/octet-stream",
                }
                try:
                    response = self.http.post(remote["upload_uri"], content=body, headers=headers)
                except httpx.HTTPError as exc:
                    raise transport_failure(exc, "Instagram upload") from None
                if response.status_code >= 300:
                    failure = _failure(response)
                    if failure.kind != "permanent":
                        raise failure
                    # Refused: the bytes may all be in already ("the upload is complete or
                    # expired") or the host holds another offset. Ask; carry on from its
                    # answer, or give up when it agrees with ours.
                    held = self._upload_offset(session)
                    if held >= size:
                        return
                    if held == offset:
                        raise failure
                    offset = held
                    continue
                offset += len(body)

    def _upload_offset(self, session: Session) -> int:
        """How many bytes the upload host holds (after a cut or a crash mid-upload)."""
        remote = session.upload.remote
        headers = {"Authorization": f"OAuth {session.tokens.access_token}"}
        try:
            response = self.http.get(remote["upload_uri"], headers=headers)
        except httpx.HTTPError as exc:
            raise transport_failure(exc, "Instagram upload offset") from None
        if response.status_code < 300:
            answer = response.json()
            return int(answer.get("offset", answer.get("file_offset", 0)))
        failure = _failure(response)
        if failure.kind != "permanent":
            raise failure
        # "The upload is complete or expired": the container tells which.
        self._check_container_alive(session)
        return session.upload.size

    def _check_container_alive(self, session: Session) -> None:
        """After the host called the upload complete or expired: an EXPIRED or ERROR
        container is cleared and the post retried in a new one; any other state (being
        processed, FINISHED, PUBLISHED) means every byte is in."""
        answer = self._container_state(session)
        status = answer.get("status_code")
        if status in ("ERROR", "EXPIRED"):
            session.upload.remote.clear()
            session.save({})
            raise PublishFailure("retry", f"container_{status.lower()}", str(answer.get("status") or status))

    def _container_state(self, session: Session) -> dict:
        """The container's `status_code` and `status` as the Graph API reports them."""
        return self._graph(
            "GET", f"/{session.upload.remote['container_id']}", token=session.tokens.access_token,
            params={"fields": "status_code,status"}, session=session,
        )  # fmt: skip

    def _find_published(self, session: Session) -> str | None:
        """The media a lost media_publish made: the first of the account's recent media
        with our caption posted since we sent the call (the Graph API links no container
        to its media)."""
        remote = session.upload.remote
        answer = self._graph(
            "GET", f"/{session.account_remote_id}/media", token=session.tokens.access_token,
            params={"fields": "id,caption,timestamp", "limit": "25"}, session=session,
        )  # fmt: skip
        since = remote.get("publish_sent_at", 0) - PUBLISHED_LOOKUP_SLACK
        matches = [
            item for item in answer.get("data") or []
            if item.get("caption", "") == session.upload.caption and _timestamp(item.get("timestamp")) >= since
        ]  # fmt: skip
        if not matches:
            return None
        return str(min(matches, key=lambda item: _timestamp(item.get("timestamp")))["id"])

    def _await_container(self, session: Session) -> str:
        waited = 0.0
        step = 0
        while True:
            answer = self._container_state(session)
            status = answer.get("status_code")
            if status in ("FINISHED", "PUBLISHED"):
                return status
            if status in ("ERROR", "EXPIRED"):
                session.upload.remote.clear()
                session.save({})  # a fresh container next time
                raise PublishFailure("retry", f"container_{status.lower()}", str(answer.get("status") or status))
            if waited >= POLL_LIMIT_SECONDS:
                raise PublishFailure("unknown", "still_processing", f"Instagram still says {status}")
            session.check_stop()
            pause = POLL_SECONDS[min(step, len(POLL_SECONDS) - 1)]
            session.sleep(pause)
            waited += pause
            step += 1

    def _published(self, session: Session, media_id: str) -> Published:
        try:
            answer = self._graph(
                "GET", f"/{media_id}", token=session.tokens.access_token, params={"fields": "id,permalink"}
            )
            url = self.post_link(answer.get("permalink"))
        except PublishFailure:
            url = None  # the post is out; its link is a nicety
        return Published(media_id, url)

    def _graph(
        self, method: str, path: str, *, token: str | None = None, params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None, versioned: bool = True, session: Session | None = None,
    ) -> dict[str, Any]:
        url = self.url(GRAPH, (f"/{VERSION}" if versioned else "") + path)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if session is not None:
            session.throttle("api")
        try:
            response = self.http.request(method, url, params=params, data=data, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_failure(exc, f"Instagram {path}") from None
        if session is not None:
            _note_usage(session, response)
        if response.status_code >= 300:
            raise _failure(response)
        return response.json()


def _timestamp(text: Any) -> float:
    """Graph API time ("2026-12-06T15:04:05+0000") as unix seconds; 0 when missing."""
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return 0.0


def _note_usage(session: Session, response: httpx.Response) -> None:
    """Meta reports how much of the app's and account's allowance is used; near 90 %
    the account is blocked for a while instead of being throttled by Meta."""
    highest, regain_minutes = 0.0, 0.0
    for header in ("x-app-usage", "x-business-use-case-usage"):
        try:
            value = json.loads(response.headers.get(header) or "{}")
        except ValueError:
            continue
        entries = [item for items in value.values() for item in items] if header.endswith("case-usage") else [value]
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            for key in ("call_count", "total_time", "total_cputime"):
                highest = max(highest, float(entry.get(key) or 0))
            regain_minutes = max(regain_minutes, float(entry.get("estimated_time_to_regain_access") or 0))
    if highest >= USAGE_BACKOFF_PERCENT or regain_minutes:
        session.block_until = session.clock() + max(regain_minutes * 60, 600.0)


def _failure(response: httpx.Response) -> PublishFailure:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") or {}
    if isinstance(debug := body.get("debug_info"), dict):  # rupload.facebook.com's shape
        code, message = f"upload_{debug.get('type') or response.status_code}", str(debug.get("message"))
        if response.status_code in (401, 403) or debug.get("type") in ("AuthError", "OAuthException"):
            return PublishFailure("refresh", code, message)  # refreshed once, then a reconnect
        if response.status_code == 429:
            return PublishFailure("cap", code, message, retry_after=retry_after_seconds(response) or 600.0)
        kind = "retry" if debug.get("retriable") or response.status_code >= 500 else "permanent"
        return PublishFailure(kind, code, message, retry_after=retry_after_seconds(response))
    code = int(error.get("code") or 0)
    subcode = int(error.get("error_subcode") or 0)
    message = str(error.get("error_user_msg") or error.get("message") or response.text[:300])
    trace = error.get("fbtrace_id")
    name = str(subcode or code or f"http_{response.status_code}")
    if code == 190:
        return PublishFailure("refresh", "190", message, trace_id=trace)
    if subcode == SPAM_SUBCODE:
        return PublishFailure("permanent", name, f"Instagram flagged this as spam: {message}", trace_id=trace)
    if subcode == CAP_SUBCODE:
        return PublishFailure("cap", name, message, retry_after=3600.0, trace_id=trace)
    if code in THROTTLE_CODES or response.status_code == 429:
        return PublishFailure("cap", name, message, retry_after=retry_after_seconds(response) or 600.0, trace_id=trace)
    if subcode in NOT_READY_SUBCODES or code == 9007:
        return PublishFailure("retry", name, message, retry_after=30.0, trace_id=trace)
    if subcode in NEW_CONTAINER_SUBCODES or subcode in RETRY_SUBCODES or error.get("is_transient"):
        return PublishFailure("retry", name, message, trace_id=trace)
    if response.status_code >= 500:
        return PublishFailure("retry", name, message, retry_after=retry_after_seconds(response), trace_id=trace)
    return PublishFailure("permanent", name, message, trace_id=trace)
