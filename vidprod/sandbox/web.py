"""HTTP plumbing the three fakes share: `serve()` (counting, faults, cuts, hangs),
request parsing, bodies streamed to disk, bearer tokens, the base URL, the OAuth
consent flow."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote_plus, urlencode, urlsplit

import anyio.to_thread
from litestar import Request, Response
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

from vidprod.sandbox.errors import Rejected, fault_response, html_page, page_error
from vidprod.sandbox.pages import consent_page
from vidprod.sandbox.state import ACCOUNTS, FakePlatforms

PUBLIC = {"public": True}  # the app's admin guard lets these through
WRITE_CHUNK = 1 << 20  # batch network reads into 1 MiB writes
SMALL_BODY = 1 << 20  # request_max_body_size of every endpoint but the uploads


@dataclass
class Call:
    """One request to a fake, with the fault it picked up on arrival."""

    request: Request
    fake: FakePlatforms
    operation: str
    keep_bytes: int | None = None  # cut_next(after_bytes): how much of an upload body counts

    def record(self, what: Any) -> None:
        self.fake.record(self.operation, what)


async def serve(
    request: Request, fake: FakePlatforms, operation: str, work: Callable[[Call], Awaitable[Response]]
) -> Response:
    """Run `work` for one request of `operation`: count it, answer an injected fault
    instead, or do the work and then hang or cut as injected. Platform code raises
    `Rejected` for its own errors."""
    arrival = fake.arrive(operation)
    if arrival.fault is not None:
        await drain(request)
        return fault_response(operation, arrival.fault)
    try:
        response = await work(Call(request, fake, operation, arrival.keep_bytes))
    except Rejected as rejected:
        response = rejected.response
    await drain(request)  # an answer given before the body was read: the client still sees it
    if response.status_code < 400:
        fake.succeeded(operation)
    if arrival.hang:
        await asyncio.sleep(arrival.hang)
    if arrival.cut:
        return CutConnection()
    return response


class CutConnection(Response):
    """An answer that starts and never finishes.

    It sends the status line and a Content-Length of 1 KiB, one byte of body, and
    returns. uvicorn then logs "ASGI callable returned without completing response"
    and closes the socket, so the client gets a transport error mid-response
    (httpx.RemoteProtocolError "peer closed connection without sending complete
    message body", http.client.IncompleteRead under httplib2), never an HTTP status
    it could act on.
    """

    def __init__(self) -> None:
        super().__init__(content=b"")

    def to_asgi_response(self, app: Any, request: Request, **kwargs: Any) -> ASGIResponse:
        return _cut  # type: ignore[return-value]


async def _cut(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
        }
    )
    await send({"type": "http.response.body", "body": b"{", "more_body": True})


# ---- reading requests -----------------------------------------------------------------


async def drain(request: Request) -> None:
    """Read and drop whatever is left of the body (nothing if it was read already)."""
    try:
        async for _ in request.stream():
            pass
    except Exception:  # consumed already, or the client went away: nothing to drain
        pass


async def json_body(request: Request) -> Any:
    """The parsed JSON body, or None when it is missing or not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


async def form_params(request: Request) -> dict[str, str]:
    """Query parameters, then the urlencoded, multipart or JSON body over them."""
    params = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if "json" in content_type:
        body = await json_body(request)
        if isinstance(body, dict):
            params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
    elif "form" in content_type:
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def bearer_token(request: Request, schemes: Collection[str] = ("bearer",)) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in schemes:
        return None
    return value.strip() or None


def base_url(request: Request, host: str) -> str:
    """The fake's base URL as the client sees it: everything before the real host name
    in the path (`/sandbox` when mounted in the app, nothing when standalone)."""
    path = request.url.path
    prefix = path[: path.find(f"/{host}/")] if f"/{host}/" in path else ""
    return f"{request.url.scheme}://{request.url.netloc}{prefix}"


def parse_content_range(value: str | None) -> tuple[int | None, int | None, int] | None:
    """`bytes a-b/total` -> (a, b, total); `bytes */total` -> (None, None, total)."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[6:].partition("/")
    try:
        size = int(total)
        if span == "*":
            return None, None, size
        first, _, last = span.partition("-")
        a, b = int(first), int(last)
    except ValueError:
        return None
    if a < 0 or b < a or size <= 0:
        return None
    return a, b, size


def content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


# ---- upload bodies on disk ------------------------------------------------------------


async def receive_into(request: Request, path: Path, offset: int) -> int:
    """Stream the body into `path` at `offset`, cutting off whatever the file held
    from there on; return the byte count. At most WRITE_CHUNK bytes are in memory."""
    file = await anyio.to_thread.run_sync(_open_at, path, offset)
    received = 0
    buffer = bytearray()
    try:
        async for chunk in request.stream():
            buffer += chunk
            received += len(chunk)
            if len(buffer) >= WRITE_CHUNK:
                await anyio.to_thread.run_sync(file.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await anyio.to_thread.run_sync(file.write, bytes(buffer))
    finally:
        await anyio.to_thread.run_sync(file.close)
    return received


def _open_at(path: Path, offset: int) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    file = open(path, "r+b" if path.exists() else "w+b")  # noqa: SIM115 (receive_into closes it)
    file.truncate(offset)
    file.seek(offset)
    return file


async def truncate(path: Path, size: int) -> None:
    def cut() -> None:
        if path.exists():
            with open(path, "r+b") as file:
                file.truncate(size)

    await anyio.to_thread.run_sync(cut)


async def sha256_of(path: Path) -> str:
    def digest() -> str:
        hasher = hashlib.sha256()
        with open(path, "rb") as file:
            while block := file.read(WRITE_CHUNK):
                hasher.update(block)
        return hasher.hexdigest()

    return await anyio.to_thread.run_sync(digest)


# ---- OAuth consent --------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentRules:
    """How one platform's authorize URL names and checks things."""

    platform: str  # "tiktok" | "instagram" | "youtube"
    title: str  # shown on the page
    client_param: str  # TikTok says client_key
    scope_separators: str
    known_scopes: frozenset[str]
    required_scopes: frozenset[str] = frozenset()
    fragment: str = ""  # Instagram appends "#_" to the redirect
    scopes_in_redirect: str | None = None  # the parameter TikTok ("scopes") and Google ("scope") add


async def consent(call: Call, rules: ConsentRules) -> Response:
    """The consent page, or with approve=1/0 the redirect back to the app with a code
    or error=access_denied."""
    fake = call.fake
    params = dict(call.request.query_params)
    call.record(params)
    client_id = params.get(rules.client_param, "")
    if not client_id:
        raise page_error(400, f"{rules.client_param} is missing.")
    if client_id != fake.clients[rules.platform][0]:
        raise page_error(400, f"Unknown {rules.client_param} {client_id!r}: no sandbox app has it.")
    redirect_uri = params.get("redirect_uri", "")
    target = urlsplit(redirect_uri)
    if target.scheme not in ("http", "https") or not target.netloc:
        raise page_error(400, "redirect_uri is missing or not an absolute http(s) URL.")
    if not fake.redirect_allowed(redirect_uri):
        # As the platforms do: only a registered redirect URI, never an open redirect.
        raise page_error(400, "redirect_uri is not registered for this app.")
    if params.get("response_type") != "code":
        raise page_error(400, "response_type must be code.")
    scopes = [s for s in _split(params.get("scope", ""), rules.scope_separators) if s]
    if not scopes:
        raise page_error(400, "scope is missing.")
    if unknown := [s for s in scopes if s not in rules.known_scopes]:
        raise page_error(400, f"Unknown scope: {', '.join(unknown)}.")
    if missing := sorted(rules.required_scopes - set(scopes)):
        raise page_error(400, f"scope must include {', '.join(missing)}.")
    method = params.get("code_challenge_method")
    if params.get("code_challenge") and method not in (None, "S256", "plain"):
        raise page_error(400, "code_challenge_method must be S256 or plain.")

    approve = params.get("approve")
    if approve is None:
        page = consent_page(
            platform=rules.title,
            client_id=client_id,
            account=ACCOUNTS[rules.platform]["name"],
            scopes=scopes,
            action=_raw_path(call.request),
            params=params,
            look=fake.look,
        )
        return html_page(200, page)
    answer: dict[str, str]
    if approve == "1":
        answer = {"code": fake.issue_code(rules.platform, params, scopes)}
        if rules.scopes_in_redirect:
            answer[rules.scopes_in_redirect] = ("," if rules.platform == "tiktok" else " ").join(scopes)
    else:
        answer = {"error": "access_denied", "error_description": "The user denied the request."}
    if "state" in params:
        answer["state"] = params["state"]
    separator = "&" if target.query else "?"
    location = f"{redirect_uri.split('#')[0]}{separator}{urlencode(answer)}{rules.fragment}"
    return Response(content=b"", status_code=302, headers={"Location": location})


def _raw_path(request: Request) -> str:
    """The path as the browser sent it (Litestar's url.path drops a trailing slash)."""
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1").split("?")[0] if raw else request.url.path


def _split(value: str, separators: str) -> list[str]:
    for separator in separators[1:]:
        value = value.replace(separator, separators[0])
    return value.split(separators[0])


def pkce_matches(challenge: str, method: str | None, verifier: str) -> bool:
    """RFC 7636. TikTok's desktop docs hash to hex instead of base64url: both pass."""
    if method in (None, "plain"):
        return verifier == challenge
    digest = hashlib.sha256(verifier.encode()).digest()
    return challenge in (base64.urlsafe_b64encode(digest).rstrip(b"=").decode(), digest.hex())


def client_credentials(request: Request, params: dict[str, str], id_param: str = "client_id") -> tuple[str, str]:
    """Client id and secret from the form, or from HTTP Basic auth (client_secret_basic)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return "", ""
        return unquote_plus(user), unquote_plus(password)
    return params.get(id_param, ""), params.get("client_secret", "")
