"""Webhook endpoints and delivery: who hears which events, and the retry rules.

Deliveries are outbox rows written with their event (store/events.py), so they survive
crashes and restarts; the queue only says "look at this endpoint". Each endpoint hears
its events in the order they happened: its oldest pending delivery goes first, and a
later one waits while it is retried. Endpoints are independent of each other. A
delivery is at-least-once; the webhook-id (the event's id) lets receivers drop repeats.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from vidprod import metrics
from vidprod.config import Settings
from vidprod.events import CATALOGUE, message_id, payload
from vidprod.net import ssrf
from vidprod.net.webhook_client import Answer, new_secret, post_message
from vidprod.store import Database
from vidprod.store import events as ev
from vidprod.store import webhooks as wq
from vidprod.store.database import now_iso
from vidprod.vault import Vault, VaultError

log = logging.getLogger(__name__)

ROTATION_OVERLAP_SECONDS = 24 * 3600  # the old secret keeps signing this long
MAX_RETRY_AFTER_SECONDS = 24 * 3600
JITTER = 0.1  # retry delays vary by ±10 %, so endpoints that failed together spread out
DELIVERY_STATES = ("pending", "succeeded", "failed")


class EndpointNotFound(LookupError):
    pass


class DeliveryNotFound(LookupError):
    pass


class InvalidEndpoint(ValueError):
    """The endpoint settings cannot be used; the message says why, for the user."""


@dataclass(frozen=True)
class NewEndpoint:
    """A checked endpoint not yet stored, with its secret (shown to the user once) and
    that secret sealed by the vault (what the database keeps)."""

    id: str
    url: str
    secret: str
    sealed_secret: str
    event_types: list[str] | None
    description: str = ""


def public_view(endpoint: dict[str, Any], now: float) -> dict[str, Any]:
    """An endpoint as the API shows it: never the secrets themselves."""
    view = {k: v for k, v in endpoint.items() if k not in ("secret", "previous_secret", "previous_expires_at")}
    expires = endpoint.get("previous_expires_at")
    view["previous_secret_valid_until"] = (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)) if expires and expires > now else None
    )
    return view


class WebhookService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        kick: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.time,
        client: httpx.Client | None = None,
        rng: random.Random | None = None,
        vault: Vault | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.vault = vault or Vault.from_settings(settings)  # webhook secrets are sealed at rest
        self.kick = kick  # asks the worker to look at an endpoint's deliveries
        self.clock = clock
        self.client = client or ssrf.guarded_client(allow_private=settings.webhook_allow_private)
        self.rng = rng or random.Random()

    def close(self) -> None:
        self.client.close()

    # --- endpoints ---------------------------------------------------------------

    def prepare(self, url: str, event_types: list[str] | None = None, description: str = "") -> NewEndpoint:
        """Check an endpoint's settings and give it an id and a secret."""
        try:
            url = ssrf.check_url(url, allow_private=self.settings.webhook_allow_private)
        except ValueError as exc:
            raise InvalidEndpoint(str(exc)) from None
        secret = new_secret()
        return NewEndpoint(
            id="ep_" + secrets.token_hex(8),
            url=url,
            secret=secret,
            sealed_secret=self.vault.seal_text(secret),
            event_types=_checked_types(event_types),
            description=description.strip()[:200],
        )

    def create_endpoint(
        self, url: str, event_types: list[str] | None = None, description: str = "", enabled: bool = True
    ) -> tuple[dict[str, Any], str]:
        """The stored endpoint and its secret, which is shown this once."""
        new = self.prepare(url, event_types, description)
        self.db.write(lambda conn: store_endpoint(conn, new, enabled=enabled))
        return self.get_endpoint(new.id), new.secret

    def get_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        endpoint = self.db.read(lambda conn: wq.get_endpoint(conn, endpoint_id))
        if endpoint is None:
            raise EndpointNotFound(f"There is no webhook endpoint {endpoint_id}.")
        return public_view(endpoint, self.clock())

    def list_endpoints(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [public_view(e, now) for e in self.db.read(wq.list_endpoints)]

    def update_endpoint(self, endpoint_id: str, **changes: Any) -> dict[str, Any]:
        self.get_endpoint(endpoint_id)
        if "url" in changes:
            try:
                changes["url"] = ssrf.check_url(changes["url"], allow_private=self.settings.webhook_allow_private)
            except ValueError as exc:
                raise InvalidEndpoint(str(exc)) from None
        if "event_types" in changes:
            changes["event_types"] = _checked_types(changes["event_types"])
        if "description" in changes:
            changes["description"] = str(changes["description"]).strip()[:200]
        if changes.get("enabled"):
            changes["disabled_reason"] = None
        if changes:
            self.db.write(lambda conn: wq.update_endpoint(conn, endpoint_id, **changes))
        if changes.get("enabled"):
            self.kick(endpoint_id)  # deliveries held while it was disabled go out now
        return self.get_endpoint(endpoint_id)

    def rotate_secret(self, endpoint_id: str) -> tuple[dict[str, Any], str]:
        """A new secret; the old one also signs for 24 hours so receivers can switch."""
        secret = new_secret()

        def rotate(conn: Any) -> bool:
            endpoint = wq.get_endpoint(conn, endpoint_id)
            if endpoint is None:
                return False
            wq.update_endpoint(
                conn, endpoint_id, secret=self.vault.seal_text(secret), previous_secret=endpoint["secret"],
                previous_expires_at=self.clock() + ROTATION_OVERLAP_SECONDS,
            )  # fmt: skip
            return True

        if not self.db.write(rotate):
            raise EndpointNotFound(f"There is no webhook endpoint {endpoint_id}.")
        return self.get_endpoint(endpoint_id), secret

    def delete_endpoint(self, endpoint_id: str) -> None:
        self.get_endpoint(endpoint_id)
        self.db.write(lambda conn: wq.delete_endpoint(conn, endpoint_id))

    # --- deliveries --------------------------------------------------------------

    def deliveries(
        self, endpoint_id: str, *, state: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Newest first, each with its attempts (status, latency, start of the answer)."""
        self.get_endpoint(endpoint_id)

        def read(conn: Any) -> list[dict[str, Any]]:
            rows = wq.list_deliveries(conn, endpoint_id, state=state, limit=limit, offset=offset)
            attempts = wq.list_attempts(conn, [row["id"] for row in rows])
            return [{**row, "attempts": attempts[row["id"]]} for row in rows]

        return self.db.read(read)

    def resend(self, endpoint_id: str, delivery_id: int) -> dict[str, Any]:
        """Send one delivery again (whatever its state), with the same webhook-id."""

        def requeue(conn: Any) -> dict[str, Any] | None:
            delivery = wq.get_delivery(conn, delivery_id)
            if delivery is None or delivery["endpoint_id"] != endpoint_id:
                return None
            wq.update_delivery(conn, delivery_id, state="pending", step=0, next_attempt_at=0)
            return wq.get_delivery(conn, delivery_id)

        self.get_endpoint(endpoint_id)
        delivery = self.db.write(requeue)
        if delivery is None:
            raise DeliveryNotFound(f"Endpoint {endpoint_id} has no delivery {delivery_id}.")
        self.kick(endpoint_id)
        return delivery

    def resend_failed(self, endpoint_id: str) -> int:
        self.get_endpoint(endpoint_id)
        count = self.db.write(lambda conn: wq.requeue_failed(conn, endpoint_id))
        if count:
            self.kick(endpoint_id)
        return count

    def endpoints_with_pending(self) -> list[str]:
        return self.db.read(wq.endpoints_with_pending)

    def due_within(self, seconds: float) -> int:
        """Pending deliveries (to enabled endpoints) due in the next `seconds`."""
        return self.db.read(lambda conn: wq.count_due(conn, self.clock() + seconds))

    def new_deliveries(self, after_id: int) -> tuple[list[str], int]:
        """Endpoints with deliveries queued after `after_id`, and the newest delivery id."""
        return self.db.read(lambda conn: wq.endpoints_with_deliveries_after(conn, after_id))

    def deliver_next(self, endpoint_id: str) -> float | None:
        """Send the endpoint's oldest pending delivery if it is due.

        Returns None when nothing is left to send (or the endpoint is disabled or gone),
        otherwise the time (clock seconds) to come back for the next one."""
        def read(conn: Any) -> tuple[Any, Any, Any]:
            endpoint, head = wq.get_endpoint(conn, endpoint_id), wq.head_delivery(conn, endpoint_id)
            return endpoint, head, ev.get_event(conn, head["event_id"]) if head else None

        endpoint, head, event = self.db.read(read)
        if endpoint is None or not endpoint["enabled"] or head is None:
            return None
        now = self.clock()
        if head["next_attempt_at"] > now:
            return head["next_attempt_at"]
        if event is None:  # cannot happen while the foreign key cascades; never loop on it
            self.db.write(lambda conn: wq.update_delivery(conn, head["id"], state="failed", last_error="event gone"))
            return now
        try:
            signing = [self._open(endpoint["secret"])]
            if endpoint["previous_secret"] and (endpoint["previous_expires_at"] or 0) > now:
                signing.append(self._open(endpoint["previous_secret"]))
        except VaultError as exc:  # the key changed: nothing can be signed; rotate the secret
            self.db.write(lambda conn: wq.update_delivery(conn, head["id"], state="failed", last_error=str(exc)))
            return now
        answer = post_message(
            self.client, endpoint["url"], message_id(event), payload(event), signing, now=now
        )
        return self._record(endpoint, head, event, answer)

    def _open(self, stored: str) -> str:
        # Rows written before secrets were sealed hold "whsec_..." until seal_plain_secrets runs.
        return stored if stored.startswith("whsec_") else self.vault.open_text(stored)

    def seal_plain_secrets(self) -> int:
        """Seal secrets stored in plain text by earlier versions; how many were sealed."""

        def seal(conn: Any) -> int:
            count = 0
            for endpoint in wq.all_endpoint_secrets(conn):
                changes = {
                    key: self.vault.seal_text(endpoint[key])
                    for key in ("secret", "previous_secret")
                    if endpoint[key] and endpoint[key].startswith("whsec_")
                }
                if changes:
                    wq.update_endpoint(conn, endpoint["id"], **changes)
                    count += 1
            return count

        return self.db.write(seal)

    def _record(self, endpoint: dict[str, Any], delivery: dict[str, Any], event: dict[str, Any], answer: Answer) -> float:
        now = self.clock()
        step = delivery["step"] + 1
        schedule = self.settings.webhook_retry_schedule
        changes: dict[str, Any] = {"step": step, "last_status": answer.status, "last_error": answer.error}
        disable = False
        if answer.ok:
            changes["state"] = "succeeded"
        elif answer.status == 410:
            changes["state"] = "failed"
            disable = True
        elif step >= len(schedule):
            changes["state"] = "failed"
            log.warning(
                "webhook %s to %s failed %d times; giving up (resend it from the API)",
                event["type"], endpoint["url"], step,
            )  # fmt: skip
        else:
            delay = schedule[step] * self.rng.uniform(1 - JITTER, 1 + JITTER)
            if answer.retry_after is not None:
                delay = max(delay, min(answer.retry_after, MAX_RETRY_AFTER_SECONDS))
            changes["next_attempt_at"] = now + delay

        def write(conn: Any) -> None:
            if wq.get_delivery(conn, delivery["id"]) is None:
                return  # the endpoint was deleted while we were sending
            wq.add_attempt(
                conn, delivery["id"], status=answer.status, latency_ms=answer.latency_ms,
                response=answer.excerpt, error=answer.error,
            )  # fmt: skip
            wq.update_delivery(conn, delivery["id"], **changes)
            if disable:
                wq.update_endpoint(
                    conn, endpoint["id"], enabled=False,
                    disabled_reason=f"The receiver answered 410 Gone to {event['type']} at {now_iso()}.",
                )  # fmt: skip

        self.db.write(write)
        outcome = "disabled" if disable else changes.get("state", "retrying")
        self.db.write(lambda conn: metrics.count(conn, metrics.WEBHOOK_DELIVERIES, outcome))
        if disable:
            log.warning("webhook endpoint %s answered 410 Gone: disabled", endpoint["url"])
        return now if "next_attempt_at" not in changes else changes["next_attempt_at"]


def store_endpoint(conn: Any, new: NewEndpoint, *, enabled: bool = True, job_id: str | None = None) -> None:
    """Insert a prepared endpoint (inside the caller's transaction)."""
    wq.insert_endpoint(
        conn, endpoint_id=new.id, url=new.url, description=new.description,
        event_types=new.event_types, enabled=enabled, secret=new.sealed_secret, job_id=job_id,
    )  # fmt: skip


def _checked_types(event_types: list[str] | None) -> list[str] | None:
    if event_types is None:
        return None
    if not isinstance(event_types, list) or not event_types:
        raise InvalidEndpoint("event_types must be a non-empty list, or null for every event.")
    unknown = [t for t in event_types if t not in CATALOGUE]
    if unknown:
        raise InvalidEndpoint(
            f"Unknown event type(s): {', '.join(map(str, unknown))}. Known: {', '.join(CATALOGUE)}."
        )
    return list(dict.fromkeys(event_types))
