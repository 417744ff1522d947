"""The state of the fake platforms, and the handles tests use to inject faults.

One `FakePlatforms` holds everything the three fakes know: tokens, authorization codes,
uploads in progress, containers, posts. It is plain JSON-shaped data (`self.data`) so
that it can be saved after every change and loaded again after a restart; the test
handles (faults, counters, recorded requests, rate windows) live beside it in memory
and are never saved. One lock guards both: the web handlers run in the event loop
while tests call in from their own thread.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vidprod.sandbox.pages import PageLook

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
DAY = 86400.0

PLATFORMS = ("tiktok", "instagram", "youtube")
POSTED_KEPT = 30  # posted files kept for the sandbox's post pages

# The one creator each fake knows.
ACCOUNTS: dict[str, dict[str, str]] = {
    "tiktok": {
        "id": "-000sandboxTikTokOpenId0001",
        "name": "Sandbox TikTok creator",
        "username": "sandbox.creator",
    },
    "instagram": {"id": "17841400000000001", "name": "Sandbox Instagram creator", "username": "sandbox_creator"},
    "youtube": {"id": "UCsandboxYouTubeChannel01", "name": "Sandbox YouTube channel", "username": "@sandboxchannel"},
}

DEFAULT_CLIENTS: dict[str, tuple[str, str]] = {
    "tiktok": ("sandbox-tiktok", "sandbox-secret"),
    "instagram": ("sandbox-instagram", "sandbox-secret"),
    "youtube": ("sandbox-youtube.apps.googleusercontent.com", "sandbox-secret"),
}

# Every operation a request can be counted, recorded and faulted under.
OPERATIONS = frozenset(
    {
        "tiktok.authorize",
        "tiktok.token",
        "tiktok.user_info",
        "tiktok.creator_info",
        "tiktok.init",
        "tiktok.upload",
        "tiktok.status",
        "instagram.authorize",
        "instagram.token",
        "instagram.exchange",
        "instagram.refresh",
        "instagram.me",
        "instagram.create",
        "instagram.upload",
        "instagram.upload_offset",
        "instagram.status",
        "instagram.publish",
        "instagram.limit",
        "instagram.media",
        "youtube.authorize",
        "youtube.token",
        "youtube.channels",
        "youtube.insert",
        "youtube.upload",
        "youtube.videos",
        "youtube.thumbnails",
        "youtube.captions",
    }
)
UPLOAD_OPERATIONS = frozenset({"tiktok.upload", "instagram.upload", "youtube.upload"})


@dataclass
class Rules:
    """What the fakes enforce. Byte sizes and counts can be scaled down for tests."""

    # OAuth
    code_ttl: float = 600.0
    # TikTok Content Posting API
    tiktok_min_chunk: int = 5 * MiB
    tiktok_max_chunk: int = 64 * MiB
    tiktok_max_last_chunk: int = 128 * MiB
    tiktok_max_chunks: int = 1000
    tiktok_max_video_size: int = 4 * GiB
    tiktok_privacy_options: tuple[str, ...] = (
        "PUBLIC_TO_EVERYONE",
        "MUTUAL_FOLLOW_FRIENDS",
        "FOLLOWER_OF_CREATOR",
        "SELF_ONLY",
    )
    tiktok_max_duration_sec: int = 600
    tiktok_min_duration_sec: float = 3.0
    tiktok_title_max: int = 2200
    tiktok_init_per_minute: int = 6
    tiktok_creator_info_per_minute: int = 20
    tiktok_status_per_minute: int = 30
    tiktok_daily_posts: int = 15
    tiktok_pending_shares: int = 5  # inbox drafts a day
    tiktok_upload_url_ttl: float = 3600.0
    tiktok_processing_polls: int = 1  # status polls answering PROCESSING_UPLOAD after the last chunk
    tiktok_access_ttl: float = DAY
    tiktok_refresh_ttl: float = 365 * DAY
    # Instagram API with Instagram Login
    instagram_short_ttl: float = 3600.0
    instagram_long_ttl: float = 60 * DAY
    instagram_refresh_min_age: float = DAY  # a long-lived token must be this old to refresh
    instagram_daily_posts: int = 50  # content_publishing_limit config.quota_total
    instagram_processing_polls: int = 1  # status polls answering IN_PROGRESS after the upload
    instagram_container_ttl: float = DAY
    instagram_max_file_size: int = 300 * MiB
    instagram_caption_max: int = 2200
    instagram_max_hashtags: int = 30
    instagram_max_mentions: int = 20
    instagram_hourly_calls: int = 200  # 100 % of X-App-Usage call_count; past it: code 4
    # YouTube Data API v3 and Google OAuth
    youtube_chunk_granularity: int = 256 * KiB
    youtube_max_file_size: int = 256 * GiB
    youtube_daily_inserts: int = 100  # per project (client id), videos.insert's own bucket
    youtube_daily_uploads: int = 50  # per channel
    youtube_access_ttl: float = 3600.0
    youtube_unverified_project: bool = False  # True: every upload is forced to private
    youtube_custom_thumbnails: bool = True  # False: the channel may not set thumbnails (403 forbidden)
    youtube_max_thumbnail: int = 2 * MiB


@dataclass
class Fault:
    """An error to answer instead of doing the work, in the platform's own format."""

    status: int
    code: str | int | None = None
    message: str | None = None
    retry_after: float | None = None
    subcode: int | None = None


@dataclass
class Arrival:
    """What a request picked up when it arrived: at most one fault, cut or hang."""

    fault: Fault | None = None
    cut: bool = False
    keep_bytes: int | None = None  # with cut: how much of an upload body to keep
    hang: float = 0.0


def new_id(prefix: str = "", nbytes: int = 12) -> str:
    return prefix + secrets.token_urlsafe(nbytes).replace("-", "a").replace("_", "b")


def numeric_id(digits: int = 17) -> str:
    """Meta's ids are decimal strings."""
    return str(secrets.randbelow(9 * 10 ** (digits - 1)) + 10 ** (digits - 1))


def _fresh_data() -> dict[str, Any]:
    return {
        "version": 1,
        "tokens": {},
        "codes": {},
        "posts": [],
        "tiktok": {"publishes": {}},
        "instagram": {"containers": {}, "media": {}},
        "youtube": {"sessions": {}, "videos": {}, "inserts": {}, "captions": {}},
    }


class FakePlatforms:
    """State of the TikTok, Instagram and YouTube fakes, plus fault injection for tests.

    clients: platform -> (client id, client secret) the fakes accept.
    clock: seconds since the epoch; every expiry, 24 h window and rate window uses it.
    rules: sizes, caps and lifetimes the fakes enforce (see `Rules`).
    upload_dir: where received bytes are kept while an upload is in progress.
    state_file: when set, the state is loaded from it and saved to it after each change.
    """

    def __init__(
        self,
        *,
        clients: dict[str, tuple[str, str]] | None = None,
        clock: Callable[[], float] = time.time,
        rules: Rules | None = None,
        upload_dir: Path | None = None,
        state_file: Path | None = None,
        redirect_uris: Collection[str] | None = None,
        look: PageLook | None = None,
    ) -> None:
        self.look = look  # the host app's stylesheet and icon for the fake's pages
        self.clients = {**DEFAULT_CLIENTS, **(clients or {})}
        # The apps' registered redirect URIs; None: any on this machine (127.0.0.1,
        # localhost), as tests' apps use free ports. Anything else is refused.
        self.redirect_uris = frozenset(redirect_uris) if redirect_uris is not None else None
        self.clock = clock
        self.rules = rules or Rules()
        self.upload_dir = Path(upload_dir or tempfile.mkdtemp(prefix="vidprod-sandbox-"))
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self.state_file = state_file
        self.lock = threading.RLock()
        self._arrived = threading.Condition(self.lock)
        self.data = self._load()
        # Test handles, in memory only.
        self._seen: Counter[str] = Counter()
        self._requests: dict[str, list[Any]] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self._cuts: dict[str, deque[int | None]] = {}
        self._hangs: dict[str, deque[float]] = {}
        self._expire_after: dict[str, set[str]] = {}
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._busy: set[str] = set()  # uploads receiving a body right now

    # ---- persistence -------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        if self.state_file is not None and self.state_file.exists():
            return json.loads(self.state_file.read_text())
        return _fresh_data()

    def save(self) -> None:
        """Write the state atomically (a crash leaves the old or the new file, never half)."""
        if self.state_file is None:
            return
        with self.lock:
            text = json.dumps(self.data, separators=(",", ":"))
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            partial = self.state_file.with_name(self.state_file.name + ".tmp")
            with open(partial, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, self.state_file)

    @contextmanager
    def changing(self) -> Iterator[dict[str, Any]]:
        """Hold the lock while changing `data`; saved once the block ends without error."""
        with self.lock:
            yield self.data
            self.save()

    # ---- what tests read ---------------------------------------------------------

    def posts(self, platform: str | None = None, *, include_drafts: bool = False) -> list[dict[str, Any]]:
        """Every published post (oldest first): platform, account, id, title, caption,
        privacy, size, sha256, published_at, draft. TikTok inbox uploads are drafts:
        left out unless include_drafts."""
        with self.lock:
            return [
                copy.deepcopy(post)
                for post in self.data["posts"]
                if (platform is None or post["platform"] == platform) and (include_drafts or not post["draft"])
            ]

    def seen(self, operation: str) -> int:
        """How many requests of `operation` have arrived (counted on arrival)."""
        self._check_operation(operation)
        with self.lock:
            return self._seen[operation]

    def wait_for(self, operation: str, count: int = 1, timeout: float = 10.0) -> bool:
        """Block until `count` requests of `operation` have arrived; False on timeout."""
        self._check_operation(operation)
        deadline = time.monotonic() + timeout
        with self._arrived:
            while self._seen[operation] < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._arrived.wait(left)
            return True

    def requests(self, operation: str) -> list[Any]:
        """What each request of `operation` sent, parsed: the JSON body, the form and
        query parameters as one dict, or for uploads the headers that matter and the size."""
        self._check_operation(operation)
        with self.lock:
            return copy.deepcopy(self._requests.get(operation, []))

    def account(self, platform: str) -> dict[str, str]:
        """The fake creator of `platform`: id, name, username."""
        return dict(ACCOUNTS[platform])

    # ---- faults ------------------------------------------------------------------

    def fail_next(
        self,
        operation: str,
        status: int,
        code: str | int | None = None,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        times: int = 1,
        subcode: int | None = None,
    ) -> None:
        """The next `times` requests of `operation` answer this error, in the platform's
        own format, without doing any work. `code` is TikTok's error.code, Meta's integer
        code (with `subcode`), Google's errors[0].reason or the OAuth `error`; a default
        that fits `status` is used when it is None. Retry-After is sent when given."""
        self._check_operation(operation)
        with self.lock:
            queue = self._faults.setdefault(operation, deque())
            queue.extend(Fault(status, code, message, retry_after, subcode) for _ in range(times))

    def cut_next(self, operation: str, after_bytes: int | None = None) -> None:
        """The next request of `operation` does its work, then the connection is dropped
        before the answer is complete (the client sees a transport error, e.g.
        httpx.RemoteProtocolError). For uploads the whole body is read but only the first
        `after_bytes` count as received (None: all of it), as a real resumable server
        keeps it: TikTok keeps nothing of a partial chunk, YouTube whole multiples of
        256 KiB, Instagram every byte."""
        self._check_operation(operation)
        if after_bytes is not None and operation not in UPLOAD_OPERATIONS:
            raise ValueError(f"after_bytes only applies to uploads ({', '.join(sorted(UPLOAD_OPERATIONS))})")
        with self.lock:
            self._cuts.setdefault(operation, deque()).append(after_bytes)

    def hang_next(self, operation: str, seconds: float) -> None:
        """The next request of `operation` does its work (a publish really publishes,
        and is saved), then waits `seconds` before answering."""
        self._check_operation(operation)
        with self.lock:
            self._hangs.setdefault(operation, deque()).append(seconds)

    def expire_tokens(self, platform: str, after: str | None = None) -> None:
        """Make every access token of `platform` expire now, or right after the next
        successful request of operation `after`. Refresh tokens stay valid."""
        if platform not in PLATFORMS:
            raise ValueError(f"unknown platform {platform!r}")
        if after is None:
            self._expire_now(platform)
            return
        self._check_operation(after)
        with self.lock:
            self._expire_after.setdefault(after, set()).add(platform)

    def _expire_now(self, platform: str) -> None:
        with self.changing() as data:
            now = self.clock()
            for token in data["tokens"].values():
                if token["platform"] == platform and token["kind"] in ("access", "short", "long"):
                    token["expires_at"] = min(token["expires_at"], now)

    # ---- used by the handlers ----------------------------------------------------

    def arrive(self, operation: str) -> Arrival:
        """Count a request and hand it the next fault queued for its operation."""
        with self._arrived:
            self._seen[operation] += 1
            self._arrived.notify_all()
            if faults := self._faults.get(operation):
                return Arrival(fault=faults.popleft())
            arrival = Arrival()
            if cuts := self._cuts.get(operation):
                arrival.cut, arrival.keep_bytes = True, cuts.popleft()
            if hangs := self._hangs.get(operation):
                arrival.hang = hangs.popleft()
            return arrival

    def record(self, operation: str, what: Any) -> None:
        with self.lock:
            self._requests.setdefault(operation, []).append(copy.deepcopy(what))

    def succeeded(self, operation: str) -> None:
        """A request answered with success: expire tokens armed with `after=operation`."""
        with self.lock:
            platforms = self._expire_after.pop(operation, set())
        for platform in platforms:
            self._expire_now(platform)

    def take_rate(self, key: str, token: str, limit: int, window: float = 60.0) -> float | None:
        """Count one call against a sliding window; the seconds to wait when it is full."""
        now = self.clock()
        with self.lock:
            calls = self._windows.setdefault((key, token), deque())
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) >= limit:
                return max(1.0, calls[0] + window - now)
            calls.append(now)
            return None

    def calls_in_window(self, key: str, token: str, window: float) -> int:
        """Count one call and return how many fell in the last `window` seconds."""
        now = self.clock()
        with self.lock:
            calls = self._windows.setdefault((key, token), deque())
            calls.append(now)
            while calls and calls[0] <= now - window:
                calls.popleft()
            return len(calls)

    # ---- tokens and codes ----------------------------------------------------------

    def issue_code(self, platform: str, params: dict[str, str], scopes: list[str]) -> str:
        """A single-use authorization code for the consent the user just gave."""
        code = new_id(nbytes=24)
        with self.changing() as data:
            data["codes"][code] = {
                "platform": platform,
                "client_id": params.get("client_id") or params.get("client_key"),
                "redirect_uri": params.get("redirect_uri"),
                "scopes": scopes,
                "code_challenge": params.get("code_challenge"),
                "code_challenge_method": params.get("code_challenge_method"),
                "access_type": params.get("access_type"),
                "expires_at": self.clock() + self.rules.code_ttl,
                "used": False,
            }
        return code

    def redeem_code(self, platform: str, code: str) -> tuple[dict[str, Any] | None, str]:
        """Use up a code: (its grant, "") or (None, why not)."""
        with self.changing() as data:
            grant = data["codes"].get(code)
            if grant is None or grant["platform"] != platform:
                return None, "unknown"
            if grant["used"]:
                return None, "used"
            if self.clock() >= grant["expires_at"]:
                return None, "expired"
            grant["used"] = True
            return dict(grant), ""

    def new_token(
        self, platform: str, kind: str, scopes: list[str], client_id: str, ttl: float, **extra: Any
    ) -> dict[str, Any]:
        prefixes = {"tiktok": "act.", "instagram": "IGAA", "youtube": "ya29."}
        prefix = "rft." if kind == "refresh" and platform == "tiktok" else prefixes[platform]
        if kind == "refresh" and platform == "youtube":
            prefix = "1//"
        now = self.clock()
        token = {
            "token": prefix + new_id(nbytes=32),
            "platform": platform,
            "kind": kind,
            "account": ACCOUNTS[platform]["id"],
            "scopes": list(scopes),
            "client_id": client_id,
            "issued_at": now,
            "expires_at": now + ttl,
            **extra,
        }
        with self.changing() as data:
            data["tokens"][token["token"]] = token
        return dict(token)

    def token(
        self, platform: str, value: str | None, kinds: tuple[str, ...] = ("access",)
    ) -> tuple[dict[str, Any] | None, str]:
        """Look a token up: (its record, "") or (None, "missing" | "unknown" | "expired")."""
        if not value:
            return None, "missing"
        with self.lock:
            record = self.data["tokens"].get(value)
            if record is None or record["platform"] != platform or record["kind"] not in kinds:
                return None, "unknown"
            if self.clock() >= record["expires_at"]:
                return None, "expired"
            return dict(record), ""

    def revoke(self, value: str) -> None:
        with self.changing() as data:
            data["tokens"].pop(value, None)

    # ---- posts -------------------------------------------------------------------

    def add_post(self, platform: str, post_id: str, **fields: Any) -> dict[str, Any]:
        """Record a published post (call inside `changing()`)."""
        post = {
            "platform": platform,
            "account": ACCOUNTS[platform]["id"],
            "id": post_id,
            "title": None,
            "caption": None,
            "privacy": None,
            "size": None,
            "sha256": None,
            "published_at": self.clock(),
            "draft": False,
            **fields,
        }
        self.data["posts"].append(post)
        return post

    def posts_since(self, platform: str, since: float, *, drafts: bool = False) -> int:
        with self.lock:
            return sum(
                1
                for post in self.data["posts"]
                if post["platform"] == platform and post["draft"] == drafts and post["published_at"] > since
            )

    def claim(self, upload: str) -> bool:
        """Mark an upload as receiving a body; False if another request already is."""
        with self.lock:
            if upload in self._busy:
                return False
            self._busy.add(upload)
            return True

    def release(self, upload: str) -> None:
        with self.lock:
            self._busy.discard(upload)

    def upload_path(self, name: str) -> Path:
        return self.upload_dir / f"{name}.part"

    def keep_posted(self, path: Path, platform: str, post_id: str) -> None:
        """Keep a posted file, so the post's sandbox page can play it: the newest
        POSTED_KEPT of them (a sandbox is for trying things, not an archive)."""
        folder = self.upload_dir / "posted"
        folder.mkdir(exist_ok=True)
        if not path.exists():
            return
        os.replace(path, folder / f"{platform}-{post_id}.mp4")
        kept = sorted(folder.glob("*.mp4"), key=lambda p: p.stat().st_mtime_ns)
        for old in kept[:-POSTED_KEPT]:
            old.unlink(missing_ok=True)

    def find_post(self, platform: str, key: str) -> dict[str, Any] | None:
        """A published post by its id (or, on Instagram, its shortcode)."""
        with self.lock:
            for post in self.data["posts"]:
                if post["platform"] == platform and key in (post["id"], post.get("shortcode")):
                    return copy.deepcopy(post)
        return None

    def posted_file(self, post: dict[str, Any]) -> Path | None:
        path = self.upload_dir / "posted" / f"{post['platform']}-{post['id']}.mp4"
        return path if path.is_file() else None

    def redirect_allowed(self, uri: str) -> bool:
        """Whether `uri` is a redirect URI registered for the sandbox's apps."""
        if self.redirect_uris is not None:
            return uri in self.redirect_uris
        target = urlsplit(uri)
        return target.scheme in ("http", "https") and target.hostname in ("127.0.0.1", "localhost", "::1")

    def remove_stale_parts(self, older_than: float) -> int:
        """Delete received bytes of uploads nobody has written to for `older_than`
        seconds (abandoned sessions; a finished upload's file is gone already)."""
        cutoff = time.time() - older_than
        removed = 0
        for path in self.upload_dir.glob("*.part"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    @staticmethod
    def _check_operation(operation: str) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; known: {', '.join(sorted(OPERATIONS))}")


def install_clients(path: Path) -> dict[str, tuple[str, str]]:
    """The sandbox apps' client ids with secrets made once for this install (kept 0600 in
    `path`), so nobody can redeem a code or mint tokens with a secret printed in the source."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        made = {name: [client_id, secrets.token_urlsafe(24)] for name, (client_id, _) in DEFAULT_CLIENTS.items()}
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "w") as f:
                json.dump(made, f)
    stored = json.loads(path.read_text())
    return {name: (pair[0], pair[1]) for name, pair in stored.items()}
