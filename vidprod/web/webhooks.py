"""The webhook API: endpoints, their secrets, deliveries and replays."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, Parameter, QueryParameter

from vidprod.domain.webhooks import DELIVERY_STATES, WebhookService
from vidprod.events import CATALOGUE, OPT_IN
from vidprod.store import MAX_INTEGER
from vidprod.web.links import link
from vidprod.web.problems import json_fields, problem

MAX_PAGE = 100


def _service(state: State) -> WebhookService:
    return state.webhooks


ENDPOINT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "url": str, "event_types": (list, type(None)), "description": str, "enabled": bool,
}  # fmt: skip


@get("/webhooks/event-types")
async def event_types() -> dict[str, Any]:
    return {
        "event_types": [
            {"type": name, "description": text, "opt_in": name in OPT_IN} for name, text in CATALOGUE.items()
        ]
    }


@get("/webhooks")
async def list_endpoints(state: State) -> dict[str, Any]:
    return {"endpoints": await anyio.to_thread.run_sync(_service(state).list_endpoints)}


@post("/webhooks", status_code=201, opt={"problems": (422,)})
async def create_endpoint(request: Request, state: State, data: JSONBody[Any]) -> Response[dict[str, Any]]:
    fields = json_fields(data, ENDPOINT_FIELDS)
    if "url" not in fields:
        raise problem(422, "url is required.")
    endpoint, secret = await anyio.to_thread.run_sync(lambda: _service(state).create_endpoint(**fields))
    return Response(
        {**endpoint, "secret": secret},  # shown this once
        status_code=201,
        headers={"Location": link(request, "webhook_endpoint", endpoint_id=endpoint["id"])},
    )


@get("/webhooks/{endpoint_id:str}", name="webhook_endpoint")
async def get_endpoint(state: State, endpoint_id: FromPath[str]) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(_service(state).get_endpoint, endpoint_id)


@patch("/webhooks/{endpoint_id:str}", opt={"problems": (422,)})
async def update_endpoint(state: State, endpoint_id: FromPath[str], data: JSONBody[Any]) -> dict[str, Any]:
    fields = json_fields(data, ENDPOINT_FIELDS)
    return await anyio.to_thread.run_sync(lambda: _service(state).update_endpoint(endpoint_id, **fields))


@delete("/webhooks/{endpoint_id:str}", status_code=204)
async def delete_endpoint(state: State, endpoint_id: FromPath[str]) -> None:
    await anyio.to_thread.run_sync(_service(state).delete_endpoint, endpoint_id)


@post("/webhooks/{endpoint_id:str}/rotate-secret", status_code=200)
async def rotate_secret(state: State, endpoint_id: FromPath[str]) -> dict[str, Any]:
    endpoint, secret = await anyio.to_thread.run_sync(_service(state).rotate_secret, endpoint_id)
    return {**endpoint, "secret": secret}


@get("/webhooks/{endpoint_id:str}/deliveries", opt={"problems": (422,)})
async def list_deliveries(
    state: State,
    endpoint_id: FromPath[str],
    delivery_state: Annotated[str | None, QueryParameter(name="state")] = None,
    limit: int = Parameter(default=50, ge=1, le=MAX_PAGE),
    offset: int = Parameter(default=0, ge=0, le=MAX_INTEGER),
) -> dict[str, Any]:
    if delivery_state is not None and delivery_state not in DELIVERY_STATES:
        raise problem(422, "state must be one of: " + ", ".join(DELIVERY_STATES) + ".")
    deliveries = await anyio.to_thread.run_sync(
        lambda: _service(state).deliveries(endpoint_id, state=delivery_state, limit=limit, offset=offset)
    )
    return {"deliveries": deliveries, "limit": limit, "offset": offset}


@post("/webhooks/{endpoint_id:str}/deliveries/{delivery_id:int}/resend", status_code=202)
async def resend_delivery(state: State, endpoint_id: FromPath[str],
                         delivery_id: Annotated[int, Parameter(ge=1, le=MAX_INTEGER)]) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(_service(state).resend, endpoint_id, delivery_id)


@post("/webhooks/{endpoint_id:str}/resend-failed", status_code=202)
async def resend_failed(state: State, endpoint_id: FromPath[str]) -> dict[str, Any]:
    count = await anyio.to_thread.run_sync(_service(state).resend_failed, endpoint_id)
    return {"requeued": count}


ROUTES = [
    event_types, list_endpoints, create_endpoint, get_endpoint, update_endpoint, delete_endpoint,
    rotate_secret, list_deliveries, resend_delivery, resend_failed,
]  # fmt: skip
