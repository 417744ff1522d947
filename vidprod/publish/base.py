"""The interface every platform client implements, and the types they share."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client

from vidprod.config import Settings
from vidprod.net.retry_after import parse_retry_after

# What the scheduler does after a failed step:
#   retry     back off (full jitter, at least Retry-After) and try again, counting an attempt
#   refresh   refresh the access token and repeat the step at once
#   reconnect the account's grant is gone: the publication waits for a reconnect
#   cap       a posting cap or spam guard: reschedule after the window, never loop
#   permanent the platform will never take it: dead-letter with its code and message
#   unknown   the final publish call got no answer: look the outcome up, never re-send
FailureKind = Literal["retry", "refresh", "reconnect", "cap", "permanent", "unknown"]

# Privacy as the creator chooses it; each platform maps it to its own words.
PRIVACY = ("public", "friends", "private", "unlisted")


class PublishFailure(Exception):
    def __init__(
        self,
        kind: FailureKind,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.kind = kind
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.trace_id = trace_id


class PublishStopped(Exception):
    """The process is shutting down; the steps done so far are saved."""


@dataclass
class Tokens:
    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None  # unix seconds
    refresh_expires_at: float | None = None
    scope: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_oauth(cls, answer: dict[str, Any], now: float, previous: Tokens | None = None) -> Tokens:
        """From a token endpoint's answer. A refresh that returns no refresh token keeps
        the old one; one that does (TikTok rotates them) replaces it."""

        def after(seconds: Any) -> float | None:
            return now + float(seconds) if seconds else None

        return cls(
            access_token=answer["access_token"],
            refresh_token=answer.get("refresh_token") or (previous.refresh_token if previous else None),
            expires_at=after(answer.get("expires_in")),
            refresh_expires_at=after(answer.get("refresh_expires_in"))
            or (previous.refresh_expires_at if previous else None),
            scope=answer.get("scope") or (previous.scope if previous else None),
        )


@dataclass(frozen=True)
class Profile:
    remote_id: str
    name: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Upload:
    """One part going to one account, with the steps already done (`remote`)."""

    publication_id: str
    path: Path
    size: int
    duration: float
    title: str
    caption: str
    privacy: str
    options: dict[str, Any]
    remote: dict[str, Any]
    cover: Path | None = None  # the frame at options["cover_ms"] as a JPEG, for platforms that take a picture
    subtitles: Path | None = None  # the part's SRT file, when the job has captions


@dataclass
class Published:
    post_id: str
    url: str | None = None
    inbox: bool = False  # uploaded as a draft for the creator to post from the app


@dataclass
class Session:
    """What a client gets for one run of one publication."""

    upload: Upload
    account_remote_id: str
    tokens: Tokens
    save: Callable[[dict[str, Any]], None]  # stores upload.remote before the next step
    should_stop: Callable[[], bool]
    throttle: Callable[[str], None]  # before a rate-limited call ("init"): waits or raises
    block_until: float | None = None  # set by a client that saw usage near a limit
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def remember(self, **values: Any) -> None:
        self.upload.remote.update(values)
        self.save(dict(self.upload.remote))

    def check_stop(self) -> None:
        if self.should_stop():
            raise PublishStopped()


class Platform(Protocol):
    name: str  # "tiktok", "instagram", "youtube"
    label: str  # "TikTok"
    cover_picture: bool  # takes the cover as a picture (Upload.cover), not only as a time

    def configured(self) -> bool: ...

    def authorize_url(self, state: str, redirect_uri: str) -> tuple[str, str | None]:
        """(URL to send the browser to, PKCE verifier to keep for the callback)."""

    def connect(self, code: str, verifier: str | None, redirect_uri: str) -> tuple[Tokens, Profile]: ...

    def refresh(self, tokens: Tokens) -> Tokens:
        """New tokens; PublishFailure('reconnect') when the grant is gone."""

    def problems(self, upload: Upload, profile: dict[str, Any]) -> list[str]:
        """What the platform would refuse about this upload, in words (empty if fine)."""

    def fetch_profile(self, tokens: Tokens) -> dict[str, Any]:
        """Account details that decide what a post may be (TikTok creator_info)."""

    def publish(self, session: Session) -> Published:
        """Run or resume the steps; raises PublishFailure or PublishStopped."""


class PlatformHttp:
    """What every client shares: config, an httpx client, the OAuth helper."""

    name = ""
    label = ""
    cover_picture = False
    scope = ""
    token_host = ""
    token_path = ""
    refresh_margin = 300.0  # refresh an access token this long before it expires
    shortest = 0.0  # seconds: the shortest video the platform takes (0: it states none)
    longest = 0.0  # seconds: the longest it takes from any account (0: no limit of its own)

    def __init__(
        self, settings: Settings, client_id: str | None, client_secret: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock  # token expiry is reckoned on the app's clock
        self.client_id = client_id
        self.client_secret = client_secret
        self.http = httpx.Client(timeout=settings.publish_timeout, trust_env=False)

    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)

    def url(self, host: str, path: str, *, browser: bool = False) -> str:
        return self.settings.platform_url(host, browser=browser) + path

    def post_link(self, address: str | None) -> str | None:
        """A post's address as the creator's browser opens it: the platform's own, or,
        against the fakes (sandbox, tests), the fake's page for that post, which plays
        the file that was posted (a real-looking address there would lead nowhere)."""
        if not address:
            return None
        parts = urlsplit(address)
        return self.url(parts.netloc, parts.path.rstrip("/") + (f"?{parts.query}" if parts.query else ""), browser=True)

    def oauth(self, redirect_uri: str | None = None) -> OAuth2Client:
        """authlib does state, PKCE and token parsing; hosts come from our config."""
        return OAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            scope=self.scope,
            redirect_uri=redirect_uri,
            token_endpoint_auth_method="client_secret_post",
            code_challenge_method="S256",
            timeout=self.settings.publish_timeout,
            trust_env=False,
        )

    def token_url(self) -> str:
        return self.url(self.token_host, self.token_path)

    def fetch_profile(self, tokens: Tokens) -> dict[str, Any]:
        """Account details that decide what a post may be; most platforms have none."""
        return {}

    # OAuth error codes that mean the grant is gone and only the creator can fix it.
    lost_grant_errors: frozenset[str] = frozenset({"invalid_grant"})

    def exchange_code(self, code: str, verifier: str | None, redirect_uri: str) -> dict[str, Any]:
        """The token endpoint's answer for an authorization code."""
        extra = {"code_verifier": verifier} if verifier else {}
        with self.oauth(redirect_uri) as client:
            try:
                return client.fetch_token(self.token_url(), grant_type="authorization_code", code=code, **extra)
            except OAuthError as exc:
                raise PublishFailure("permanent", exc.error or "oauth", exc.description or str(exc)) from None

    def refresh(self, tokens: Tokens) -> Tokens:
        """A standard refresh_token grant; a lost grant means reconnect."""
        now = self.clock()
        with self.oauth() as client:
            try:
                answer = client.refresh_token(self.token_url(), refresh_token=tokens.refresh_token)
            except OAuthError as exc:
                kind = "reconnect" if exc.error in self.lost_grant_errors else "retry"
                raise PublishFailure(kind, exc.error or "oauth", exc.description or str(exc)) from None
            except httpx.HTTPError as exc:
                raise transport_failure(exc, f"refreshing the {self.label} token") from None
        return Tokens.from_oauth(answer, now, previous=tokens)

    def close(self) -> None:
        self.http.close()


def retry_after_seconds(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"), time.time())


def transport_failure(exc: httpx.HTTPError, what: str) -> PublishFailure:
    return PublishFailure("retry", "network", f"{what}: {type(exc).__name__}: {exc}")
