"""Signing and sending one webhook message (Standard Webhooks v1). No SQL, no retry rules."""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from vidprod.net.retry_after import parse_retry_after

RESPONSE_EXCERPT_BYTES = 1024
MAX_RESPONSE_BYTES = 64 * 1024  # read no more of an answer than this
USER_AGENT = "vidprod-webhooks/1"


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: whsec_ + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signed_headers(
    message_id: str, body: str, signing_secrets: list[str], sent_at: datetime
) -> dict[str, str]:
    """One v1 signature per secret (two while a rotated secret is still honoured)."""
    signatures = " ".join(
        Webhook(secret).sign(message_id, sent_at, body) for secret in signing_secrets
    )
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


@dataclass(frozen=True)
class Answer:
    """What one attempt got back. status is None when no HTTP answer came."""

    status: int | None
    latency_ms: int
    excerpt: str | None
    error: str | None
    retry_after: float | None  # seconds, from a Retry-After header

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post_message(
    client: httpx.Client,
    url: str,
    message_id: str,
    payload: dict[str, Any],
    signing_secrets: list[str],
    *,
    now: float,
    deadline_seconds: float = 15.0,
) -> Answer:
    """POST the signed payload once. Success is a 2xx answer within the deadline; the
    answer's body is read only up to a cap. `now` (the caller's clock) dates a
    Retry-After; the signature carries the real time, which receivers check."""
    body = json.dumps(payload, separators=(",", ":"))
    headers = signed_headers(message_id, body, signing_secrets, datetime.now(UTC))
    started = time.monotonic()
    status: int | None = None
    retry_after: float | None = None
    excerpt = b""
    error: str | None = None
    try:
        with client.stream("POST", url, content=body.encode(), headers=headers) as response:
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("retry-after"), now)
            received = 0
            for chunk in response.iter_raw():
                if len(excerpt) < RESPONSE_EXCERPT_BYTES:
                    excerpt += chunk[: RESPONSE_EXCERPT_BYTES - len(excerpt)]
                received += len(chunk)
                if received >= MAX_RESPONSE_BYTES:
                    break
                if time.monotonic() - started > deadline_seconds:
                    error = f"the answer took longer than {deadline_seconds:g} s"
                    status = None
                    break
    except httpx.TimeoutException:
        error = f"no answer within {deadline_seconds:g} s"
    except httpx.HTTPError as exc:
        error = str(exc) or type(exc).__name__
    latency_ms = round((time.monotonic() - started) * 1000)
    if status is not None and latency_ms > deadline_seconds * 1000:
        error = f"answered {status} after {latency_ms} ms, over the {deadline_seconds:g} s limit"
        status = None
    return Answer(
        status=status,
        latency_ms=latency_ms,
        excerpt=excerpt.decode("utf-8", "replace") if excerpt else None,
        error=error,
        retry_after=retry_after,
    )
