"""Every setting, read once from VIDPROD_* environment variables.

Defaults run locally with nothing else installed: SQLite, the Huey queue and media
files all live under ./data. An invalid value stops start-up with a message that
names the variable, so an operator never finds out about a typo at 3 a.m.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vidprod.media.probe import InputLimits


class ConfigError(ValueError):
    """A VIDPROD_* variable holds a value we cannot use."""


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("must be a whole number") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _landmark_interval(text: str) -> int:
    value = _int(text)
    if not 1 <= value <= 3:
        raise ValueError("must be 1, 2 or 3")
    return value


def _port(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port number (0-65535)")
    return value


def _path(text: str) -> Path:
    if not text.strip():
        raise ValueError("must not be empty")
    return Path(text).expanduser()


def _token(text: str) -> str:
    if len(text) < 16:
        raise ValueError("must be at least 16 characters long")
    return text


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return level


def _output_height(text: str) -> int:
    value = _int(text)
    if not 640 <= value <= 1920 or value % 16:
        raise ValueError("must be a multiple of 16 from 640 to 1920")
    return value


def _landscape(text: str) -> str:
    from vidprod.media.framing import LANDSCAPE_MODES  # only when the variable is set

    if text not in LANDSCAPE_MODES:
        raise ValueError("must be one of " + ", ".join(LANDSCAPE_MODES))
    return text


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("use 1 or 0")


def _retry_schedule(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError("a comma-separated list of seconds, such as 0,5,300") from None
    if not delays or any(d < 0 for d in delays):
        raise ValueError("a comma-separated list of seconds, none negative")
    return delays


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError("use one of: " + ", ".join(allowed))
        return text

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number from 0 to 1") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be a number from 0 to 1")
    return value


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")) or " " in text:
        raise ValueError("must be an http:// or https:// URL")
    return text.rstrip("/")


def _queue_url(text: str) -> str:
    if not text.startswith(("redis://", "rediss://")) or " " in text:
        raise ValueError("must be a redis:// or rediss:// URL (unset: the embedded SQLite queue)")
    return text


def _storage_url(text: str) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(text)
    if parsed.scheme != "s3" or not parsed.netloc or " " in text:
        raise ValueError("must be s3://BUCKET or s3://BUCKET/PREFIX (unset: files in the data dir)")
    return text.rstrip("/")


def _chunk_bytes(text: str) -> int:
    value = _positive_int(text)
    if value % (256 * 1024):
        raise ValueError("must be a multiple of 262144 (256 KiB, YouTube's unit)")
    return value


def _shown(default: Any) -> str:
    if isinstance(default, tuple):
        return ",".join(f"{value:g}" for value in default)
    if isinstance(default, bool):
        return str(int(default))
    return str(default)


def _setting(env: str, parse: Callable[[str], Any], default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _setting(
        "VIDPROD_DATA_DIR", _path, Path("data"), "Database, queue and media files."
    )
    host: str = _setting("VIDPROD_HOST", str, "127.0.0.1", "Address the server binds to.")
    port: int = _setting("VIDPROD_PORT", _port, 8000, "Port the server listens on.")
    admin_token: str | None = _setting(
        "VIDPROD_ADMIN_TOKEN",
        _token,
        None,
        "API token; generated and stored in the data dir when unset.",
    )
    segment_seconds: int = _setting(
        "VIDPROD_SEGMENT_SECONDS", _positive_int, 60, "Longest part, in seconds."
    )
    min_part_seconds: int = _setting(
        "VIDPROD_MIN_PART_SECONDS", _positive_int, 5, "Shortest part (no short tails), in seconds."
    )
    output_height: int = _setting(
        "VIDPROD_OUTPUT_HEIGHT", _output_height, 1920, "Height of the 9:16 parts (1920 = 1080x1920)."
    )
    landscape: str = _setting(
        "VIDPROD_LANDSCAPE", _landscape, "blur", "Landscape video: blur, crop (follow the face) or keep."
    )
    face_model: Path | None = _setting(
        "VIDPROD_FACE_MODEL", _path, None, "Face landmarker model (default: the verified bundled copy)."
    )
    gaze: bool = _setting(
        "VIDPROD_GAZE", _flag, False,
        "1: eye-contact correction on by default for new jobs (an upload's `gaze` field overrides it).",
    )
    gaze_strength: float = _setting(
        "VIDPROD_GAZE_STRENGTH", _fraction, 1.0,
        "Default eye-contact strength, 0 (none) to 1 (the eyes turned by the whole angle measured below the lens).",
    )
    gaze_landmark_interval: int = _setting(
        "VIDPROD_GAZE_LANDMARK_INTERVAL", _landmark_interval, 3,
        "Eye contact: face landmarks on every Nth frame (1-3), those between interpolated; "
        "a quality setting, never changed by the machine's speed.",
    )
    max_upload_mb: int = _setting(
        "VIDPROD_MAX_UPLOAD_MB", _positive_int, 2048, "Largest accepted upload, in MB."
    )
    max_duration_minutes: int = _setting(
        "VIDPROD_MAX_DURATION_MINUTES", _positive_int, 60,
        "Longest accepted video, in minutes (422 at upload beyond it).",
    )
    max_frame_gap_seconds: float = _setting(
        "VIDPROD_MAX_FRAME_GAP_SECONDS", _positive_number, 2.0,
        "Longest time between two pictures of an accepted video, in seconds (422 beyond it);"
        " kept under the shortest part (3 s), so no part can outgrow its limit.",
    )
    max_frame_pixels: int = _setting(
        "VIDPROD_MAX_FRAME_PIXELS", _positive_int, 4096 * 2160,
        "Largest accepted picture, width x height (default DCI 4K, 4096x2160, either way up).",
    )
    queue_url: str | None = _setting(
        "VIDPROD_QUEUE_URL", _queue_url, None,
        "Render queue: unset, the embedded SQLite queue; redis://HOST:PORT/DB, Redis shared"
        " with `vidprod worker` processes on other machines.",
    )
    storage_url: str | None = _setting(
        "VIDPROD_STORAGE_URL", _storage_url, None,
        "Media files: unset, under the data dir; s3://BUCKET/PREFIX, S3-compatible storage"
        " (endpoint and keys from AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).",
    )
    lease_seconds: int = _setting(
        "VIDPROD_LEASE_SECONDS", _positive_int, 30,
        "A render worker that has not renewed its lease for this long is taken for dead and"
        " its job is resumed by another (with VIDPROD_QUEUE_URL).",
    )
    fly_machines_url: str | None = _setting(
        "VIDPROD_FLY_MACHINES_URL", _url, None,
        "With VIDPROD_QUEUE_URL on Fly.io: the Machines API (http://_api.internal:4280) through"
        " which the primary starts stopped `worker` Machines when renders wait (needs FLY_API_TOKEN).",
    )
    workers: int = _setting(
        "VIDPROD_WORKERS", _positive_int, 1, "Render worker threads (each uses ~2 cores)."
    )
    log_level: str = _setting("VIDPROD_LOG_LEVEL", _log_level, "INFO", "Logging level.")
    log_format: str = _setting(
        "VIDPROD_LOG_FORMAT", _choice("auto", "json", "text"), "auto",
        "json (one object a line), text, or auto: text in a terminal, json otherwise.",
    )
    database_dir: Path | None = _setting(
        "VIDPROD_DATABASE_DIR", _path, None,
        "Where vidprod.db lives (default: the data dir; /litefs under LiteFS).",
    )
    idle_exit_seconds: int = _setting(
        "VIDPROD_IDLE_EXIT_SECONDS", _non_negative_int, 0,
        "Exit (status 0) after this long with nothing to do; 0 never (Fly sets 300).",
    )
    keep_hours: int = _setting(
        "VIDPROD_KEEP_HOURS", _positive_int, 48,
        "Hours a finished job's video files are kept once nothing will publish them.",
    )
    upload_chunk_mb: float = _setting(
        "VIDPROD_UPLOAD_CHUNK_MB", float, 8.0,
        "Size of each resumable-upload request the upload page sends: a dropped connection"
        " costs at most this much again.",
    )
    upload_stall_seconds: int = _setting(
        "VIDPROD_UPLOAD_STALL_SECONDS", _positive_int, 60,
        "A multipart upload that sends nothing for this long is stopped (408) and its bytes dropped.",
    )
    upload_expire_hours: int = _setting(
        "VIDPROD_UPLOAD_EXPIRE_HOURS", _positive_int, 24,
        "Hours an unfinished resumable (tus) upload is kept after the last byte arrived.",
    )
    min_free_mb: int = _setting(
        "VIDPROD_MIN_FREE_MB", _non_negative_int, 512,
        "Refuse uploads (507) that would leave less free disk than this.",
    )
    metrics: str = _setting(
        "VIDPROD_METRICS", _choice("token", "public", "off"), "token",
        "/metrics: token (needs the admin token), public, or off.",
    )
    metrics_port: int = _setting(
        "VIDPROD_METRICS_PORT", _port, 0,
        "Also serve /metrics on this port without the token, for a scraper on a private"
        " network only (Fly's [metrics]); 0: not served.",
    )
    rate_limit: int = _setting(
        "VIDPROD_RATE_LIMIT", _non_negative_int, 600,
        "Requests a minute per client address; 0 turns the limit off.",
    )
    behind_fly: bool = _setting(
        "VIDPROD_BEHIND_FLY", _flag, False,
        "1 behind Fly's proxy: trust Fly-Client-IP for the client address.",
    )
    webhook_allow_private: bool = _setting(
        "VIDPROD_WEBHOOK_ALLOW_PRIVATE",
        _flag,
        False,
        "1 lets webhooks reach private addresses and plain http: tests and local use only.",
    )
    webhook_retry_schedule: tuple[float, ...] = _setting(
        "VIDPROD_WEBHOOK_RETRY_SCHEDULE",
        _retry_schedule,
        (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0),
        "Seconds before each webhook attempt (after the last, a delivery has failed).",
    )
    webhook_workers: int = _setting(
        "VIDPROD_WEBHOOK_WORKERS", _positive_int, 8, "Threads sending webhooks (I/O only)."
    )

    platforms: str = _setting(
        "VIDPROD_PLATFORMS", _choice("auto", "sandbox", "live"), "auto",
        "sandbox: built-in fake TikTok/Instagram/YouTube; live: the real ones; auto: live"
        " once any client id is set, else sandbox.",
    )
    public_url: str | None = _setting(
        "VIDPROD_PUBLIC_URL", _url, None,
        "The app's address as browsers reach it (OAuth redirects); default http://HOST:PORT.",
    )
    secret_key: str | None = _setting(
        "VIDPROD_SECRET_KEY", str, None,
        "Fernet key(s), comma-separated, newest first, encrypting account tokens and webhook"
        " secrets; generated into the data dir (beside the database: the app warns) when unset.",
    )
    tiktok_client_key: str | None = _setting("VIDPROD_TIKTOK_CLIENT_KEY", str, None, "TikTok app client key.")
    tiktok_client_secret: str | None = _setting(
        "VIDPROD_TIKTOK_CLIENT_SECRET", str, None, "TikTok app client secret."
    )
    tiktok_inbox_fallback: bool = _setting(
        "VIDPROD_TIKTOK_INBOX_FALLBACK", _flag, False,
        "1: when TikTok refuses a direct post, upload it to the creator's inbox as a draft.",
    )
    instagram_client_id: str | None = _setting(
        "VIDPROD_INSTAGRAM_CLIENT_ID", str, None, "Instagram app id (Instagram API with Instagram Login)."
    )
    instagram_client_secret: str | None = _setting(
        "VIDPROD_INSTAGRAM_CLIENT_SECRET", str, None, "Instagram app secret."
    )
    google_client_id: str | None = _setting(
        "VIDPROD_GOOGLE_CLIENT_ID", str, None, "Google OAuth client id (YouTube)."
    )
    google_client_secret: str | None = _setting(
        "VIDPROD_GOOGLE_CLIENT_SECRET", str, None, "Google OAuth client secret."
    )
    platform_base_url: str | None = _setting(
        "VIDPROD_PLATFORM_BASE_URL", _url, None,
        "Reach every platform host at BASE/<host>/... instead of https://<host>/ (tests, fakes).",
    )
    publish_attempts: int = _setting(
        "VIDPROD_PUBLISH_ATTEMPTS", _positive_int, 5,
        "Tries per publication before it is dead-lettered.",
    )
    publish_workers: int = _setting(
        "VIDPROD_PUBLISH_WORKERS", _positive_int, 2, "Threads uploading to platforms (I/O only)."
    )
    publish_chunk_bytes: int = _setting(
        "VIDPROD_PUBLISH_CHUNK_BYTES", _chunk_bytes, 10 * 1024 * 1024,
        "Chunk size of TikTok (held to 5-64 MiB), Instagram and YouTube uploads, in bytes.",
    )
    publish_timeout: int = _setting(
        "VIDPROD_PUBLISH_TIMEOUT", _positive_int, 120,
        "Seconds to wait for one platform request (a chunk upload included).",
    )
    dispatch_seconds: int = _setting(
        "VIDPROD_DISPATCH_SECONDS", _positive_int, 60,
        "How often due publications are looked for (besides their own timers).",
    )
    tiktok_daily_posts: int = _setting(
        "VIDPROD_TIKTOK_DAILY_POSTS", _positive_int, 15, "Posts per TikTok account in any 24 h."
    )
    youtube_daily_uploads: int = _setting(
        "VIDPROD_YOUTUBE_DAILY_UPLOADS", _positive_int, 100,
        "videos.insert calls per day, all channels together (the project's quota bucket).",
    )
    test_clock_file: Path | None = _setting(
        "VIDPROD_TEST_CLOCK_FILE", _path, None,
        "Tests only: a file holding seconds added to the clock of schedules, retries"
        " and upload expiry.",
    )

    @property
    def database_path(self) -> Path:
        return (self.database_dir or self.data_dir) / "vidprod.db"

    @property
    def is_replica(self) -> bool:
        """Under LiteFS, a `.primary` file next to the database means another node writes."""
        return (self.database_path.parent / ".primary").exists()

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queue.db"

    @property
    def io_queue_path(self) -> Path:
        return self.data_dir / "io-queue.db"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def scratch_dir(self) -> Path:
        """Renders' working files when media live elsewhere (emptied at every start)."""
        return self.tmp_dir / "scratch"

    @property
    def upload_chunk_bytes(self) -> int:
        return max(64 * 1024, int(self.upload_chunk_mb * 1024 * 1024))

    @property
    def tus_dir(self) -> Path:
        """Resumable uploads in progress: in the data dir like media_dir, so that
        adopting a finished one into its job is a rename."""
        return self.data_dir / "uploads" / "tus"

    @property
    def sandbox(self) -> bool:
        """Whether the built-in fake platforms stand in for the real ones."""
        if self.platforms != "auto":
            return self.platforms == "sandbox"
        return not (self.tiktok_client_key or self.instagram_client_id or self.google_client_id)

    @property
    def internal_url(self) -> str:
        """How this process reaches itself (the sandbox's API calls)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def browser_url(self) -> str:
        return self.public_url or self.internal_url

    def platform_url(self, host: str, *, browser: bool = False) -> str:
        """The base URL of a platform host: `https://host`, or under the fake's base."""
        if self.sandbox:
            return f"{self.browser_url if browser else self.internal_url}/sandbox/{host}"
        if self.platform_base_url:
            return f"{self.platform_base_url}/{host}"
        return f"https://{host}"

    @property
    def output_size(self) -> tuple[int, int]:
        return self.output_height * 9 // 16, self.output_height

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def input_limits(self) -> InputLimits:
        from vidprod.media.probe import InputLimits  # media imports nothing from here

        return InputLimits(
            max_seconds=self.max_duration_minutes * 60,
            max_frame_gap=self.max_frame_gap_seconds,
            max_pixels=self.max_frame_pixels,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = environ.get(name)
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                raise ConfigError(f"{name}={raw!r} is invalid: {exc}") from None
        values.update(overrides)
        if values.get("fly_machines_url") and not (environ.get("FLY_API_TOKEN") and environ.get("FLY_APP_NAME")):
            raise ConfigError(
                "VIDPROD_FLY_MACHINES_URL needs FLY_API_TOKEN (a secret: fly tokens create machine-exec"
                " or deploy) and FLY_APP_NAME (Fly sets it)"
            )
        if values.get("queue_url") and not values.get("storage_url"):
            raise ConfigError(
                "VIDPROD_QUEUE_URL needs VIDPROD_STORAGE_URL: workers on other machines"
                " read the sources and write the parts in shared storage"
            )
        return cls(**values)

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) for every setting, for `vidprod --help`."""
        return [
            (f.metadata["env"], _shown(f.default), f.metadata["doc"]) for f in fields(cls)
        ]
