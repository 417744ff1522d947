"""Every error answer is an RFC 9457 problem+json document with words a person can act on."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from vidprod.domain.accounts import AccountNotFound, ConnectError
from vidprod.domain.jobs import JobConflict, JobNotFound
from vidprod.media.cuts import CutError
from vidprod.domain.publishing import (
    InvalidPublication,
    PublicationConflict,
    PublicationNotFound,
)
from vidprod.domain.uploads import UploadError
from vidprod.domain.webhooks import DeliveryNotFound, EndpointNotFound, InvalidEndpoint
from vidprod.media.probe import InvalidMedia
from vidprod.media.retime import EditError
from vidprod.web.uploads import UploadRejected

log = logging.getLogger(__name__)


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=status,
        title=HTTPStatus(status).phrase,
        detail=detail,
        headers=headers,
        extra=extra or None,
        type_="about:blank",
    )


def json_fields(data: Any, allowed: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """The JSON object's known fields, type-checked, with plain words when wrong."""
    if not isinstance(data, dict):
        raise problem(400, "The body must be a JSON object.")
    unknown = set(data) - set(allowed)
    if unknown:
        raise problem(422, f"Unknown field(s): {', '.join(sorted(unknown))}. Known: {', '.join(allowed)}.")
    for name, kinds in allowed.items():
        if name in data and not isinstance(data[name], kinds):
            raise problem(422, f"{name} has the wrong type.")
    return data


def _http(exc: HTTPException) -> ProblemDetailsException:
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else ""
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        # "Validation failed for GET /jobs?offset=..." names no field: say which and why.
        detail = " ".join(
            f"The {getattr(item.get('source'), 'value', 'request')} parameter '{item['key']}' is wrong: "
            f"{str(item.get('message', 'invalid')).rstrip('.')}."
            if isinstance(item, dict) and item.get("key") else str(item)
            for item in exc.extra
        )
    if exc.status_code == 429:
        # The rate limiter says when its window resets (RateLimit-Reset); clients and
        # proxies look for Retry-After.
        headers = dict(exc.headers or {})
        reset = str(headers.get("RateLimit-Reset", ""))
        wait = max(1, int(reset)) if reset.isascii() and reset.isdigit() else 60
        headers["Retry-After"] = str(wait)
        return problem(
            429, f"Too many requests from your address; wait {wait} s, then try again.", headers=headers
        )
    if exc.status_code == 404 and not detail:
        detail = "There is nothing at this address."
    return problem(exc.status_code, detail or HTTPStatus(exc.status_code).description, headers=exc.headers)


def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "Something went wrong on the server; it has been logged.").to_response(request)


def problem_details_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            enable_for_all_http_exceptions=True,
            exception_to_problem_detail_map={
                HTTPException: _http,
                JobNotFound: lambda exc: problem(404, "There is no job with this id."),
                JobConflict: lambda exc: problem(409, str(exc)),
                CutError: lambda exc: problem(422, str(exc), problems=exc.problems),
                InvalidMedia: lambda exc: problem(422, str(exc)),
                EditError: lambda exc: problem(422, str(exc)),
                UploadRejected: lambda exc: problem(exc.status, exc.message),
                UploadError: lambda exc: problem(exc.status, exc.message, headers=exc.headers),
                EndpointNotFound: lambda exc: problem(404, str(exc)),
                DeliveryNotFound: lambda exc: problem(404, str(exc)),
                InvalidEndpoint: lambda exc: problem(422, str(exc)),
                AccountNotFound: lambda exc: problem(404, f"There is no account or platform {exc}."),
                ConnectError: lambda exc: problem(409, str(exc)),
                PublicationNotFound: lambda exc: problem(404, "There is no publication with this id."),
                PublicationConflict: lambda exc: problem(409, str(exc)),
                InvalidPublication: lambda exc: problem(422, str(exc), problems=exc.problems),
                # msgspec raises it decoding a JSON body nested past its depth limit
                # (our own code does not recurse on what a client sends).
                RecursionError: lambda exc: problem(400, "The JSON is nested too deeply to read; send a flat JSON object."),
            },
        )
    )


EXCEPTION_HANDLERS = {Exception: _server_error}
