"""Captions over HTTP: the job's transcript (and its correction) and each part's subtitle files."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import anyio.to_thread
from litestar import Request, get, patch
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody
from litestar.response import Stream

from vidprod.web.downloads import stored_file
from vidprod.web.links import link
from vidprod.web.problems import json_fields, problem

MEDIA_TYPES = {"vtt": "text/vtt; charset=utf-8", "srt": "application/x-subrip; charset=utf-8"}


def transcript_json(job: dict[str, Any]) -> dict[str, Any] | None:
    """The job's words with start, end and confidence; None until transcribed."""
    return job.get("transcript")


def subtitle_urls(request: Request, job: dict[str, Any], index: int) -> dict[str, str | None]:
    """A part's subtitles_url (WebVTT) and srt_url; None when the job has no captions."""
    if not (job["options"].get("captions") and job.get("transcript") is not None):
        return {"subtitles_url": None, "srt_url": None}
    return {
        key: str(request.url_for(name, job_id=job["id"], index=index))
        for key, name in (("subtitles_url", "segment_vtt"), ("srt_url", "segment_srt"))
    }


@get("/jobs/{job_id:str}/segments/{index:int}/subtitles.vtt", name="segment_vtt")
async def segment_vtt(state: State, job_id: FromPath[str], index: FromPath[int]) -> Stream:
    return await _subtitles(state, job_id, index, "vtt")


@get("/jobs/{job_id:str}/segments/{index:int}/subtitles.srt", name="segment_srt")
async def segment_srt(state: State, job_id: FromPath[str], index: FromPath[int]) -> Stream:
    return await _subtitles(state, job_id, index, "srt")


async def _subtitles(state: State, job_id: str, index: int, kind: str) -> Stream:
    key = await anyio.to_thread.run_sync(state.jobs.subtitle_key, job_id, index, kind)
    return await stored_file(
        state.jobs.objects, key, None, media_type=MEDIA_TYPES[kind],
        download_name=f"{job_id}-{PurePosixPath(key or '').name}",
        missing=(404, "This part has no subtitles: upload with captions=on to get them."),
    )  # fmt: skip


@patch("/jobs/{job_id:str}/transcript", status_code=202, opt={"problems": (409, 422)})
async def edit_transcript(request: Request, state: State, job_id: FromPath[str], data: JSONBody[Any]) -> dict[str, Any]:
    """`{"text": "the corrected words"}`: the words take the recognised words' times and
    the job is queued to make its parts again with them."""
    fields = json_fields(data, {"text": str})
    if "text" not in fields:
        raise problem(422, 'Send the corrected transcript as {"text": "..."}.')
    job = await anyio.to_thread.run_sync(state.jobs.edit_transcript, job_id, fields["text"])
    return {
        "id": job["id"],
        "state": job["state"],
        "transcript": transcript_json(job),
        "status_url": link(request, "job_status", job_id=job["id"]),
    }


ROUTES = [segment_vtt, segment_srt, edit_transcript]
