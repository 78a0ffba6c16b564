"""Order endpoints: thin — parse, call the use case, shape the reply."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from order_service.api.deadline import database_call, request_deadline
from order_service.api.deps import ContainerDep, IdempotencyKeyHeader, ReaderDep, WriterDep
from order_service.api.order_replies import order_json, place_and_reply, reply
from order_service.api.schemas import OrderIn, OrderOut, OrderPage, Problem, SeedOrderOut
from order_service.domain.order import Order, OrderStatus
from order_service.observability.metrics import IDEMPOTENT_REPLAYS
from order_service.persistence.order_queries import get_order, list_orders
from order_service.service.place_order import IdempotencyContext

router = APIRouter(tags=["orders"])


def _problems(*codes: int) -> dict[int | str, dict[str, object]]:
    return {code: {"model": Problem, "content": {"application/problem+json": {}}} for code in codes}


_ERRORS = _problems(401, 403, 409, 413, 422, 503)


async def _place(
    container: ContainerDep,
    request: Request,
    body: OrderIn,
    subject: str,
    key: str | None,
    endpoint: str,
) -> Response:
    deadline = request_deadline(request, container.settings.request_timeout_s)
    return await place_and_reply(
        container,
        request.url.path,
        body.item,
        body.quantity,
        subject,
        key,
        endpoint,
        deadline,
        request.headers,
    )


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderOut,
    responses=_ERRORS,
    summary="Place an order",
)
async def create_order(
    body: OrderIn,
    request: Request,
    container: ContainerDep,
    principal: WriterDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    return await _place(container, request, body, principal.subject, idempotency_key, "orders")


@router.post(
    "/order",
    status_code=200,
    response_model=SeedOrderOut,
    responses=_ERRORS,
    summary="Place an order (the seed's original contract)",
)
async def create_order_seed(
    body: OrderIn,
    request: Request,
    container: ContainerDep,
    principal: WriterDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    return await _place(container, request, body, principal.subject, idempotency_key, "order")


@router.get(
    "/orders/{order_id}",
    response_model=OrderOut,
    responses=_problems(401, 403, 404, 422, 503),
    summary="One of the caller's orders (any order with orders:admin)",
)
async def read_order(
    order_id: UUID, request: Request, container: ContainerDep, principal: ReaderDep
) -> Response:
    async with database_call(request, container.settings, "read"):
        order = await get_order(
            container.pool,
            order_id,
            owner=principal.owner_filter,
            timeout_s=container.settings.db_connect_timeout_s,
        )
    if order is None:
        raise HTTPException(404, f"order {order_id} does not exist")
    return Response(orjson.dumps(order_json(order)), media_type="application/json")


def _render_cancelled(order: Order) -> tuple[int, bytes]:
    return 200, orjson.dumps(order_json(order))


@router.post(
    "/orders/{order_id}/cancel",
    response_model=OrderOut,
    responses=_problems(401, 403, 404, 409, 422, 503),
    summary="Cancel an order: PENDING or CONFIRMED → CANCELLED (its units go back to stock)",
    description=(
        "Cancelled again: 200, unchanged. REJECTED: 409. Unknown or not the caller's: 404. "
        "Send `Idempotency-Key` to retry safely."
    ),
)
async def cancel_order(
    order_id: UUID,
    request: Request,
    container: ContainerDep,
    principal: WriterDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    deadline = request_deadline(request, container.settings.request_timeout_s)
    idempotency = (
        IdempotencyContext(principal.subject, idempotency_key, "POST", request.url.path)
        if idempotency_key
        else None
    )
    result = await container.cancellation.cancel(
        order_id,
        owner=principal.owner_filter,
        render=_render_cancelled,
        idempotency=idempotency,
        trace_headers=request.headers,
        deadline=deadline,
    )
    if result.replayed:
        IDEMPOTENT_REPLAYS.inc()
    return reply(result, location=False)


def _decode_cursor(cursor: str) -> UUID:
    try:
        return UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "cursor"),
                    "msg": "not a cursor returned by this API",
                    "type": "value_error",
                }
            ]
        ) from None


def _encode_cursor(after: UUID) -> str:
    return base64.urlsafe_b64encode(after.bytes).rstrip(b"=").decode()


@router.get(
    "/orders",
    response_model=OrderPage,
    responses=_ERRORS,
    summary="The caller's orders, newest first (every order with orders:admin)",
)
async def browse_orders(
    request: Request,
    container: ContainerDep,
    principal: ReaderDep,
    status: OrderStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    after = _decode_cursor(cursor) if cursor else None
    async with database_call(request, container.settings, "list"):
        orders, next_after = await list_orders(
            container.pool,
            owner=principal.owner_filter,
            status=status,
            after=after,
            limit=limit,
            timeout_s=container.settings.db_connect_timeout_s,
        )
    page = {
        "items": [order_json(o) for o in orders],
        "next_cursor": _encode_cursor(next_after) if next_after else None,
    }
    return Response(orjson.dumps(page), media_type="application/json")
