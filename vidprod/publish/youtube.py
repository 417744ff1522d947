"""YouTube Shorts through the Data API v3 `videos.insert` resumable upload, with the real
google-api-python-client (built from its bundled discovery document, so the API root
comes from our config and the sandbox or a test fake can stand in).

Steps and what is stored before the next one: the resumable session URI (caught from
the initiation answer before the first byte is sent), then the video id. A resumed run
asks the session where it stands (`bytes */N`): 308 continues from the offset YouTube
holds, 200/201 means the upload completed and the video exists — never a second one.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
from datetime import datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import httplib2
import httpx
from authlib.common.security import generate_token
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError, ResumableUploadError
from googleapiclient.http import MediaFileUpload

from vidprod.net.retry_after import parse_retry_after
from vidprod.publish.base import (
    PlatformHttp,
    Profile,
    Published,
    PublishFailure,
    Session,
    Tokens,
    Upload,
    transport_failure,
)

log = logging.getLogger(__name__)

API = "youtube.googleapis.com"
MAX_TITLE = 100
MAX_DESCRIPTION_BYTES = 5000
MAX_SHORT_SECONDS = 180.0
PRIVACY = {"public": "public", "private": "private", "unlisted": "unlisted"}
CHUNK_RETRIES = 3  # inside one run, after a cut connection or a 5xx, before backing off
PACIFIC = ZoneInfo("America/Los_Angeles")  # quotas reset at midnight Pacific time
# A cut connection shows up as http.client.IncompleteRead (an HTTPException) under httplib2.
TRANSPORT_ERRORS = (OSError, httplib2.HttpLib2Error, TimeoutError, http.client.HTTPException)


def _discovery_document(root_url: str) -> dict[str, Any]:
    text = (
        resources.files("googleapiclient")
        .joinpath("discovery_cache/documents/youtube.v3.json")
        .read_text()
    )
    document = json.loads(text)
    document["rootUrl"] = root_url
    document["mtlsRootUrl"] = root_url
    return document


class _BearerHttp(httplib2.Http):
    """httplib2 with our access token, and a hook that sees the resumable session URI
    before the library sends the first byte to it."""

    def __init__(self, token: str, timeout: float, on_session: Any = None) -> None:
        super().__init__(timeout=timeout)
        # 308 is "Resume Incomplete" to the upload protocol, not a redirect (as in
        # googleapiclient.http.build_http, which builds the Http we replace).
        self.redirect_codes = self.redirect_codes - {308}
        self.token = token
        self.on_session = on_session

    def request(self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, *args: Any, **kw: Any):  # type: ignore[override]
        headers = {**(headers or {}), "authorization": f"Bearer {self.token}"}
        response, content = super().request(uri, method, body, headers, *args, **kw)
        if self.on_session and method == "POST" and "uploadType=resumable" in uri and "location" in response:
            self.on_session(response["location"])
        return response, content


def seconds_to_pacific_midnight(now: float) -> float:
    """Until just after the next quota reset."""
    here = datetime.fromtimestamp(now, PACIFIC)
    midnight = (here + timedelta(days=1)).replace(hour=0, minute=5, second=0, microsecond=0)
    return midnight.timestamp() - now


class YouTube(PlatformHttp):
    name = "youtube"
    label = "YouTube"
    cover_picture = True  # thumbnails.set takes a JPEG
    longest = MAX_SHORT_SECONDS  # a Short lasts up to 3 min (since October 2024)
    # force-ssl: captions.insert (the part's subtitles as a caption track) needs it;
    # accounts connected without it post their videos without captions.
    scope = (
        "https://www.googleapis.com/auth/youtube.upload https://www.googleapis.com/auth/youtube.readonly"
        " https://www.googleapis.com/auth/youtube.force-ssl"
    )
    token_host = "oauth2.googleapis.com"
    token_path = "/token"
    # invalid_grant: revoked, or a "Testing" app's 7-day refresh token ran out.
    lost_grant_errors = frozenset({"invalid_grant", "unauthorized_client"})

    # --- accounts ----------------------------------------------------------------

    def authorize_url(self, state: str, redirect_uri: str) -> tuple[str, str | None]:
        verifier = generate_token(64)
        with self.oauth(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                self.url("accounts.google.com", "/o/oauth2/v2/auth", browser=True), state=state,
                code_verifier=verifier, access_type="offline", prompt="consent",
                include_granted_scopes="true",
            )  # fmt: skip
        return url, verifier

    def connect(self, code: str, verifier: str | None, redirect_uri: str) -> tuple[Tokens, Profile]:
        now = self.clock()
        tokens = Tokens.from_oauth(self.exchange_code(code, verifier, redirect_uri), now)
        if not tokens.refresh_token:
            raise PublishFailure(
                "permanent", "no_refresh_token",
                "Google gave no refresh token; remove vidprod's access in your Google account and connect again",
            )  # fmt: skip
        channels = self._execute(self._service(tokens.access_token).channels().list(part="snippet", mine=True))
        items = channels.get("items") or []
        if not items:
            raise PublishFailure("permanent", "no_channel", "this Google account has no YouTube channel")
        return tokens, Profile(items[0]["id"], items[0]["snippet"]["title"])

    def problems(self, upload: Upload, profile: dict[str, Any]) -> list[str]:
        found = []
        if upload.privacy not in PRIVACY:
            found.append("YouTube privacy is public, unlisted or private")
        if upload.options.get("publish_at") and upload.privacy != "private":
            found.append("YouTube publishes at a set time (publish_at) only videos uploaded as private")
        if upload.duration > MAX_SHORT_SECONDS:
            found.append(f"a YouTube Short lasts at most 3 min; the part is {upload.duration:.0f} s")
        if len(upload.caption.encode()) > MAX_DESCRIPTION_BYTES:
            found.append("a YouTube description has at most 5000 bytes")
        if upload.options.get("captions") and upload.subtitles is None:
            found.append("YouTube captions need the part's subtitles: upload the video with captions on")
        return found

    # --- posting -----------------------------------------------------------------

    def publish(self, session: Session) -> Published:
        remote = session.upload.remote
        # Each step is marked in `remote` once done, so a run after a failure (or a
        # restart) does only what is left: the upload, the thumbnail, the captions.
        if not remote.get("video_id"):
            self._insert(session)
        self._thumbnail(session)
        self._add_captions(session, remote["video_id"])
        return self._published(remote["video_id"])

    def _insert(self, session: Session) -> None:
        """videos.insert, resumed from the saved session; ends with video_id saved."""
        remote = session.upload.remote
        service = self._service(
            session.tokens.access_token, on_session=lambda uri: session.remember(session_uri=uri)
        )
        request = service.videos().insert(
            part="snippet,status", body=self._video_body(session.upload),
            media_body=MediaFileUpload(
                str(session.upload.path), mimetype="video/mp4",
                chunksize=self.settings.publish_chunk_bytes, resumable=True,
            ),
        )  # fmt: skip
        if remote.get("session_uri"):
            request.resumable_uri = remote["session_uri"]
            done = self._resume_point(session, request)
            if done is not None:
                session.remember(video_id=done["id"])
                return
        else:
            session.throttle("insert")
        response = None
        failures = 0
        while response is None:
            session.check_stop()
            try:
                _, response = request.next_chunk()  # no num_retries: see shared/PLATFORMS.md
                failures = 0
            except HttpError as exc:
                failure = _failure(exc, session.clock())
                if exc.resp.status in (404, 410) and request.resumable_uri is not None:
                    session.upload.remote.clear()
                    session.save({})  # the session is gone and no video was made
                    raise PublishFailure("retry", "session_expired", "the YouTube upload session expired") from None
                if failure.kind != "retry" or failures >= CHUNK_RETRIES or request.resumable_uri is None:
                    raise failure from None
                failures += 1
                session.sleep(2.0**failures)
            except TRANSPORT_ERRORS as exc:
                # The library's next call asks the session where to resume (bytes */N).
                if failures >= CHUNK_RETRIES or request.resumable_uri is None:
                    raise PublishFailure("retry", "network", f"YouTube upload: {exc!r}") from None
                failures += 1
                session.sleep(2.0**failures)
        session.remember(video_id=response["id"])

    def _thumbnail(self, session: Session) -> None:
        """The chosen cover as the video's thumbnail (thumbnails.set), once. Channels
        that are not allowed custom thumbnails answer 403 forbidden: the video is out
        all the same, so that (or any other refusal) is noted, never a failed post."""
        upload = session.upload
        if upload.cover is None or "thumbnail" in upload.remote:
            return
        service = self._service(session.tokens.access_token)
        request = service.thumbnails().set(
            videoId=upload.remote["video_id"],
            media_body=MediaFileUpload(str(upload.cover), mimetype="image/jpeg", resumable=False),
        )
        try:
            request.execute()
            outcome = "set"
        except HttpError as exc:
            failure = _failure(exc, session.clock())
            if exc.resp.status == 401:
                raise failure from None  # refreshed and run again: only this step is left
            outcome = f"{failure.code}: {failure.message}"
            log.warning("YouTube kept its own thumbnail for %s: %s", upload.remote["video_id"], outcome)
        except TRANSPORT_ERRORS as exc:
            outcome = f"network: {exc!r}"
            log.warning("YouTube thumbnail for %s not sent: %s", upload.remote["video_id"], outcome)
        session.remember(thumbnail=outcome)

    def _add_captions(self, session: Session, video_id: str) -> None:
        """With the `captions` option: the part's SRT as the video's English caption
        track (captions.insert), once (its id is remembered). The video exists by now,
        so only a failure worth retrying (network, 5xx, token, quota) holds the post
        back (the next run adds just the track); one that will not change (an account
        connected without the captions scope, a refused file) leaves the video posted
        without captions, saying why in the publication's `remote.captions_error`."""
        upload = session.upload
        if not upload.options.get("captions") or upload.remote.get("caption_id") or upload.remote.get("captions_error"):
            return
        if upload.subtitles is None or not upload.subtitles.is_file():
            session.remember(captions_error="the part has no subtitles file")
            return
        request = self._service(session.tokens.access_token).captions().insert(
            part="snippet",
            body={"snippet": {"videoId": video_id, "language": "en", "name": "English", "isDraft": False}},
            media_body=MediaFileUpload(str(upload.subtitles), mimetype="application/octet-stream", resumable=False),
        )
        try:
            answer = self._execute(request)
        except PublishFailure as failure:
            if failure.kind in ("retry", "refresh", "cap"):
                raise
            log.warning("YouTube video %s is posted without captions: %s", video_id, failure)
            session.remember(captions_error=f"{failure.code}: {failure.message}")
            return
        session.remember(caption_id=answer["id"])

    def _video_body(self, upload: Upload) -> dict[str, Any]:
        title = re.sub(r"[<>]", "", upload.title).strip()[:MAX_TITLE] or "Short"
        status: dict[str, Any] = {
            "privacyStatus": PRIVACY[upload.privacy],
            "selfDeclaredMadeForKids": bool(upload.options.get("made_for_kids", False)),
        }
        if upload.options.get("publish_at") and upload.privacy == "private":
            status["publishAt"] = upload.options["publish_at"]
        tags = [w.lstrip("#") for w in upload.caption.split() if w.startswith("#") and len(w) > 1]
        return {
            "snippet": {"title": title, "description": upload.caption, "tags": tags[:30], "categoryId": "22"},
            "status": status,
        }

    def _resume_point(self, session: Session, request: Any) -> dict[str, Any] | None:
        """Ask the session how much it holds; the finished video when it is complete."""
        try:
            response = self.http.put(
                request.resumable_uri,
                headers={"Content-Range": f"bytes */{session.upload.size}", "Content-Length": "0",
                         "Authorization": f"Bearer {session.tokens.access_token}"},
            )  # fmt: skip
        except httpx.HTTPError as exc:
            raise transport_failure(exc, "asking YouTube where the upload stands") from None
        if response.status_code in (200, 201):
            return response.json()
        if response.status_code == 308:
            held = response.headers.get("range")
            request.resumable_progress = int(held.rsplit("-", 1)[1]) + 1 if held else 0
            return None
        if response.status_code in (404, 410):
            # The session expired (a week) without completing: no video exists.
            session.upload.remote.clear()
            session.save({})
            raise PublishFailure("retry", "session_expired", "the YouTube upload session expired")
        if response.status_code == 401:
            raise PublishFailure("refresh", "authError", "the access token was refused")
        raise PublishFailure("retry", f"http_{response.status_code}", response.text[:300])

    def _service(self, token: str, on_session: Any = None) -> Any:
        root = self.settings.platform_url(API) + "/"
        http = _BearerHttp(token, self.settings.publish_timeout, on_session)
        return build_from_document(_discovery_document(root), http=http)

    def _published(self, video_id: str) -> Published:
        return Published(video_id, self.post_link(f"https://www.youtube.com/shorts/{video_id}"))

    def _execute(self, request: Any) -> dict[str, Any]:
        try:
            return request.execute()
        except HttpError as exc:
            raise _failure(exc, self.clock()) from None
        except TRANSPORT_ERRORS as exc:
            raise PublishFailure("retry", "network", f"YouTube: {exc!r}") from None




def _failure(exc: HttpError, now: float) -> PublishFailure:
    status = exc.resp.status
    reason, message = "", str(exc)
    try:
        error = json.loads(exc.content or b"{}").get("error") or {}
        message = error.get("message") or message
        reason = (error.get("errors") or [{}])[0].get("reason", "")
    except (ValueError, AttributeError):
        pass
    if isinstance(exc, ResumableUploadError) and not reason:
        reason = "resumable_upload"
    code = reason or f"http_{status}"
    if status == 401:
        return PublishFailure("refresh", code, message)
    if reason in ("quotaExceeded", "dailyLimitExceeded"):
        return PublishFailure("cap", code, message, retry_after=seconds_to_pacific_midnight(now))
    if reason == "uploadLimitExceeded":
        return PublishFailure("cap", code, message, retry_after=24 * 3600.0)
    if reason in ("rateLimitExceeded", "userRateLimitExceeded") or status == 429:
        # A throttle, not a failed try: the account waits Retry-After (60 s when unsaid)
        # and the attempt is given back.
        wait = parse_retry_after(exc.resp.get("retry-after"), now)
        return PublishFailure("cap", code, message, retry_after=wait if wait is not None else 60.0)
    if reason in ("forbidden", "youtubeSignupRequired", "insufficientPermissions"):
        return PublishFailure("reconnect", code, message)
    if status >= 500:
        return PublishFailure("retry", code, message)
    return PublishFailure("permanent", code, message)
