"""ASGI middleware: request ids and idle tracking, security headers, the client's address."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from litestar import Request
from litestar.config.compression import CompressionConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import CompressionEncoding
from litestar.middleware.compression import CompressionMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from vidprod import logs
from vidprod.domain.idle import PROBE_PATHS, IdleWatch

access = logging.getLogger("vidprod.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

# No inline script or style anywhere, so the policy can forbid them.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def request_tracking(get_watch: Callable[[], IdleWatch | None]) -> Callable[[ASGIApp], ASGIApp]:
    """A request id for each request (the caller's X-Request-ID when it is sane), set for
    the logs and echoed back; and every request told to the idle watch."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def tracked(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            given = MutableScopeHeaders(scope).get("x-request-id", "")
            rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
            token = logs.request_id.set(rid)

            status = 0
            started = time.perf_counter()

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    MutableScopeHeaders.from_message(message)["x-request-id"] = rid
                await send(message)

            watch = get_watch()
            counted = watch.request_started(scope["path"]) if watch else False
            try:
                await app(scope, receive, send_with_id)
            finally:
                if counted and watch:
                    watch.request_finished()
                # One line a request; probes only at debug level (Fly checks every 30 s).
                access.log(
                    logging.DEBUG if scope["path"] in PROBE_PATHS else logging.INFO,
                    "%s %s %d %.1f ms", scope["method"], scope["path"], status,
                    (time.perf_counter() - started) * 1000,
                )  # fmt: skip
                logs.request_id.reset(token)

        return tracked

    return middleware


def _secure_cookie(value: bytes) -> bytes:
    attributes = [part.strip().lower() for part in value.split(b";")[1:]]
    return value if b"secure" in attributes else value + b"; Secure"


def security_headers(trust_forwarded_proto: bool) -> Callable[[ASGIApp], ASGIApp]:
    def middleware(app: ASGIApp) -> ASGIApp:
        async def secured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            https = scope.get("scheme") == "https" or (
                trust_forwarded_proto and MutableScopeHeaders(scope).get("x-forwarded-proto") == "https"
            )

            async def send_secured(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = MutableScopeHeaders.from_message(message)
                    headers["x-content-type-options"] = "nosniff"
                    headers["x-frame-options"] = "DENY"
                    headers["referrer-policy"] = "same-origin"
                    headers["content-security-policy"] = CONTENT_SECURITY_POLICY
                    # Answers are the creator's own (jobs, tokens, pages): no shared or
                    # browser cache keeps them. Static files set their own caching.
                    if "cache-control" not in headers:
                        headers["cache-control"] = "no-store"
                    if https:
                        headers["strict-transport-security"] = "max-age=31536000; includeSubDomains"
                        # The session config marks cookies Secure only when VIDPROD_PUBLIC_URL
                        # says https; a request that came over https gets them Secure anyway.
                        message["headers"] = [
                            (name, _secure_cookie(value) if name.lower() == b"set-cookie" else value)
                            for name, value in message["headers"]
                        ]
                await send(message)

            await app(scope, receive, send_secured)

        return secured

    return middleware


def client_address(behind_fly: bool) -> Callable[[Request], str]:
    """Behind Fly's proxy the client is in Fly-Client-IP (set by the proxy, not the client);
    anywhere else that header could be forged, so the socket's address is used."""

    def address(request: Request) -> str:
        if behind_fly and (fly := request.headers.get("fly-client-ip")):
            return fly
        return request.client.host if request.client else "unknown"

    return address


# What is worth compressing: pages, CSS, JS, JSON and problem+json, SVG, subtitles and
# the live event stream (gzip flushes after every event, so events still arrive at once).
_TEXT = re.compile(r"^(text/|application/([a-z.+-]*json|javascript|xml)|image/svg\+xml)")


class TextCompression(CompressionMiddleware):
    """Litestar's gzip, for text only: videos and pictures are compressed already (gzip
    would only cost CPU), a byte range of a video must stay a range of the file itself,
    and tus upload answers are empty."""

    def create_compression_send_wrapper(
        self, send: Send, compression_encoding: CompressionEncoding | str, scope: Scope
    ) -> Send:
        compressing = super().create_compression_send_wrapper(send, compression_encoding, scope)  # type: ignore[arg-type]
        chosen: Send = send

        async def choose(message: Message) -> None:
            nonlocal chosen
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                text = bool(_TEXT.match(headers.get("content-type", "")))
                chosen = compressing if text and "content-range" not in headers and message["status"] != 206 else send
            await chosen(message)

        return choose


def compression() -> CompressionConfig:
    return CompressionConfig(backend="gzip", gzip_compress_level=6, middleware_class=TextCompression)
