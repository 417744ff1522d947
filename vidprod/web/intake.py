"""What a finished upload becomes, whichever way it came (multipart POST or tus):
its form fields or tus metadata parsed into job options, then a job."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import anyio.to_thread
from litestar.datastructures import State

from vidprod.domain.publishing import PublishRequest
from vidprod.domain.webhooks import NewEndpoint
from vidprod.media.framing import LANDSCAPE_MODES
from vidprod.web.problems import problem
from vidprod.web.publishing import parse_publish_request

PUBLISH_SHAPE = (
    'publish must be a JSON object like the body of POST /jobs/{id}/publications,'
    ' such as {"accounts": ["<account id>"]}.'
)
GAZE_FLAGS = {"on": True, "off": False, "1": True, "0": False, "true": True, "false": False}


def _number(text: str, low: float, high: float, refusal: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # also refuses nan
        raise problem(422, refusal)
    return value


def job_options(fields: dict[str, str]) -> dict[str, Any]:
    """Options a creator may set per upload; unknown fields are ignored."""
    options: dict[str, Any] = {}
    if fields.get("segment_seconds"):
        text = fields["segment_seconds"].strip()
        if not (text.isascii() and text.isdigit()) or not 3 <= int(text) <= 600:  # "²".isdigit()
            raise problem(422, "segment_seconds must be a whole number of seconds from 3 to 600.")
        options["segment_seconds"] = int(text)
    if fields.get("landscape"):
        if fields["landscape"] not in LANDSCAPE_MODES:
            raise problem(422, "landscape must be one of: " + ", ".join(LANDSCAPE_MODES) + ".")
        options["landscape"] = fields["landscape"]
    if fields.get("gaze"):
        flag = fields["gaze"].strip().lower()
        if flag not in GAZE_FLAGS:
            raise problem(422, "gaze must be on or off.")
        options["gaze"] = GAZE_FLAGS[flag]
    if fields.get("captions"):
        flag = fields["captions"].strip().lower()
        if flag not in GAZE_FLAGS:
            raise problem(422, "captions must be on or off.")
        options["captions"] = GAZE_FLAGS[flag]
    if fields.get("gaze_strength"):
        options["gaze_strength"] = _number(fields["gaze_strength"], 0, 1, "gaze_strength must be a number from 0 to 1.")
    if fields.get("gaze_notes_below"):
        options["gaze_notes_below_degrees"] = _number(
            fields["gaze_notes_below"], 0, 30,
            "gaze_notes_below must be the degrees your notes sit below the lens, from 0 to 30.",
        )  # fmt: skip
    if fields.get("publish"):
        try:
            choice = json.loads(fields["publish"])
        except RecursionError:
            raise problem(400, "publish is nested too deeply to read; send a flat JSON object.") from None
        except ValueError:
            raise problem(422, PUBLISH_SHAPE) from None
        if not isinstance(choice, dict):
            raise problem(422, PUBLISH_SHAPE)
        request = parse_publish_request(choice)  # refuses wrong fields in plain words
        options["publish"] = {k: v for k, v in vars(request).items() if v is not None}
    return options


def job_webhook(state: State, fields: dict[str, str]) -> NewEndpoint | None:
    """The job's own webhook_url (optional webhook_events: comma-separated types)."""
    url = fields.get("webhook_url", "").strip()
    if not url:
        return None
    types = [t.strip() for t in fields.get("webhook_events", "").split(",") if t.strip()]
    return state.webhooks.prepare(url, types or None, description="job webhook")


async def check_fields(state: State, fields: dict[str, str]) -> tuple[dict[str, Any], NewEndpoint | None]:
    """The job options and the job's webhook an upload asks for, refused in words when
    wrong — before the file's bytes are taken where the protocol allows (tus)."""
    options = job_options(fields)
    if "publish" in options:
        choice = PublishRequest(**options["publish"])
        longest = options.get("segment_seconds", state.settings.segment_seconds)
        await anyio.to_thread.run_sync(state.publications.check_upload_choice, choice, longest)
    webhook = await anyio.to_thread.run_sync(job_webhook, state, fields)
    return options, webhook


async def start_job(
    state: State, staged: Path, filename: str, fields: dict[str, str]
) -> tuple[dict[str, Any], NewEndpoint | None]:
    """Probe the staged file and adopt it into a new job. The staged file is gone
    afterwards either way: moved into the job, or deleted on refusal."""
    jobs = state.jobs
    try:
        options, webhook = await check_fields(state, fields)
        info = await anyio.to_thread.run_sync(jobs.check_source, staged)
        job = await anyio.to_thread.run_sync(
            lambda: jobs.create_job(staged, filename, info, options, webhook)
        )
    finally:
        staged.unlink(missing_ok=True)  # adopted files were moved away already
    return job, webhook
