"""Placing an order and shaping its HTTP reply — shared by the FastAPI routes and the fast path."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response

from order_service.api.container import ApiContainer
from order_service.domain.order import Order
from order_service.observability.http_metrics import LabelledChildren
from order_service.observability.metrics import IDEMPOTENT_REPLAYS, ORDERS_CREATED
from order_service.service.place_order import IdempotencyContext, PlacementResult, Renderer

_created = LabelledChildren(ORDERS_CREATED)

JSON = "application/json"


def order_json(order: Order) -> dict[str, object]:
    return {
        "id": str(order.id),
        "item": order.item,
        "quantity": order.quantity,
        "status": order.status.value,
        "rejection_reason": order.rejection_reason.value if order.rejection_reason else None,
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
    }


def _render_created(order: Order) -> tuple[int, bytes]:
    return 201, orjson.dumps(order_json(order))


def _render_seed(order: Order) -> tuple[int, bytes]:
    """The seed's reply to `POST /order`, plus the order's fields."""
    return 200, orjson.dumps(
        {
            "message": "Order placed successfully",
            "order_id": str(order.id),
            "item": order.item,
            "quantity": order.quantity,
            "status": order.status.value,
        }
    )


RENDERERS: dict[str, Renderer] = {"orders": _render_created, "order": _render_seed}


def reply(result: PlacementResult, *, location: bool) -> Response:
    headers = {"Location": f"/orders/{result.order_id}"} if location else {}
    if result.replayed:
        headers["Idempotency-Replayed"] = "true"
    return Response(result.body, result.status_code, headers, media_type=JSON)


async def place_and_reply(
    container: ApiContainer,
    path: str,
    item: str,
    quantity: int,
    subject: str,
    key: str | None,
    endpoint: str,
    deadline: float,
    trace_headers: Mapping[str, str] | None = None,
) -> Response:
    """`endpoint` is "orders" (201 + Location) or "order" (the seed's 200)."""
    idempotency = IdempotencyContext(subject, key, "POST", path) if key else None
    result = await container.placement.place(
        item,
        quantity,
        RENDERERS[endpoint],
        idempotency,
        owner=subject,
        deadline=deadline,
        trace_headers=trace_headers,
    )
    if result.replayed:
        IDEMPOTENT_REPLAYS.inc()
    else:
        _created(endpoint).inc()
    return reply(result, location=endpoint == "orders")
