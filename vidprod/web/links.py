"""Links in API answers. Litestar's url_for builds them from the Host header a client
sent (a forged Host would put the client's domain into status and download links), so
they come from VIDPROD_PUBLIC_URL, or are paths on this server when it is not set."""

from __future__ import annotations

from typing import Any

from litestar import Request


def link(request: Request, route_name: str, **params: Any) -> str:
    path = request.app.route_reverse(route_name, **params)
    public_url = request.app.state.settings.public_url
    return f"{public_url}{path}" if public_url else path
