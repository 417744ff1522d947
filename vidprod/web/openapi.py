"""What the OpenAPI document (/schema/openapi.json) says each route answers.

Litestar documents a route's success and, where it has parameters, a 400; every error
this app sends is a problem+json document (web/problems.py), and most routes can send
several. The common ones follow from the route (the token, path ids, the rate limit);
a route adds its own in `opt={"problems": (...)}`, next to the code that raises them.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus

from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec

PROBLEM_MEDIA_TYPE = "application/problem+json"
PHRASES = {460: "Checksum Mismatch"}  # tus's own status, unknown to http.HTTPStatus
RATE_LIMIT_EXEMPT = {"/health"}  # as web/app.py sets up the rate limiter


@dataclass
class Problem:
    """RFC 9457: `detail` says what went wrong in words a person can act on."""

    status: int
    title: str
    detail: str
    type: str = "about:blank"


def _spec(status: int) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_MEDIA_TYPE,
        description=f"{PHRASES.get(status) or HTTPStatus(status).phrase} (problem+json)",
        generate_examples=False,
    )


def problem_statuses(handler: HTTPRouteHandler, path: str) -> set[int]:
    statuses = set(handler.opt.get("problems", ()))
    if "{" in path:
        statuses |= {400, 404}  # a malformed or unknown id
    if handler.opt.get("public") is not True:
        statuses.add(401)
    if path not in RATE_LIMIT_EXEMPT:
        statuses.add(429)  # VIDPROD_RATE_LIMIT
    parameters = set(inspect.signature(handler.fn).parameters) - {"request", "state"}
    if handler.http_methods & {"POST", "PATCH", "PUT"} or parameters:
        statuses.add(400)  # a bad query, header or body
    return statuses


def document_problems(handlers: Iterable[HTTPRouteHandler], prefix: str = "", *, no_body: bool = False) -> None:
    """Add the problem+json answers to every documented route handler (call before the
    handlers are given to Litestar, which copies them). `no_body`: the handlers answer
    success in headers alone (tus), which Litestar would document as JSON."""
    for handler in handlers:
        if handler.include_in_schema is False:
            continue
        for path in handler.paths:
            statuses = problem_statuses(handler, (prefix + path).rstrip("/") or "/")
            responses = {s: _spec(s) for s in sorted(statuses)}
            if no_body:
                responses[handler.status_code] = ResponseSpec(
                    data_container=None, description="No body: the answer is in the headers."
                )
            handler.responses = {**responses, **(handler.responses or {})}
