"""The accounts and publications API, and the OAuth callback page platforms send the
browser back to."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import anyio.to_thread
from litestar import Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, Parameter, QueryParameter
from litestar.response import Redirect, Stream, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from vidprod.domain.accounts import AccountService, ConnectError, public_view
from vidprod.domain.publishing import PostChanges, PublicationService, PublishRequest
from vidprod.publish.schedule import ScheduleError, parse_instant
from vidprod.store import MAX_INTEGER
from vidprod.web.downloads import stored_file
from vidprod.web.links import link
from vidprod.web.auth import csrf_token, signed_in
from vidprod.web.problems import json_fields, problem

# Capability URLs (anyone holding them can upload) stay on the server.
HIDDEN_REMOTE_KEYS = {"upload_url", "upload_uri", "session_uri"}
PUBLICATION_STATES = ("scheduled", "publishing", "waiting", "published", "dead", "cancelled")
REQUEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "accounts": list, "title": (str, type(None)), "title_template": (str, type(None)),
    "caption": (str, type(None)), "hashtags": list, "privacy": str, "schedule": dict,
    "parts": (list, type(None)), "options": dict,
}  # fmt: skip
# A part's number in a path (as web/api.py's PartIndex; that module imports this one).
PartIndex = Annotated[int, Parameter(ge=0, le=MAX_INTEGER)]
CHANGE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "title": str, "caption": str, "hashtags": list, "cover_ms": (int, type(None)), "due_at": str,
}  # fmt: skip


def _accounts(state: State) -> AccountService:
    return state.accounts


def _publications(state: State) -> PublicationService:
    return state.publications


def publication_view(publication: dict[str, Any]) -> dict[str, Any]:
    remote = {k: v for k, v in publication["remote"].items() if k not in HIDDEN_REMOTE_KEYS}
    return {**publication, "remote": remote, "part": publication["segment_idx"] + 1}


def parse_publish_request(data: Any) -> PublishRequest:
    """A JSON body as a PublishRequest, with words for each wrong field."""
    data = json_fields(data, REQUEST_FIELDS)
    if "accounts" not in data:
        raise problem(422, "accounts is required: the ids of the accounts to publish to.")
    if not all(isinstance(x, str) for x in data["accounts"] + data.get("hashtags", [])):
        raise problem(422, "accounts and hashtags are lists of strings.")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in data.get("parts") or []):
        raise problem(422, "parts is a list of part numbers (1 is the first).")
    return PublishRequest(**data)


def parse_post_changes(data: Any) -> PostChanges:
    """A PATCH body as PostChanges. due_at is ISO 8601 with a zone, or "now"; cover_ms
    null goes back to each platform's own cover."""
    data = json_fields(data, CHANGE_FIELDS)
    if not all(isinstance(x, str) for x in data.get("hashtags", [])):
        raise problem(422, "hashtags is a list of strings.")
    if isinstance(data.get("cover_ms"), bool):
        raise problem(422, "cover_ms is whole milliseconds into the part, or null.")
    changes = PostChanges(
        title=data.get("title"), caption=data.get("caption"), hashtags=data.get("hashtags"),
        cover_ms=data.get("cover_ms"), clear_cover="cover_ms" in data and data["cover_ms"] is None,
    )  # fmt: skip
    if "due_at" in data:
        if data["due_at"] == "now":
            changes.now = True
        else:
            try:
                changes.due_at = parse_instant(data["due_at"])
            except ScheduleError as exc:
                raise problem(422, f"due_at: {exc}") from None
    return changes


@get("/accounts")
async def list_accounts(state: State) -> dict[str, Any]:
    overview = await anyio.to_thread.run_sync(_accounts(state).overview)
    return {"sandbox": state.settings.sandbox, "platforms": overview}


@get("/accounts/{account_id:str}")
async def get_account(state: State, account_id: FromPath[str]) -> dict[str, Any]:
    return public_view(await anyio.to_thread.run_sync(_accounts(state).get, account_id))


@post("/accounts/{platform:str}/connect", status_code=200, opt={"problems": (409,)})
async def connect_account(state: State, platform: FromPath[str]) -> dict[str, Any]:
    """Where to send the browser to grant access (the platform's own consent page)."""
    url = await anyio.to_thread.run_sync(_accounts(state).start_connect, platform)
    return {"authorize_url": url, "sandbox": state.settings.sandbox}


@get("/accounts/{platform:str}/callback", opt={"public": True}, include_in_schema=False)  # a browser page
async def oauth_callback(
    request: Request,
    state: State,
    platform: FromPath[str],
    code: FromQuery[str | None] = None,
    oauth_state: Annotated[str | None, QueryParameter(name="state")] = None,
    error: FromQuery[str | None] = None,
    error_description: FromQuery[str | None] = None,
) -> Response:
    """The platform sends the browser here; the single-use state proves we started it.
    A signed-in browser goes back to the accounts page; others see a short page."""
    try:
        account = await anyio.to_thread.run_sync(
            lambda: _accounts(state).finish_connect(
                platform, code=code, state=oauth_state, error=error_description or error
            )
        )
    except ConnectError as exc:
        return _connect_page(request, "Could not connect the account", str(exc), status=400)
    if signed_in(request):
        return Redirect(f"/platforms?connected={quote(account['id'])}", status_code=HTTP_303_SEE_OTHER)
    label = _accounts(state).platforms[platform].label
    sandbox = " (sandbox)" if account["sandbox"] else ""
    return _connect_page(request, f"{label} connected{sandbox}", f"{account['name']} is connected.")


@delete("/accounts/{account_id:str}", status_code=200, opt={"problems": (409,)})
async def disconnect_account(state: State, account_id: FromPath[str]) -> dict[str, Any]:
    cancelled = await anyio.to_thread.run_sync(_accounts(state).disconnect, account_id)
    return {"disconnected": account_id, "cancelled_publications": cancelled}


@post("/jobs/{job_id:str}/publications", status_code=201, opt={"problems": (409, 422)})
async def create_publications(state: State, job_id: FromPath[str], data: JSONBody[Any]) -> dict[str, Any]:
    request = parse_publish_request(data)
    created = await anyio.to_thread.run_sync(_publications(state).create, job_id, request)
    return {"publications": [publication_view(p) for p in created]}


@get("/jobs/{job_id:str}/publications")
async def job_publications(state: State, job_id: FromPath[str]) -> dict[str, Any]:
    await anyio.to_thread.run_sync(state.jobs.get, job_id)  # 404 for an unknown job
    rows = await anyio.to_thread.run_sync(lambda: _publications(state).list(job_id=job_id))
    return {"publications": [publication_view(p) for p in rows]}


@get("/publications", opt={"problems": (422,)})
async def list_publications(
    state: State,
    publication_state: Annotated[str | None, QueryParameter(name="state")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    offset: Annotated[int, QueryParameter(ge=0, le=MAX_INTEGER)] = 0,
) -> dict[str, Any]:
    if publication_state is not None and publication_state not in PUBLICATION_STATES:
        raise problem(422, f"state must be one of {', '.join(PUBLICATION_STATES)}.")
    rows = await anyio.to_thread.run_sync(
        lambda: _publications(state).list(state=publication_state, limit=limit, offset=offset)
    )
    return {"publications": [publication_view(p) for p in rows]}


@get("/publications/{publication_id:str}")
async def get_publication(state: State, publication_id: FromPath[str]) -> dict[str, Any]:
    return publication_view(await anyio.to_thread.run_sync(_publications(state).get, publication_id))


@post("/publications/{publication_id:str}/retry", status_code=202, opt={"problems": (409,)})
async def retry_publication(
    state: State, publication_id: FromPath[str], now: Annotated[bool, QueryParameter(description=(
        "Post at once; without it the post keeps its time (or goes now if that has passed)."))] = False,
) -> dict[str, Any]:
    return publication_view(await anyio.to_thread.run_sync(lambda: _publications(state).retry(publication_id, now=now)))


@post("/publications/{publication_id:str}/cancel", status_code=200, opt={"problems": (409,)})
async def cancel_publication(state: State, publication_id: FromPath[str]) -> dict[str, Any]:
    return publication_view(await anyio.to_thread.run_sync(_publications(state).cancel, publication_id))


@patch("/publications/{publication_id:str}", opt={"problems": (409, 422)})
async def change_publication(state: State, publication_id: FromPath[str], data: JSONBody[Any]) -> dict[str, Any]:
    """Change a post's title, caption, hashtags, cover or time before it goes out."""
    changes = parse_post_changes(data)
    return publication_view(await anyio.to_thread.run_sync(_publications(state).edit, publication_id, changes))


@get("/jobs/{job_id:str}/segments/{index:int}/covers", name="segment_covers")
async def segment_covers(request: Request, state: State, job_id: FromPath[str], index: PartIndex) -> dict[str, Any]:
    """The part's candidate cover frames (times in milliseconds, and their pictures)."""
    times = await anyio.to_thread.run_sync(_publications(state).cover_times, job_id, index)
    return {"covers": [cover_view(request, job_id, index, ms) for ms in times]}


@get("/jobs/{job_id:str}/segments/{index:int}/covers/{ms:int}", name="segment_cover", opt={"problems": (409, 422)})
async def segment_cover(
    state: State, job_id: FromPath[str], index: PartIndex, ms: Annotated[int, Parameter(ge=0, le=MAX_INTEGER)]
) -> Stream:
    """The part's frame at `ms` milliseconds as a JPEG."""
    publications = _publications(state)
    key = await anyio.to_thread.run_sync(publications.cover_file, job_id, index, ms)
    return await stored_file(
        publications.jobs.objects, key, None, media_type="image/jpeg",
        download_name=f"{job_id}-part{index + 1}-{ms}.jpg", missing=(409, "the part's video file is gone"),
    )  # fmt: skip


def cover_view(request: Request, job_id: str, index: int, ms: int) -> dict[str, Any]:
    return {"ms": ms, "url": link(request, "segment_cover", job_id=job_id, index=index, ms=ms)}


def _connect_page(request: Request, title: str, text: str, *, status: int = 200) -> Template:
    return Template(
        template_name="connected.html", status_code=status,
        context={"title": title, "text": text, "signed_in": signed_in(request), "csrf": csrf_token(request), "path": request.url.path,
                 "sandbox": request.app.state.settings.sandbox},
    )  # fmt: skip


ROUTES = [
    list_accounts, get_account, connect_account, oauth_callback, disconnect_account,
    create_publications, job_publications, list_publications, get_publication,
    retry_publication, cancel_publication, change_publication, segment_covers, segment_cover,
]  # fmt: skip
