"""The event catalogue and the one payload shape every consumer sees.

Every state change of a job, part, publication or account is an event row. Webhook
deliveries and the live page both send `payload(event)`: `{type, timestamp, data}`.
"""

from __future__ import annotations

import json
from typing import Any

# type -> what it means (docs/events-and-webhooks.md shows each with an example payload;
# tests/test_docs.py keeps the two in step)
CATALOGUE: dict[str, str] = {
    "job.created": "An upload was accepted and queued.",
    "job.processing": "Processing started (again, after a restart or retry).",
    "job.progress": "Processing passed another 10 % (opt-in: endpoints must list it).",
    "job.completed": "Every part is rendered and ready to download.",
    "job.failed": "Processing stopped with an error; the job can be retried.",
    "job.cancelled": "The job was cancelled; its parts were removed.",
    "job.retried": "A failed or cancelled job was queued again.",
    "job.recut": "The creator moved, removed or added cuts; the parts that changed are made again.",
    "job.transcript_edited": "The transcript was corrected; the parts are being made again with it.",
    "job.deleted": "The job and its files were deleted.",
    "segment.ready": "One part is rendered and can be downloaded.",
    "publication.scheduled": "A part was scheduled for an account.",
    "publication.uploading": "Uploading to the platform started.",
    "publication.published": "The platform published the post (with its id and URL).",
    "publication.failed": "An upload attempt failed; it will be retried.",
    "publication.dead_lettered": "A publication gave up after its last retry.",
    "publication.cancelled": "A publication was cancelled before it went out.",
    "publication.refused": "The posts chosen at upload could not be scheduled (data.problems says why).",
    "account.reconnect_needed": "An account's token could not be refreshed.",
}

# Sent only to endpoints that name them: too chatty for "everything".
OPT_IN = frozenset({"job.progress"})

MAX_PAYLOAD_BYTES = 20_000
MAX_TEXT_CHARS = 2_000  # error messages and the like are cut to this


def bounded(data: dict[str, Any]) -> dict[str, Any]:
    """Event data as stored: long strings cut, so a payload stays under 20 KB."""

    def cut(value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            return value[: MAX_TEXT_CHARS - 1] + "…"
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cut(v) for v in value]
        return value

    data = cut(data)
    if len(json.dumps(data)) > MAX_PAYLOAD_BYTES - 500:
        raise ValueError(f"event data is over {MAX_PAYLOAD_BYTES} bytes; send less")
    return data


def payload(event: dict[str, Any]) -> dict[str, Any]:
    data = dict(event["data"])
    if event.get("job_id"):
        data = {"job_id": event["job_id"], **data}
    return {"type": event["type"], "timestamp": event["created_at"], "data": data}


def message_id(event: dict[str, Any]) -> str:
    """The webhook-id: the receiver's idempotency key, the same on every retry."""
    return f"msg_{event['uid']}" if event.get("uid") else f"msg_{event['id']}"
