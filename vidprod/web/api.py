"""The JSON API: upload, job status and control, part downloads, live events, health."""

from __future__ import annotations

import shutil
from pathlib import PurePosixPath
from typing import Annotated, Any

import anyio.to_thread
from litestar import Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, Parameter
from litestar.response import ServerSentEvent, Stream

from vidprod.domain.jobs import JobService
from vidprod.store import MAX_INTEGER
from vidprod.web.links import link
from vidprod.web.captions import subtitle_urls, transcript_json
from vidprod.web.downloads import stored_file
from vidprod.web.intake import start_job
from vidprod.web.live import job_event_stream
from vidprod.web.problems import problem
from vidprod.web.uploads import receive_upload

MAX_PAGE = 100
# A part's number in a path: larger ones cannot exist (and SQLite cannot bind them).
PartIndex = Annotated[int, Parameter(ge=0, le=MAX_INTEGER)]


def _service(state: State) -> JobService:
    return state.jobs


def job_json(request: Request, job: dict[str, Any], segments: list[dict[str, Any]] | None) -> dict[str, Any]:
    plan = job["plan"]["parts"] if job.get("plan") else None
    body: dict[str, Any] = {
        "id": job["id"],
        "state": job["state"],
        "stage": job["stage"],
        "progress": job["progress"],
        "error": job["error"],
        "cancel_requested": job["cancel_requested"],
        "attempts": job["attempts"],
        "source": {"name": job["source_name"], "size_bytes": job["source_size"], **(job["source_info"] or {})},
        "options": job["options"],
        "created_at": job["created_at"],
        "updated_at": job["updated_at"],
        "finished_at": job["finished_at"],
        "files_removed_at": job["files_removed_at"],
        "status_url": link(request, "job_status", job_id=job["id"]),
    }
    body["gaze"] = gaze_json(request, job)
    body["transcript"] = transcript_json(job)
    if plan is not None:
        body["plan"] = [
            {k: p[k] for k in ("index", "start_seconds", "end_seconds", "reason")} for p in plan
        ]
        body["plan_pauses"] = job["plan"].get("pause_seconds", [])
    if segments is not None:
        body["segments"] = [
            {
                "index": s["idx"],
                "start_seconds": s["start_seconds"],
                "end_seconds": s["end_seconds"],
                "duration_seconds": s["duration_seconds"],
                "size_bytes": s["size_bytes"],
                "width": s["width"],
                "height": s["height"],
                "has_audio": s["has_audio"],
                "download_url": link(request, "segment_file", job_id=job["id"], index=s["idx"]),
                "thumbnail_url": (
                    link(request, "segment_thumbnail", job_id=job["id"], index=s["idx"])
                    if s["thumbnail_path"]
                    else None
                ),
                **subtitle_urls(request, job, s["idx"]),
            }
            for s in segments
        ]
    return body


def gaze_json(request: Request, job: dict[str, Any]) -> dict[str, Any]:
    """Eye contact as the job page shows it: the options, and once rendered the report
    and before/after stills."""
    options = job["options"] or {}
    record = job.get("gaze") or {}

    def url(name: str) -> str:
        return link(request, "gaze_still", job_id=job["id"], still=name)

    return {
        "enabled": bool(options.get("gaze", False)),
        "strength": float(options.get("gaze_strength", 0.0)),
        "report": record.get("report"),
        "stills": [
            {"label": s["label"], "before_url": url(s["before"]), "after_url": url(s["after"])}
            for s in record.get("stills", [])
        ],
    }


@post("/upload", status_code=202, request_max_body_size=None, opt={"problems": (404, 408, 409, 413, 415, 422, 507)})
async def upload(request: Request, state: State) -> Response[dict[str, Any]]:
    settings = _service(state).settings
    received = await receive_upload(
        request, settings.tmp_dir / "uploads", settings.max_upload_bytes, settings.min_free_mb << 20,
        stall_seconds=settings.upload_stall_seconds,
    )
    job, webhook = await start_job(state, received.path, received.filename, received.fields)
    body = job_json(request, job, None)
    if webhook is not None:  # the only time this secret is shown
        body["webhook"] = {"endpoint_id": webhook.id, "url": webhook.url, "secret": webhook.secret}
    return Response(
        body,
        status_code=202,
        headers={"Location": link(request, "job_status", job_id=job["id"])},
    )


@get("/status/{job_id:str}", name="job_status")
async def job_status(request: Request, state: State, job_id: FromPath[str]) -> dict[str, Any]:
    jobs = _service(state)
    job = await anyio.to_thread.run_sync(jobs.get, job_id)
    segments = await anyio.to_thread.run_sync(jobs.segments, job_id)
    return job_json(request, job, segments)


@get("/jobs")
async def list_jobs(
    request: Request,
    state: State,
    limit: int = Parameter(default=20, ge=1, le=MAX_PAGE),
    offset: int = Parameter(default=0, ge=0, le=MAX_INTEGER),
) -> dict[str, Any]:
    jobs, total = await anyio.to_thread.run_sync(
        lambda: _service(state).list(limit=limit, offset=offset)
    )
    body: dict[str, Any] = {
        "jobs": [job_json(request, job, None) for job in jobs],
        "total": total,
        "limit": limit,
        "offset": offset,
    }
    if offset + limit < total:
        body["next"] = f"{request.url.path}?limit={limit}&offset={offset + limit}"
    return body


@post("/jobs/{job_id:str}/cancel", status_code=202, opt={"problems": (409,)})
async def cancel_job(request: Request, state: State, job_id: FromPath[str]) -> dict[str, Any]:
    job = await anyio.to_thread.run_sync(_service(state).cancel, job_id)
    return job_json(request, job, None)


@post("/jobs/{job_id:str}/retry", status_code=202, opt={"problems": (409,)})
async def retry_job(request: Request, state: State, job_id: FromPath[str]) -> dict[str, Any]:
    job = await anyio.to_thread.run_sync(_service(state).retry, job_id)
    return job_json(request, job, None)


@post("/jobs/{job_id:str}/cuts", status_code=202, opt={"problems": (409, 422)})
async def recut_job(request: Request, state: State, job_id: FromPath[str], data: JSONBody[Any]) -> dict[str, Any]:
    """Cut a finished video where the creator chose (each cut at one of `plan_pauses`);
    only the parts that change are made again."""
    cuts = data.get("cuts") if isinstance(data, dict) else None
    if not isinstance(cuts, list) or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cuts):
        raise problem(422, 'Send {"cuts": [seconds, ...]}: where each part after the first starts, in seconds.')
    job = await anyio.to_thread.run_sync(_service(state).recut, job_id, [float(c) for c in cuts])
    return job_json(request, job, None)


@delete("/jobs/{job_id:str}", status_code=204, opt={"problems": (409,)})
async def delete_job(state: State, job_id: FromPath[str]) -> None:
    await anyio.to_thread.run_sync(_service(state).delete, job_id)


@get("/jobs/{job_id:str}/segments/{index:int}/file", name="segment_file", opt={"problems": (410, 416)})
async def segment_file(request: Request, state: State, job_id: FromPath[str], index: PartIndex) -> Stream:
    jobs = _service(state)
    key = await anyio.to_thread.run_sync(jobs.segment_key, job_id, index)
    return await stored_file(
        jobs.objects, key, request.headers.get("range"), media_type="video/mp4",
        download_name=f"{job_id}-{PurePosixPath(key or '').name}",
        missing=(410, "This part's file is gone from the server."),
    )  # fmt: skip


@get("/jobs/{job_id:str}/segments/{index:int}/thumbnail", name="segment_thumbnail")
async def segment_thumbnail(request: Request, state: State, job_id: FromPath[str], index: PartIndex) -> Stream:
    jobs = _service(state)
    key = await anyio.to_thread.run_sync(lambda: jobs.segment_key(job_id, index, thumbnail=True))
    return await stored_file(
        jobs.objects, key, None, media_type="image/jpeg",
        download_name=f"{job_id}-{PurePosixPath(key or '').name}",
        missing=(404, "This part has no thumbnail."),
    )  # fmt: skip


@get("/jobs/{job_id:str}/gaze/{still:str}", name="gaze_still")
async def gaze_still(state: State, job_id: FromPath[str], still: FromPath[str]) -> Stream:
    jobs = _service(state)
    key = await anyio.to_thread.run_sync(jobs.gaze_still, job_id, still)
    return await stored_file(
        jobs.objects, key, None, media_type="image/png",
        download_name=f"{job_id}-{PurePosixPath(key or '').name}",
        missing=(404, "This job has no such eye-contact still."),
    )  # fmt: skip


@get("/jobs/{job_id:str}/events", name="job_events")
async def job_events(request: Request, state: State, job_id: FromPath[str]) -> ServerSentEvent:
    jobs = _service(state)
    await anyio.to_thread.run_sync(jobs.get, job_id)  # 404 for an unknown job
    resume = request.headers.get("last-event-id", "0").strip() or "0"
    # isdigit() alone lets "²" through, which int() refuses
    if not (resume.isascii() and resume.isdigit()) or int(resume) > MAX_INTEGER:
        raise problem(400, "Last-Event-ID must be the id of an event this stream sent.")
    return job_event_stream(jobs, state.live, job_id, int(resume), state.publications.open_for_job)


@get("/health", opt={"public": True}, responses={
    503: ResponseSpec(data_container=dict[str, Any], description="The database cannot be written (the same body)."),
})
async def health(state: State) -> Response[dict[str, Any]]:
    jobs = _service(state)
    database: dict[str, Any] = {"state": "ok"}
    try:
        await anyio.to_thread.run_sync(jobs.db.check_writable)
        database["jobs"] = await anyio.to_thread.run_sync(jobs.counts_by_state)
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot write"
        database = {"state": "error", "error": str(exc)}
    queue = await anyio.to_thread.run_sync(state.worker.state)
    disk = shutil.disk_usage(jobs.settings.data_dir)
    healthy = database["state"] == "ok"
    body = {
        "status": "ok" if healthy else "unavailable",
        "database": database,
        "queue": queue,
        "disk": {"free_bytes": disk.free, "total_bytes": disk.total},
    }
    return Response(body, status_code=200 if healthy else 503)


ROUTES = [
    upload, job_status, list_jobs, cancel_job, retry_job, recut_job, delete_job, segment_file,
    segment_thumbnail, gaze_still, job_events, health,
]  # fmt: skip
