"""The browser pages: sign in, upload, videos, one video, accounts, settings.

Pages only read and render; every change goes through the JSON API (called by the
pages' scripts with the session's CSRF header), so the rules live in one place.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio.to_thread
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, Parameter, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from vidprod.domain.jobs import JobNotFound
from vidprod.domain.publishing import LIVE_WINDOW_SECONDS
from vidprod.events import CATALOGUE
from vidprod.store import MAX_INTEGER
from vidprod.web.api import job_json
from vidprod.web.links import link
from vidprod.web.auth import (
    CSRF_FIELD,
    SignInRequired,
    check_csrf,
    csrf_token,
    end_session,
    new_session,
    signed_in,
    token_matches,
)
from vidprod.web.publishing import cover_view, publication_view
from vidprod.web.templating import PLATFORM_NAMES, static_url

PAGE = {"page": True}
ZONE_COOKIE = "tz"  # the browser's IANA time zone, set by the queue page's script
SCHEDULED_STATES = ("scheduled", "publishing", "waiting", "dead", "cancelled")
EDITABLE = ("scheduled", "waiting", "dead", "cancelled")
JOBS_PER_PAGE = 30
DELIVERIES_SHOWN = 15


def _safe_next(target: str | None) -> str:
    """Only paths on this site (never //host or a scheme) may be returned to."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _page(request: Request, name: str, status_code: int = 200, **context: Any) -> Template:
    state = request.app.state
    return Template(
        template_name=name,
        context={
            "csrf": csrf_token(request),
            "signed_in": signed_in(request),
            "path": request.url.path,
            "sandbox": state.settings.sandbox,
            **context,
        },
        status_code=status_code,
    )


def redirect_to_sign_in(request: Request, exc: SignInRequired) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/signin?next={quote(target)}", status_code=HTTP_303_SEE_OTHER)


# --- signing in ------------------------------------------------------------------


@get("/signin", opt={"public": True}, include_in_schema=False)
async def sign_in_page(
    request: Request, next_path: Annotated[str | None, QueryParameter(name="next")] = None
) -> Response:
    if signed_in(request):
        return Redirect(_safe_next(next_path), status_code=HTTP_303_SEE_OTHER)
    return _page(request, "signin.html", next_path=_safe_next(next_path))


@post("/signin", opt={"public": True}, include_in_schema=False)
async def sign_in(request: Request, state: State) -> Response:
    form = await request.form()
    token = str(form.get("token", "")).strip()
    target = _safe_next(str(form.get("next", "")))
    if not token or not token_matches(token, state.admin_token):
        message = (
            "Paste the admin token to sign in." if not token else
            "That token is not right. It is in the data folder (data/admin_token) or the"
            " VIDPROD_ADMIN_TOKEN setting, and in the server's log the first time it starts."
        )  # fmt: skip
        return _page(request, "signin.html", status_code=401, error=message, next_path=target)
    request.set_session(await anyio.to_thread.run_sync(new_session, state.db))
    return Redirect(target, status_code=HTTP_303_SEE_OTHER)


@post("/signout", opt={"form_csrf": True}, include_in_schema=False)
async def sign_out(request: Request, state: State) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD, "")))
    await anyio.to_thread.run_sync(end_session, state.db, request)  # a copied cookie dies too
    request.clear_session()
    return Redirect("/signin", status_code=HTTP_303_SEE_OTHER)


# --- pages -----------------------------------------------------------------------


def _connected_accounts(state: State) -> list[dict[str, Any]]:
    return [
        account
        for platform in state.accounts.overview()
        for account in platform["accounts"]
        if account["state"] != "disconnected"
    ]


@get("/", opt=PAGE, include_in_schema=False)
async def upload_page(request: Request, state: State) -> Template:
    settings = state.settings
    accounts = await anyio.to_thread.run_sync(_connected_accounts, state)
    return _page(
        request, "upload.html", accounts=accounts, settings=settings,
        max_upload_bytes=settings.max_upload_bytes,
    )  # fmt: skip


@get("/videos", opt=PAGE, include_in_schema=False)
async def videos_page(
    request: Request, state: State,
    page: Annotated[int, QueryParameter(ge=1, le=MAX_INTEGER // JOBS_PER_PAGE)] = 1,
) -> Template:
    offset = (page - 1) * JOBS_PER_PAGE

    def read() -> tuple[list[dict[str, Any]], int]:
        jobs, total = state.jobs.list(limit=JOBS_PER_PAGE, offset=offset)
        ids = [job["id"] for job in jobs]
        parts, posts = state.jobs.part_summaries(ids), state.publications.states_by_job(ids)
        return [_video_item(request, job, parts.get(job["id"]), posts.get(job["id"], {})) for job in jobs], total

    items, total = await anyio.to_thread.run_sync(read)
    return _page(request, "videos.html", jobs=items, total=total, page=page, more=offset + JOBS_PER_PAGE < total)


# The order a video's post states are told in on /videos: what needs the creator first.
POST_STATE_ORDER = ("dead", "waiting", "publishing", "scheduled", "published", "cancelled")


def _video_item(
    request: Request, job: dict[str, Any], parts: dict[str, Any] | None, posts: dict[str, int]
) -> dict[str, Any]:
    """A row of /videos: the title typed at upload (else the file's name), the first
    part's thumbnail, the parts that exist (a stopped job made none, whatever it planned)
    and how its posts stand."""
    item = job_json(request, job, None)
    choice = (job["options"] or {}).get("publish") or {}
    item["title"] = (choice.get("title") or "").strip() or job["source_name"]
    item["parts_made"] = parts["parts"] if parts else 0
    thumbnail = parts["thumbnail_idx"] if parts else None
    item["thumbnail_url"] = (
        link(request, "segment_thumbnail", job_id=job["id"], index=thumbnail)
        if thumbnail is not None and not job["files_removed_at"]
        else None
    )
    item["posts"] = [(state, posts[state]) for state in POST_STATE_ORDER if posts.get(state)]
    return item


def _job_context(request: Request, state: State, job_id: str) -> dict[str, Any]:
    job = state.jobs.get(job_id)
    body = job_json(request, job, state.jobs.segments(job_id))
    publications = [publication_view(p) for p in state.publications.list(job_id=job_id)]
    by_part: dict[int, list[dict[str, Any]]] = {}
    for publication in publications:
        by_part.setdefault(publication["part"], []).append(publication)
    refused = [e["data"] for e in state.jobs.events(job_id) if e["type"] == "publication.refused"]
    # Parts shorter or longer than a platform takes (a 0.1 s clip makes a 0.1 s part):
    # said on the part, not discovered when its post is refused.
    too_short, too_long = {}, {}
    for part in body.get("segments", []):
        clients, seconds = state.accounts.platforms.items(), part["duration_seconds"]
        short = {name: client.shortest for name, client in clients if seconds < client.shortest}
        long = {name: client.longest for name, client in clients if client.longest and seconds > client.longest}
        if short:
            too_short[part["index"]] = {"platforms": [PLATFORM_NAMES[name] for name in short], "seconds": min(short.values())}
        if long:
            too_long[part["index"]] = {"platforms": [PLATFORM_NAMES[name] for name in long], "seconds": max(long.values())}
    return {
        "job": body, "publications": by_part, "accounts": _connected_accounts(state),
        "refused": refused[-1]["problems"] if refused else None, "too_short": too_short, "too_long": too_long,
        "planned": state.publications.planned_upload_choice(job),
    }  # fmt: skip


@get("/videos/{job_id:str}", opt=PAGE, include_in_schema=False)
async def video_page(request: Request, state: State, job_id: FromPath[str]) -> Template:
    try:
        context = await anyio.to_thread.run_sync(_job_context, request, state, job_id)
    except JobNotFound:
        return _page(request, "missing.html", status_code=404, what="video")
    return _page(request, "video.html", **context)


@get("/videos/{job_id:str}/live", include_in_schema=False)
async def video_live_part(request: Request, state: State, job_id: FromPath[str]) -> Template:
    """The part of the video page that changes, rendered by the same template, for the
    page's script to swap in when an event arrives (one rendering path, no JS copy)."""
    context = await anyio.to_thread.run_sync(_job_context, request, state, job_id)
    return _page(request, "video_live.html", **context)


def _part_context(request: Request, state: State, job_id: str, number: int) -> dict[str, Any] | None:
    job = state.jobs.get(job_id)
    body = job_json(request, job, state.jobs.segments(job_id))
    part = next((s for s in body.get("segments") or [] if s["index"] == number - 1), None)
    if part is None:
        return None
    covers = [cover_view(request, job_id, part["index"], ms) for ms in state.publications.cover_times(job_id, part["index"])]
    accounts = {a["id"]: a for p in state.accounts.overview() for a in p["accounts"]}
    posts = [
        {**publication_view(p), "account": accounts.get(p["account_id"]), "editable": p["state"] in EDITABLE and not p["remote"]}
        for p in state.publications.list(job_id=job_id) if p["segment_idx"] == part["index"]
    ]  # fmt: skip
    for post in posts:
        chosen = post["options"].get("cover_ms")
        post["cover_url"] = (
            cover_view(request, job_id, part["index"], chosen)["url"] if chosen is not None else part["thumbnail_url"]
        )
    return {"job": body, "part": part, "number": number, "posts": posts, "covers": covers}


@get("/videos/{job_id:str}/parts/{number:int}", opt=PAGE, include_in_schema=False)
async def part_page(request: Request, state: State, job_id: FromPath[str],
                    number: Annotated[int, Parameter(ge=1, le=MAX_INTEGER)]) -> Template:  # fmt: skip
    """One part: a phone-shaped preview per platform, its caption, title, hashtags and cover."""
    try:
        context = await anyio.to_thread.run_sync(_part_context, request, state, job_id, number)
    except JobNotFound:
        context = None
    if context is None:
        return _page(request, "missing.html", status_code=404, what="part")
    return _page(request, "part.html", **context)


def _zone(request: Request) -> ZoneInfo | None:
    name = request.cookies.get(ZONE_COOKIE, "")
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _day_label(day: date, today: date) -> str:
    names = {today: "Today", today + timedelta(days=1): "Tomorrow", today - timedelta(days=1): "Yesterday"}
    text = f"{day:%A} {day.day} {day:%B}" + ("" if day.year == today.year else f" {day.year}")
    return f"{names[day]} · {text}" if day in names else text


def _by_day(posts: list[dict[str, Any]], key: str, zone: ZoneInfo, today: date, newest_first: bool = False) -> list[dict[str, Any]]:
    """Posts grouped by the day of `key` (unix seconds) in the creator's zone."""
    for post in posts:
        post["local"] = datetime.fromtimestamp(post[key], UTC).astimezone(zone)
    posts.sort(key=lambda p: p["local"], reverse=newest_first)
    return [
        {"label": _day_label(day, today), "day": day.isoformat(), "posts": list(items)}
        for day, items in groupby(posts, key=lambda p: p["local"].date())
    ]


@get("/queue", opt=PAGE, include_in_schema=False)
async def queue_page(request: Request, state: State) -> Template:
    """Every post across the videos, by day in the creator's time zone."""
    zone = _zone(request)
    open_rows, published_rows = await anyio.to_thread.run_sync(state.publications.queue)
    accounts = {a["id"]: a for p in await anyio.to_thread.run_sync(state.accounts.overview) for a in p["accounts"]}
    shown = ZoneInfo("UTC") if zone is None else zone
    today = datetime.now(shown).date()
    coming, published = [], []
    for row in open_rows + published_rows:
        post = {**publication_view(row), "account": accounts.get(row["account_id"]), "editable": row["state"] in EDITABLE}
        if row["state"] == "published":
            post["out_at"] = datetime.fromisoformat(row["published_at"]).timestamp() if row["published_at"] else row["due_at"]
            published.append(post)
        else:
            coming.append(post)
    soon = state.publications.clock() + LIVE_WINDOW_SECONDS
    busy = any(p["state"] == "publishing" or (p["state"] == "scheduled" and p["next_attempt_at"] <= soon) for p in coming)
    return _page(
        request, "queue.html", zone_name=str(shown), zone_known=zone is not None, busy=busy,
        coming=_by_day(coming, "due_at", shown, today), published=_by_day(published, "out_at", shown, today, True),
    )  # fmt: skip


@get("/platforms", opt=PAGE, include_in_schema=False)
async def accounts_page(
    request: Request, state: State, connected: Annotated[str | None, QueryParameter(name="connected")] = None
) -> Template:
    platforms = await anyio.to_thread.run_sync(state.accounts.overview)
    just = next((a for p in platforms for a in p["accounts"] if a["id"] == connected), None)
    return _page(request, "accounts.html", platforms=platforms, just_connected=just)


@get("/settings", opt=PAGE, include_in_schema=False)
async def settings_page(request: Request, state: State) -> Template:
    def read() -> list[dict[str, Any]]:
        hooks = state.webhooks
        return [
            {**endpoint, "deliveries": hooks.deliveries(endpoint["id"], state=None, limit=DELIVERIES_SHOWN, offset=0)}
            for endpoint in hooks.list_endpoints()
        ]

    endpoints = await anyio.to_thread.run_sync(read)
    return _page(request, "settings.html", endpoints=endpoints, event_types=CATALOGUE)


@get("/favicon.ico", opt={"public": True}, include_in_schema=False)
async def favicon() -> Redirect:
    """Pages link their icon; a browser that asks here anyway (an API answer opened in a
    tab) gets it too, not a 404 in its console."""
    return Redirect(static_url("favicon.svg"), status_code=302)


ROUTES = [
    favicon, sign_in_page, sign_in, sign_out, upload_page, videos_page, video_page, video_live_part,
    part_page, queue_page, accounts_page, settings_page,
]  # fmt: skip
