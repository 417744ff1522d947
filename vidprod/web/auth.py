"""Who may do what: the admin token (generated once and kept in the data dir, or set by
VIDPROD_ADMIN_TOKEN), sent as a bearer token by API clients, or exchanged once on the
sign-in page for a session cookie the browser pages use.

The cookie (encrypted, client-side) carries a random session id; the database keeps a hash
of it with a fixed expiry 30 days after sign-in. Signing out deletes the row, so a copied
cookie stops working, and using the cookie does not extend its life.

Cookie-authenticated requests that change something must carry the session's CSRF
token in an X-CSRF-Token header (every page mutation is a fetch) or, for the two plain
forms, a csrf_token field. Litestar's CSRF middleware is not used: it cannot tell a
bearer-token API call (which needs no CSRF token) from a browser one, and it parses
the whole body of a multipart upload before the handler to look for the field.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.session.client_side import CookieBackendConfig

from vidprod.config import Settings
from vidprod.store import Database
from vidprod.store import sessions as sq

TOKEN_FILE = "admin_token"
SESSION_COOKIE = "vidprod_session"
SESSION_DAYS = 30
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STALE_PAGE = "This page's security token is missing or out of date. Reload the page and try again."


class SignInRequired(NotAuthorizedException):
    """A page was asked for without a session: the browser is sent to the sign-in page."""


def load_or_create_admin_token(settings: Settings) -> tuple[str, bool]:
    """(token, created_now). The file is written with mode 0600 and never rewritten."""
    if settings.admin_token:
        return settings.admin_token, False
    path: Path = settings.data_dir / TOKEN_FILE
    if path.exists():
        return path.read_text().strip(), False
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, True


def bearer_token(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def token_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def session_config(admin_token: str, secure: bool) -> CookieBackendConfig:
    """Encrypted client-side sessions. The key is derived from the admin token, so
    changing the token signs every browser out."""
    key = hashlib.sha256(b"vidprod session cookie\0" + admin_token.encode()).digest()
    return CookieBackendConfig(
        secret=key, key=SESSION_COOKIE, max_age=SESSION_DAYS * 86400,
        httponly=True, samesite="lax", secure=secure,
    )  # fmt: skip


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def new_session(db: Database, now: float | None = None) -> dict[str, Any]:
    """A signed-in session, recorded so that signing out can revoke it."""
    now = time.time() if now is None else now
    session_id = secrets.token_urlsafe(24)

    def record(conn: Any) -> None:
        sq.remove_expired(conn, now)
        sq.add(conn, _id_hash(session_id), now + SESSION_DAYS * 86400)

    db.write(record)
    return {"admin": True, "sid": session_id, "csrf": secrets.token_urlsafe(24)}


def end_session(db: Database, connection: ASGIConnection) -> None:
    session = connection.scope.get("session")
    if isinstance(session, dict) and isinstance(session.get("sid"), str):
        db.write(lambda conn: sq.remove(conn, _id_hash(session["sid"])))


def signed_in(connection: ASGIConnection) -> bool:
    session = connection.scope.get("session")
    if not (isinstance(session, dict) and session.get("admin") is True):
        return False
    session_id = session.get("sid")
    db: Database | None = getattr(connection.app.state, "db", None)
    if not isinstance(session_id, str) or db is None:
        return False  # cookies from before sessions were recorded sign in again
    return db.read(lambda conn: sq.is_live(conn, _id_hash(session_id), time.time()))


def csrf_token(connection: ASGIConnection) -> str:
    session = connection.scope.get("session")
    return session.get("csrf", "") if isinstance(session, dict) else ""


def check_csrf(connection: ASGIConnection, given: str | None) -> None:
    """The session's CSRF token, and (when the browser says) a same-origin request."""
    expected = csrf_token(connection)
    if not expected or not given or not token_matches(given, expected):
        raise PermissionDeniedException(detail=STALE_PAGE)
    origin = connection.headers.get("origin")
    if origin and origin != "null":
        # This host as the request names it, or as the settings name it (a proxy
        # in front may rewrite Host).
        ours = {connection.headers.get("host", ""), urlsplit(connection.app.state.settings.browser_url).netloc}
        if urlsplit(origin).netloc not in ours:
            raise PermissionDeniedException(detail="This request came from another site.")


def require_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Guard for every route not marked `opt={"public": True}`. Pages (`opt={"page":
    True}`) send a signed-out browser to the sign-in page; handlers marked
    `opt={"form_csrf": True}` check a form's csrf_token field themselves."""
    if handler.opt.get("public"):
        return
    given = bearer_token(connection)
    if given is not None and token_matches(given, connection.app.state.admin_token):
        return
    if given is None and signed_in(connection):
        if connection.scope["method"] not in SAFE_METHODS and not handler.opt.get("form_csrf"):
            check_csrf(connection, connection.headers.get(CSRF_HEADER))
        return
    if handler.opt.get("page") and given is None:
        raise SignInRequired()
    raise NotAuthorizedException(
        detail="Send the admin token as 'Authorization: Bearer <token>', or sign in.",
        headers={"WWW-Authenticate": 'Bearer realm="vidprod"'},
    )
