"""The admin token: generated once and kept in the data dir, or set by VIDPROD_ADMIN_TOKEN."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from vidprod.config import Settings

TOKEN_FILE = "admin_token"


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


def require_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Guard for every route not marked `opt={"public": True}`."""
    if handler.opt.get("public"):
        return
    expected: str = connection.app.state.admin_token
    given = bearer_token(connection)
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise NotAuthorizedException(
            detail="Send the admin token as 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": 'Bearer realm="vidprod"'},
        )
