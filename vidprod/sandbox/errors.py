"""Each platform's error format, in one place, and injected faults rendered in them.

Platform code raises `Rejected(response)` built by one of these functions; `serve()` in
web.py turns it into the answer. Formats:

- TikTok API: {"data": {}, "error": {"code", "message", "log_id"}}
- TikTok OAuth: {"error", "error_description", "log_id"}
- Meta Graph (graph.instagram.com): {"error": {"message", "type", "code",
  "error_subcode"?, "is_transient", "fbtrace_id"}}
- Instagram OAuth (api.instagram.com): {"error_type", "code", "error_message"}
- Meta resumable upload (rupload.facebook.com): {"debug_info": {"retriable", "type", "message"}}
- Google APIs: {"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}
- Google OAuth: {"error", "error_description"}
"""

from __future__ import annotations

import math
import secrets
from typing import Any

from litestar import Response

from vidprod.sandbox.pages import error_page
from vidprod.sandbox.state import Fault


class Rejected(Exception):
    """Raised by platform code with the platform's own error answer ready."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(content=body, status_code=status, headers=headers or {}, media_type="application/json")


def ok(body: Any) -> Response:
    """A 200 JSON answer (Litestar would pick 201 for a POST)."""
    return json_response(200, body)


def _retry_headers(retry_after: float | None) -> dict[str, str]:
    return {"Retry-After": str(math.ceil(retry_after))} if retry_after is not None else {}


def log_id() -> str:
    return secrets.token_hex(16).upper()


# ---- TikTok -------------------------------------------------------------------------


def tiktok_ok(data: dict[str, Any], status: int = 200) -> Response:
    return json_response(status, {"data": data, "error": {"code": "ok", "message": "", "log_id": log_id()}})


def tiktok_error(status: int, code: str, message: str, retry_after: float | None = None) -> Rejected:
    body = {"data": {}, "error": {"code": code, "message": message, "log_id": log_id()}}
    return Rejected(json_response(status, body, _retry_headers(retry_after)))


def tiktok_oauth_error(status: int, error: str, description: str, retry_after: float | None = None) -> Rejected:
    body = {"error": error, "error_description": description, "log_id": log_id()}
    return Rejected(json_response(status, body, _retry_headers(retry_after)))


# ---- Meta -----------------------------------------------------------------------------


def graph_error(
    status: int,
    code: int,
    message: str,
    subcode: int | None = None,
    transient: bool = False,
    retry_after: float | None = None,
) -> Rejected:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["is_transient"] = transient
    error["fbtrace_id"] = secrets.token_urlsafe(16)
    return Rejected(json_response(status, {"error": error}, _retry_headers(retry_after)))


def instagram_oauth_error(
    message: str, code: int = 400, error_type: str = "OAuthException", retry_after: float | None = None
) -> Rejected:
    body = {"error_type": error_type, "code": code, "error_message": message}
    return Rejected(json_response(code, body, _retry_headers(retry_after)))


def rupload_error(
    status: int, kind: str, message: str, retriable: bool = False, retry_after: float | None = None
) -> Rejected:
    body = {"debug_info": {"retriable": retriable, "type": kind, "message": message}}
    return Rejected(json_response(status, body, _retry_headers(retry_after)))


# ---- Google ---------------------------------------------------------------------------

_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def google_error(
    status: int,
    reason: str,
    message: str,
    domain: str = "global",
    retry_after: float | None = None,
    **detail: str,
) -> Rejected:
    item = {"message": message, "domain": domain, "reason": reason, **detail}
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [item],
            "status": _GOOGLE_STATUS.get(status, "UNKNOWN"),
        }
    }
    headers = _retry_headers(retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    return Rejected(json_response(status, body, headers))


def google_oauth_error(status: int, error: str, description: str, retry_after: float | None = None) -> Rejected:
    body = {"error": error, "error_description": description}
    return Rejected(json_response(status, body, _retry_headers(retry_after)))


# ---- consent pages --------------------------------------------------------------------


def html_page(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    return Response(content=body, status_code=status, headers=headers or {}, media_type="text/html; charset=utf-8")


def page_error(status: int, message: str, retry_after: float | None = None) -> Rejected:
    """The authorize pages answer a browser: errors are small HTML pages."""
    return Rejected(html_page(status, error_page(message), _retry_headers(retry_after)))


# ---- injected faults ------------------------------------------------------------------


def fault_response(operation: str, fault: Fault) -> Response:
    """The answer for a `fail_next` fault, in the format of the operation's endpoint."""
    status, text, retry = fault.status, fault.message, fault.retry_after
    platform, _, action = operation.partition(".")
    if action == "authorize":
        rejected = page_error(status, text or f"Sandbox error {status}", retry)
    elif operation == "tiktok.token":
        rejected = tiktok_oauth_error(status, str(fault.code or _oauth_default(status)), text or "Sandbox fault", retry)
    elif platform == "tiktok":
        rejected = tiktok_error(status, str(fault.code or _tiktok_default(status)), text or "Sandbox fault", retry)
    elif operation == "instagram.token":
        rejected = instagram_oauth_error(text or "Sandbox fault", code=status, retry_after=retry)
    elif operation in ("instagram.upload", "instagram.upload_offset"):
        kind = str(fault.code or ("ProcessingFailedError" if status < 500 else "InternalServerError"))
        rejected = rupload_error(status, kind, text or "Request processing failed", status >= 500, retry)
    elif platform == "instagram":
        code = int(fault.code) if fault.code is not None else _graph_default(status)
        rejected = graph_error(
            status,
            code,
            text or "An unexpected error has occurred. Please retry your request later.",
            subcode=fault.subcode,
            transient=status >= 500 or code in (1, 2, 4, 17, 32, 613),
            retry_after=retry,
        )
    elif operation == "youtube.token":
        rejected = google_oauth_error(status, str(fault.code or _oauth_default(status)), text or "Bad Request", retry)
    else:
        reason = str(fault.code or _google_default(status))
        rejected = google_error(status, reason, text or f"Sandbox fault: {reason}", retry_after=retry)
    return rejected.response


def _tiktok_default(status: int) -> str:
    return {401: "access_token_invalid", 403: "scope_not_authorized", 429: "rate_limit_exceeded"}.get(
        status, "internal_error" if status >= 500 else "invalid_params"
    )


def _oauth_default(status: int) -> str:
    return {401: "invalid_client"}.get(status, "server_error" if status >= 500 else "invalid_grant")


def _graph_default(status: int) -> int:
    return {401: 190, 403: 10, 429: 4}.get(status, 2 if status >= 500 else 100)


def _google_default(status: int) -> str:
    return {
        401: "authError",
        403: "forbidden",
        404: "notFound",
        429: "rateLimitExceeded",
        503: "backendError",
    }.get(status, "backendError" if status >= 500 else "badRequest")
