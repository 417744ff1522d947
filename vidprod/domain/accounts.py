"""Connected platform accounts: the OAuth connect flow, tokens kept encrypted and fresh,
and what happens when a platform withdraws access (the account's posts wait).

Token refreshes for one account are serialised: TikTok rotates refresh tokens, so two
refreshes racing with the same one would lose the account.
"""

from __future__ import annotations

import logging
import secrets
import threading
import uuid
from collections.abc import Callable
from typing import Any

from vidprod.config import Settings
from vidprod.publish.base import PlatformHttp, PublishFailure, Tokens
from vidprod.publish.platforms import ORDER
from vidprod.store import Database
from vidprod.store import accounts as q
from vidprod.store import events as ev
from vidprod.store import publications as pq
from vidprod.vault import Vault, VaultError

log = logging.getLogger(__name__)

FLOW_SECONDS = 900.0  # an OAuth flow must come back within this
USAGE_KEEP_SECONDS = 2 * 24 * 3600.0  # rolling caps look back 24 h


class AccountNotFound(LookupError):
    pass


class ConnectError(Exception):
    """A connect attempt failed; the message is for the creator."""


class AccountService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        platforms: dict[str, PlatformHttp],
        vault: Vault,
        clock: Callable[[], float],
        on_reconnected: Callable[[list[str]], None] = lambda ids: None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.platforms = platforms
        self.vault = vault
        self.clock = clock
        self.on_reconnected = on_reconnected  # publication ids that may run again
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # --- reading -----------------------------------------------------------------

    def overview(self) -> list[dict[str, Any]]:
        """Every platform, configured or not, with its connected accounts."""
        accounts = self.db.read(q.list_accounts)
        return [
            {
                "platform": name,
                "label": self.platforms[name].label,
                "configured": self.platforms[name].configured(),
                "sandbox": self.settings.sandbox,
                "accounts": [public_view(a) for a in accounts if a["platform"] == name],
            }
            for name in ORDER
        ]

    def get(self, account_id: str) -> dict[str, Any]:
        account = self.db.read(lambda conn: q.get_account(conn, account_id))
        if account is None:
            raise AccountNotFound(account_id)
        return account

    # --- connecting --------------------------------------------------------------

    def redirect_uri(self, platform: str) -> str:
        return f"{self.settings.browser_url}/accounts/{platform}/callback"

    def start_connect(self, platform: str) -> str:
        """The platform's consent URL; the flow's state (and PKCE verifier) is stored."""
        client = self._platform(platform)
        if not client.configured():
            raise ConnectError(
                f"{client.label} is not configured: set its client id and secret (see docs/publishing.md)"
            )
        state = secrets.token_urlsafe(24)
        url, verifier = client.authorize_url(state, self.redirect_uri(platform))
        self.db.write(lambda conn: q.add_flow(conn, state, platform, verifier, self.clock()))
        return url

    def finish_connect(self, platform: str, *, code: str | None, state: str | None, error: str | None) -> dict[str, Any]:
        client = self._platform(platform)
        flow = None
        if state:
            flow = self.db.write(lambda conn: q.take_flow(conn, state, self.clock() - FLOW_SECONDS))
        if flow is None or flow["platform"] != platform:
            raise ConnectError("This sign-in link has expired or was already used. Start connecting again.")
        if error or not code:
            raise ConnectError(f"{client.label} did not grant access ({error or 'no code'}).")
        try:
            tokens, profile = client.connect(code, flow["code_verifier"], self.redirect_uri(platform))
            details = client.fetch_profile(tokens)
        except PublishFailure as failure:
            raise ConnectError(f"{client.label} refused the connection: {failure.message}") from None
        except (KeyError, ValueError) as exc:  # an answer without the fields we need
            log.warning("connecting %s: unexpected answer: %r", platform, exc)
            raise ConnectError(f"{client.label} answered in a way we did not expect; try again.") from None
        account_id = uuid.uuid4().hex[:12]

        def store(conn: Any) -> tuple[str, list[str]]:
            held_by = q.upsert_account(
                conn, account_id=account_id, platform=platform, remote_id=profile.remote_id,
                name=profile.name, sandbox=self.settings.sandbox,
                tokens=self.vault.seal(tokens.to_json()), expires_at=tokens.expires_at,
            )  # fmt: skip
            q.update_account(conn, held_by, profile={**profile.details, **details})
            waiting = pq.resume_for_account(conn, held_by, self.clock())
            return held_by, waiting

        held_by, waiting = self.db.write(store)
        log.info("connected %s account %s (%s)", platform, profile.name, held_by)
        if waiting:
            self.on_reconnected(waiting)
        return self.get(held_by)

    def disconnect(self, account_id: str) -> list[str]:
        """Forget the tokens; the account's unfinished publications are cancelled."""
        self.get(account_id)

        def change(conn: Any) -> list[str]:
            q.update_account(conn, account_id, state="disconnected", tokens=None, state_reason="disconnected")
            return pq.set_state_for_account(
                conn, account_id, ("scheduled", "waiting"), "cancelled", error_message="account disconnected"
            )

        return self.db.write(change)

    # --- tokens ------------------------------------------------------------------

    def fresh_tokens(self, account: dict[str, Any], *, force: bool = False) -> Tokens:
        """The account's tokens, refreshed first when they expire soon (or when forced
        after a platform said the access token is no good). The newest refresh token
        is stored before it is used. Raises PublishFailure('reconnect') when the grant
        is gone, after marking the account."""
        with self._lock_for(account["id"]):
            account = self.get(account["id"])  # another thread may have refreshed it
            if account["state"] != "connected" or not account["tokens"]:
                raise PublishFailure("reconnect", "not_connected", "the account needs to be connected again")
            try:
                tokens = Tokens(**self.vault.open(account["tokens"]))
            except VaultError as exc:
                self.mark_reconnect(account["id"], str(exc))
                raise PublishFailure("reconnect", "undecryptable", str(exc)) from None
            client = self._platform(account["platform"])
            expiring = tokens.expires_at is not None and tokens.expires_at - self.clock() < client.refresh_margin
            if not (force or expiring):
                return tokens
            try:
                tokens = client.refresh(tokens)
            except PublishFailure as failure:
                if failure.kind == "reconnect":
                    self.mark_reconnect(account["id"], f"{failure.code}: {failure.message}")
                raise
            sealed = self.vault.seal(tokens.to_json())
            self.db.write(lambda conn: q.update_account(
                conn, account["id"], tokens=sealed, expires_at=tokens.expires_at
            ))  # fmt: skip
            log.info("refreshed the %s token of account %s", account["platform"], account["id"])
            return tokens

    def refresh_expiring(self) -> int:
        """Refresh every connected account whose token is inside its margin (Instagram's
        60-day tokens die for good if nobody posts for two months)."""
        refreshed = 0
        for account in self.db.read(q.list_accounts):
            if account["state"] != "connected" or account["expires_at"] is None:
                continue
            margin = self._platform(account["platform"]).refresh_margin
            if account["expires_at"] - self.clock() < margin:
                try:
                    self.fresh_tokens(account)
                    refreshed += 1
                except PublishFailure as failure:
                    log.warning("could not refresh account %s: %s", account["id"], failure)
        return refreshed

    def forget_old_usage(self) -> int:
        """Usage rows older than any rolling window that reads them."""
        return self.db.write(lambda conn: q.forget_usage_before(conn, self.clock() - USAGE_KEEP_SECONDS))

    def mark_reconnect(self, account_id: str, reason: str) -> None:
        def change(conn: Any) -> None:
            account = q.get_account(conn, account_id)
            if account is None or account["state"] != "connected":
                return
            q.update_account(conn, account_id, state="reconnect_needed", state_reason=reason)
            waiting = pq.park_for_reconnect(conn, account_id)
            ev.add_event(conn, None, "account.reconnect_needed", {
                "account_id": account_id, "platform": account["platform"], "name": account["name"],
                "reason": reason, "publications_waiting": len(waiting),
            })  # fmt: skip

        self.db.write(change)
        log.warning("account %s needs to be reconnected: %s", account_id, reason)

    def block(self, account_id: str, until: float, reason: str) -> None:
        """Nothing goes to the account before `until`; a longer block already set stays."""

        def change(conn: Any) -> None:
            account = q.get_account(conn, account_id)
            if account is not None and (account["blocked_until"] or 0) < until:
                q.update_account(conn, account_id, blocked_until=until, blocked_reason=reason)

        self.db.write(change)

    def _platform(self, name: str) -> PlatformHttp:
        if name not in self.platforms:
            raise AccountNotFound(f"no platform {name!r}")
        return self.platforms[name]

    def _lock_for(self, account_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(account_id, threading.Lock())


def public_view(account: dict[str, Any]) -> dict[str, Any]:
    """An account as the API shows it: never its tokens."""
    return {
        key: account[key]
        for key in ("id", "platform", "name", "remote_id", "sandbox", "state", "state_reason",
                    "blocked_until", "blocked_reason", "expires_at", "created_at")
    }  # fmt: skip
