"""Decode a Kafka record into an `order.created` event, or say exactly why it is poison.

Pure functions: no I/O, so every rejection reason is unit-tested. The shape checked here is the
one `schemas/order.created.v1.json` publishes (DESIGN.md §4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from order_service.domain.events import EVENT_SCHEMA_VERSION, ORDER_CREATED_TYPE
from order_service.domain.order import ITEM_MAX_LENGTH, QUANTITY_MAX, QUANTITY_MIN, OrderStatus

MAX_EVENT_BYTES = 256 * 1024
_STATUSES = frozenset(s.value for s in OrderStatus)


class Poison(Exception):
    """A message no retry can fix; `reason` is a low-cardinality metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class OrderCreatedEvent:
    event_id: UUID
    order_id: UUID
    occurred_at: datetime | None
    headers: dict[str, str]


def decode_headers(raw: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    try:
        return {name: (value or b"").decode() for name, value in raw or ()}
    except UnicodeDecodeError as exc:
        raise Poison("invalid_header", f"header is not UTF-8: {exc.reason}") from exc


def decode(
    value: bytes | None, raw_headers: Iterable[tuple[str, bytes | None]] | None
) -> OrderCreatedEvent:
    headers = decode_headers(raw_headers)
    event_id = _uuid(headers.get("ce_id"), "ce_id")
    ce_type = headers.get("ce_type")
    if ce_type != ORDER_CREATED_TYPE:
        raise Poison("unsupported_type", f"ce_type is {ce_type!r}, expected {ORDER_CREATED_TYPE!r}")
    if not value:
        raise Poison("invalid_schema", "empty value")
    if len(value) > MAX_EVENT_BYTES:
        raise Poison("oversized", f"value of {len(value)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Poison("not_json", f"value is not JSON: {exc.msg}") from exc
    order_id = validate_payload(payload)
    return OrderCreatedEvent(event_id, order_id, _time(headers.get("ce_time")), headers)


def validate_payload(payload: Any) -> UUID:
    """Check the event value; returns the order id."""
    if not isinstance(payload, dict):
        raise Poison("invalid_schema", "value is not a JSON object")
    if payload.get("schema_version") != EVENT_SCHEMA_VERSION:
        raise Poison("invalid_schema", f"schema_version must be {EVENT_SCHEMA_VERSION}")
    item = payload.get("item")
    if not isinstance(item, str) or not item.strip() or len(item) > ITEM_MAX_LENGTH:
        raise Poison("invalid_schema", f"item must be 1-{ITEM_MAX_LENGTH} characters")
    quantity = payload.get("quantity")
    if (
        not isinstance(quantity, int)
        or isinstance(quantity, bool)
        or not QUANTITY_MIN <= quantity <= QUANTITY_MAX
    ):
        raise Poison("invalid_schema", f"quantity must be an integer {QUANTITY_MIN}-{QUANTITY_MAX}")
    if payload.get("status") not in _STATUSES:
        raise Poison("invalid_schema", "status is not a known order status")
    for field in ("created_at", "updated_at"):
        if _time(payload.get(field)) is None:
            raise Poison("invalid_schema", f"{field} must be an ISO 8601 date-time")
    return _uuid(payload.get("id"), "id", reason="invalid_schema")


def _uuid(value: object, name: str, *, reason: str | None = None) -> UUID:
    if value is None and reason is None:
        raise Poison("missing_header", f"{name} header is missing")
    try:
        return UUID(str(value))
    except ValueError as exc:
        raise Poison(reason or "invalid_header", f"{name} is not a UUID") from exc


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
