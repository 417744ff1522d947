"""Serving the fakes: mounted in the app under /sandbox, or as a standalone app."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Litestar, Request, Response, Router
from litestar.di import Provide
from litestar.exceptions import HTTPException

from vidprod.sandbox import instagram, posts, tiktok, youtube
from vidprod.sandbox.state import FakePlatforms

log = logging.getLogger(__name__)


def sandbox_router(fake: FakePlatforms, path: str = "/sandbox") -> Router:
    """Every fake endpoint under `path`: the real https://HOST/PATH is served at
    PATH_PREFIX/HOST/PATH. Handlers get `fake` from this router's own dependency, so the
    router works inside any app whatever its state; all are marked public."""

    def provide_fake() -> FakePlatforms:
        return fake

    return Router(
        path=path,
        route_handlers=[*tiktok.ROUTES, *instagram.ROUTES, *youtube.ROUTES, *posts.ROUTES],
        dependencies={"fake": Provide(provide_fake, sync_to_thread=False)},
        opt={"public": True},
        include_in_schema=False,
    )


def issue_tokens(fake: FakePlatforms, platform: str, scopes: list[str] | None = None) -> dict[str, Any]:
    """Tokens as if the creator had just connected (skips the consent page), in the
    shape the platform's token endpoint answers; for tests that start past OAuth. Here,
    not on FakePlatforms, because the platforms know their scopes and the shared state
    knows no platform."""
    module = {"tiktok": tiktok, "instagram": instagram, "youtube": youtube}[platform]
    client_id = fake.clients[platform][0]
    return module.grant_tokens(fake, client_id, list(scopes or module.DEFAULT_SCOPES))


def create_fake_app(fake: FakePlatforms) -> Litestar:
    """The three fakes alone, at the root (BASE/HOST/PATH with BASE = http://host:port)."""
    return Litestar(
        route_handlers=[sandbox_router(fake, path="/")],
        exception_handlers={Exception: _log_bug},
        openapi_config=None,
        logging_config=None,  # leave the host process's logging alone
        debug=False,
    )


def _log_bug(request: Request, exc: Exception) -> Response:
    """A bug in a fake (never a platform error: those are answers): log it, answer 500."""
    if isinstance(exc, HTTPException):  # Litestar's own 404, 405, 413...
        return Response({"detail": exc.detail}, status_code=exc.status_code)
    log.error("fake platforms: %s %s failed", request.method, request.url.path, exc_info=exc)
    return Response({"detail": "bug in the fake platforms"}, status_code=500)
