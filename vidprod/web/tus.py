"""tus 1.0.0 resumable uploads at /tus/: core, creation, termination, expiration, checksum.

Our own, small: litestar-tus needs Python 3.13 and we run 3.11. The web side parses
headers and streams the body; sizes, expiry and durability live in domain/uploads.py.
A finished upload becomes a job through web/intake.py like a multipart one, and the
final PATCH (and any later HEAD) says which job in `Vidprod-Job-Id` / `Vidprod-Job-Url`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
from litestar import Request, Response, Router, delete, head, patch, post, route
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders, State
from litestar.exceptions import InternalServerException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from vidprod.domain.publishing import InvalidPublication
from vidprod.domain.uploads import (
    CHECKSUM_ALGORITHMS,
    TUS_VERSION,
    Appender,
    TusUploads,
    Upload,
    UploadError,
    http_date,
    parse_metadata,
)
from vidprod.domain.webhooks import InvalidEndpoint
from vidprod.media.probe import InvalidMedia
from vidprod.web.intake import check_fields, start_job
from vidprod.web.problems import problem

log = logging.getLogger(__name__)

EXTENSIONS = "creation,termination,expiration,checksum"
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
WRITE_CHUNK = 1 << 20  # batch network chunks into 1 MiB writes
CHECKPOINT_BYTES = 4 << 20  # fsync and record the offset this often: a crash loses less
POLL_SECONDS = 0.5
# A phone that changes networks leaves its old PATCH hanging on a dead connection.
# A new PATCH may take over from one that has been silent this long (else 423) ...
TAKEOVER_AFTER_SECONDS = 3.0
# ... and a PATCH silent this long ends by itself, keeping what it received.
STALL_SECONDS = 60.0


@dataclass
class _Writer:
    """The PATCH currently writing an upload (one at a time per upload)."""

    last_byte: float = field(default_factory=time.monotonic)
    stop: bool = False  # taken over by a newer PATCH
    terminated: bool = False  # DELETE came
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    webhook: Any = None  # the job's own webhook, made by the final PATCH

    def idle(self) -> float:
        return time.monotonic() - self.last_byte


def _uploads(state: State) -> TusUploads:
    return state.uploads


def _writers(state: State) -> dict[str, _Writer]:
    return state.setdefault("tus_writers", {})


def _add_tus_resumable(app: ASGIApp) -> ASGIApp:
    """Every answer under /tus carries Tus-Resumable, errors and refusals included."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)["tus-resumable"] = TUS_VERSION
            await send(message)

        await app(scope, receive, send_with_version)

    return middleware


def _require_tus_version(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    if connection.scope.get("method") == "OPTIONS":
        return
    if connection.headers.get("tus-resumable") != TUS_VERSION:
        raise problem(
            412,
            f"This is a tus {TUS_VERSION} upload address: send 'Tus-Resumable: {TUS_VERSION}' with every request.",
            headers={"Tus-Version": TUS_VERSION},
        )


def _whole_number(request: Request, name: str) -> int:
    text = request.headers.get(name, "").strip()
    if not (text.isascii() and text.isdigit()):  # isdigit() alone lets "²" through
        raise problem(400, f"Send the {name} header as a whole number of bytes.")
    return int(text)


def _checksum(header: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum: `<algorithm> <base64 digest>`."""
    if header is None:
        return None
    name, _, encoded = header.strip().partition(" ")
    if name not in CHECKSUM_ALGORITHMS:
        raise problem(400, f"Upload-Checksum algorithm must be one of: {', '.join(CHECKSUM_ALGORITHMS)}.")
    try:
        return name, base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise problem(400, "Upload-Checksum must be '<algorithm> <base64 digest>'.") from None


def _header_text(text: str) -> str:
    """Header values must be Latin-1; the words stay readable."""
    return text.replace("…", "...").encode("latin-1", "replace").decode("latin-1")


def _progress_headers(upload: Upload) -> dict[str, str]:
    headers = {"Upload-Offset": str(upload.received), "Upload-Length": str(upload.length)}
    if upload.state == "receiving":
        headers["Upload-Expires"] = http_date(upload.expires_at)
    return headers


def _job_headers(request: Request, job_id: str) -> dict[str, str]:
    # A path, not an absolute URL: behind Fly's TLS proxy the app sees http.
    return {"Vidprod-Job-Id": job_id, "Vidprod-Job-Url": request.app.route_reverse("job_status", job_id=job_id)}


@route("/", http_method="OPTIONS", status_code=204, opt={"public": True})
async def tus_options(state: State) -> Response[None]:
    """Discovery: what this server speaks (no token needed: it tells nothing private)."""
    settings = _uploads(state).settings
    return Response(None, status_code=204, headers={
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": EXTENSIONS,
        "Tus-Max-Size": str(settings.max_upload_bytes),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    })  # fmt: skip


@post("/", status_code=201, opt={"problems": (404, 412, 413, 422, 507)})
async def tus_create(request: Request, state: State) -> Response[None]:
    if request.headers.get("upload-defer-length") is not None:
        raise problem(400, "This server needs the file's size up front: send Upload-Length.")
    if "upload-length" not in request.headers:
        raise problem(400, "Send the file's size in bytes as Upload-Length.")
    length = _whole_number(request, "upload-length")
    if request.headers.get("content-length", "0").strip() not in ("", "0"):
        raise problem(400, "Create the upload first (no body), then send the bytes with PATCH.")
    metadata = request.headers.get("upload-metadata", "")
    # Wrong options are refused now, not after a phone has sent the whole file.
    await check_fields(state, parse_metadata(metadata))
    upload = await anyio.to_thread.run_sync(_uploads(state).create, length, metadata)
    location = request.app.route_reverse("tus_upload", upload_id=upload.id)
    return Response(None, status_code=201, headers={"Location": location, **_progress_headers(upload)})


@head("/{upload_id:str}", name="tus_upload", opt={"problems": (410, 412, 413, 415, 422, 423, 507)})
async def tus_offset(request: Request, state: State, upload_id: FromPath[str]) -> Response[None]:
    uploads = _uploads(state)
    upload = await anyio.to_thread.run_sync(uploads.get, upload_id)
    writers = _writers(state)
    if upload.state == "receiving" and upload.all_received and upload_id not in writers:
        # Every byte arrived but the server stopped before the job was made: make it now.
        writers[upload_id] = writer = _Writer()
        try:
            upload = await _finish(request, state, upload, raise_refusal=False)
        finally:
            _release(writers, upload_id, writer)
    if upload.state == "receiving" and upload.all_received:
        # The last PATCH is still making the job: "all here" without a job id would
        # make a client call it a success and forget the upload. Ask again shortly.
        raise problem(423, "This upload is becoming a job right now; ask again in a moment.",
                      headers={"Retry-After": "1"})
    headers = {**_progress_headers(upload), "Cache-Control": "no-store"}
    if upload.metadata_header:
        headers["Upload-Metadata"] = upload.metadata_header
    if upload.state == "done" and upload.job_id:
        headers.update(_job_headers(request, upload.job_id))
    if upload.state == "failed":
        # A HEAD has no body: the reason travels in a header.
        headers["Vidprod-Upload-Error"] = _header_text(upload.error or "")
        return Response(None, status_code=upload.error_status or 422, headers=headers)
    return Response(None, status_code=200, headers=headers)


@patch("/{upload_id:str}", status_code=204, request_max_body_size=None, opt={"problems": (404, 408, 409, 410, 412, 413, 415, 422, 423, 460, 507)})
async def tus_append(request: Request, state: State, upload_id: FromPath[str]) -> Response[None]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != OFFSET_OCTET_STREAM:
        raise problem(415, f"Send the bytes with 'Content-Type: {OFFSET_OCTET_STREAM}'.")
    offset = _whole_number(request, "upload-offset")
    checksum = _checksum(request.headers.get("upload-checksum"))
    writers = _writers(state)
    writer = await _claim(writers, upload_id)
    try:
        uploads = _uploads(state)
        upload = await anyio.to_thread.run_sync(uploads.get, upload_id)
        if upload.state == "failed":
            raise problem(upload.error_status or 422, upload.error or "This upload was refused.")
        if upload.state == "done":
            if offset == upload.length and request.headers.get("content-length", "0") == "0":
                return Response(None, status_code=204, headers={
                    **_progress_headers(upload), **_job_headers(request, upload.job_id or ""),
                })  # fmt: skip  # the final answer asked for again
            raise problem(409, "This upload is complete already.")
        if offset != upload.received:
            raise problem(
                409,
                f"The server has {upload.received} bytes of this upload, not {offset}: ask for the "
                "offset (HEAD) and continue from there.",
                headers={"Upload-Offset": str(upload.received)},
            )
        declared = request.headers.get("content-length", "").strip()
        if declared.isascii() and declared.isdigit() and offset + int(declared) > upload.length:
            raise problem(413, f"This request carries more than the {upload.length} bytes declared for the upload.")
        appender = await anyio.to_thread.run_sync(uploads.open_appender, upload)
        try:
            await _receive(request, uploads, appender, writer, upload, checksum)
        finally:
            appender.close()
        upload = await anyio.to_thread.run_sync(uploads.get, upload_id)
        headers = _progress_headers(upload)
        if upload.all_received:
            upload = await _finish(request, state, upload, raise_refusal=True)
            headers = {**_progress_headers(upload), **_job_headers(request, upload.job_id or "")}
            if writer.webhook is not None:  # its secret is shown this once
                headers["Vidprod-Webhook-Id"] = writer.webhook.id
                headers["Vidprod-Webhook-Secret"] = writer.webhook.secret
        return Response(None, status_code=204, headers=headers)
    finally:
        _release(writers, upload_id, writer)


@delete("/{upload_id:str}", status_code=204, opt={"problems": (412,)})
async def tus_terminate(state: State, upload_id: FromPath[str]) -> None:
    if writer := _writers(state).get(upload_id):
        writer.terminated = True  # a PATCH in flight stops at its next chunk
    await anyio.to_thread.run_sync(_uploads(state).terminate, upload_id)


async def _claim(writers: dict[str, _Writer], upload_id: str) -> _Writer:
    """Become the one writer of this upload: 423 while another PATCH is receiving bytes,
    taking over from one whose connection has gone quiet."""
    while (current := writers.get(upload_id)) is not None:
        if current.stop or current.idle() < TAKEOVER_AFTER_SECONDS:
            raise problem(423, "This upload is receiving data from another request; try again in a moment.")
        current.stop = True
        with anyio.move_on_after(STALL_SECONDS):
            await current.finished.wait()
    writers[upload_id] = writer = _Writer()
    return writer


def _release(writers: dict[str, _Writer], upload_id: str, writer: _Writer) -> None:
    if writers.get(upload_id) is writer:
        del writers[upload_id]
    writer.finished.set()


async def _receive(
    request: Request,
    uploads: TusUploads,
    appender: Appender,
    writer: _Writer,
    upload: Upload,
    checksum: tuple[str, bytes] | None,
) -> None:
    """Stream the body into the file, never holding more than WRITE_CHUNK in memory.
    Without a checksum, what arrived is kept even when the client goes away (that is
    the point of resuming); with one, the request's bytes count only if they match."""
    room = upload.length - upload.received
    hasher = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
    buffer = bytearray()
    got = 0
    stream: AsyncIterator[bytes] = request.stream()
    pending: asyncio.Future[bytes] | None = None
    ended = "complete"

    async def flush() -> None:
        if buffer:
            data = bytes(buffer)
            buffer.clear()
            await anyio.to_thread.run_sync(appender.write, data)

    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(stream.__anext__())
            # Wait in short steps so a takeover, a DELETE or a stall is noticed.
            done, _ = await asyncio.wait({pending}, timeout=POLL_SECONDS)
            if writer.terminated:
                ended = "terminated"
                break
            if writer.stop:
                ended = "taken over"
                break
            if not done:
                if writer.idle() > STALL_SECONDS:
                    ended = "stalled"
                    break
                continue
            arrived, pending = pending, None
            try:
                chunk = arrived.result()
            except StopAsyncIteration:
                break
            except InternalServerException:  # Litestar: the client disconnected mid-body
                ended = "disconnected"
                break
            writer.last_byte = time.monotonic()
            got += len(chunk)
            if got > room:
                await anyio.to_thread.run_sync(appender.discard, upload.received)
                raise problem(413, f"This request carries more than the {upload.length} bytes declared for the upload.")
            if hasher is not None:
                hasher.update(chunk)
            buffer += chunk
            if len(buffer) >= WRITE_CHUNK:
                await flush()
            if hasher is None and appender.unrecorded >= CHECKPOINT_BYTES:
                await anyio.to_thread.run_sync(appender.checkpoint)
                if short := await anyio.to_thread.run_sync(uploads.room_problem, 0):
                    raise problem(507, short)
    except BaseException:
        # Cancelled (server stopping) or refused: keep what is surely this upload's.
        if pending is not None:
            pending.cancel()
        if hasher is None and got <= room:
            appender.write(bytes(buffer))
            appender.checkpoint()
        raise
    if pending is not None:
        pending.cancel()

    if ended == "terminated":
        raise problem(404, "This upload was cancelled.")
    if ended == "taken over":
        # The newer request resumes from the recorded offset (what HEAD told it).
        await anyio.to_thread.run_sync(appender.discard, appender.recorded)
        raise problem(409, "A newer request took over this upload.")
    await flush()
    if hasher is not None:
        if ended != "complete":
            await anyio.to_thread.run_sync(appender.discard, upload.received)
            raise problem(400, "The request ended before its bytes arrived; send them again.")
        if not hmac.compare_digest(hasher.digest(), checksum[1] if checksum else b""):
            await anyio.to_thread.run_sync(appender.discard, upload.received)
            raise ProblemDetailsException(  # tus's own status: no phrase in http.HTTPStatus
                status_code=460, title="Checksum Mismatch", type_="about:blank",
                detail="The bytes that arrived do not match Upload-Checksum; send them again.",
            )
    await anyio.to_thread.run_sync(appender.checkpoint)
    if ended == "stalled":
        raise problem(408, f"No data arrived for {STALL_SECONDS:.0f} s; the bytes received so far are kept.")
    if ended == "disconnected":
        raise problem(400, "The connection ended before the body did; the bytes received so far are kept.")


async def _finish(request: Request, state: State, upload: Upload, *, raise_refusal: bool) -> Upload:
    """Every byte is here: the upload becomes a job (web/intake.py), or is marked
    failed with the reason when the file is refused. No file is left either way."""
    uploads = _uploads(state)
    path = uploads.path(upload.id)
    writer = _writers(state).get(upload.id)
    status, reason = 0, ""
    if not path.exists():
        status, reason = 410, "The server stopped while this upload became a job; look for it in the job list."
    else:
        try:
            job, webhook = await start_job(state, path, upload.filename, upload.metadata)
        except ProblemDetailsException as exc:
            status, reason = exc.status_code, str(exc.detail)
        except (InvalidMedia, InvalidEndpoint, InvalidPublication) as exc:
            # (options were checked at creation; accounts may have changed since)
            status, reason = 422, str(exc)
        except UploadError as exc:
            status, reason = exc.status, exc.message
        except Exception:
            log.exception("upload %s could not become a job", upload.id)
            await anyio.to_thread.run_sync(
                uploads.mark_failed, upload.id, 500, "Something went wrong on the server; it has been logged."
            )
            raise
        else:
            await anyio.to_thread.run_sync(uploads.mark_done, upload.id, job["id"])
            if writer is not None:
                writer.webhook = webhook
            log.info("upload %s became job %s", upload.id, job["id"])
    if status:
        await anyio.to_thread.run_sync(uploads.mark_failed, upload.id, status, reason)
        if raise_refusal:
            raise problem(status, reason)
    return await anyio.to_thread.run_sync(uploads.get, upload.id)


ROUTES = [tus_options, tus_create, tus_offset, tus_append, tus_terminate]


def tus_router() -> Router:
    return Router(
        path="/tus",
        route_handlers=ROUTES,
        guards=[_require_tus_version],
        middleware=[_add_tus_resumable],
    )

