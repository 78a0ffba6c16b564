"""Decode a Kafka record into an `order.created` event, or say exactly why not.

Pure functions: no I/O, so every outcome is unit-tested. A tolerant reader (DESIGN.md §4):
- unknown fields are ignored, and any minor version of a major we know is read — a newer
  producer that added optional fields is no reason to refuse its events;
- an event of another type, or of a newer major version, is `Skip`ped: counted, not applied,
  not dead-lettered (a rolling deploy of a newer producer must not fill the DLQ);
- only what cannot be read at all is `Poison`: no value, not JSON, missing or broken headers,
  a value the published schema (`schemas/order.created.v1.json`) refuses, or too large.
"""

from __future__ import annotations

import re
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
_DATASCHEMA = re.compile(r"/order\.created\.v(\d+)(?:\.(\d+))?\.json$")


class Poison(Exception):
    """A message no retry can fix; `reason` is a low-cardinality metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Skip(Exception):
    """A readable message that is not ours to apply; `reason` labels the metric."""

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
        return {str(name): (value or b"").decode() for name, value in raw or ()}
    except (UnicodeDecodeError, AttributeError, TypeError) as exc:
        raise Poison("invalid_header", f"a header is not UTF-8 text: {exc}") from exc


def decode(
    value: bytes | None, raw_headers: Iterable[tuple[str, bytes | None]] | None
) -> OrderCreatedEvent:
    headers = decode_headers(raw_headers)
    event_id = _uuid(headers.get("ce_id"), "ce_id")
    ce_type = headers.get("ce_type")
    if ce_type is None:
        raise Poison("missing_header", "ce_type header is missing")
    if ce_type != ORDER_CREATED_TYPE:
        raise Skip(
            "unknown_type", f"ce_type is {ce_type!r}; this worker applies only order.created"
        )
    major = _major_of_dataschema(headers.get("ce_dataschema"))
    if value is None:
        raise Poison("tombstone", "the record has no value")
    if not value:
        raise Poison("invalid_schema", "empty value")
    if len(value) > MAX_EVENT_BYTES:
        raise Poison("oversized", f"value of {len(value)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Poison("not_json", f"value is not JSON: {exc.msg}") from exc
    order_id = validate_payload(payload, major)
    return OrderCreatedEvent(event_id, order_id, _time(headers.get("ce_time")), headers)


def _major_of_dataschema(dataschema: str | None) -> int | None:
    if dataschema is None:
        return None
    match = _DATASCHEMA.search(dataschema)
    # A form we do not know is no reason to refuse: the payload's schema_version decides.
    return int(match.group(1)) if match else None


def validate_payload(payload: Any, major: int | None = None) -> UUID:
    """Check the event value; returns the order id. Unknown fields are ignored."""
    if not isinstance(payload, dict):
        raise Poison("invalid_schema", "value is not a JSON object")
    version = payload.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Poison("invalid_schema", "schema_version must be a positive integer")
    if major is not None and major != version:
        raise Poison("invalid_schema", "schema_version disagrees with ce_dataschema")
    if version > EVENT_SCHEMA_VERSION:
        raise Skip("unsupported_version", f"schema version {version} is newer than this worker")
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
    try:
        return UUID(str(payload.get("id")))
    except ValueError as exc:
        raise Poison("invalid_schema", "id is not a UUID") from exc


def _uuid(value: str | None, name: str) -> UUID:
    # Each reason is a literal where it is raised: the DLQ reasons test reads them from here.
    if value is None:
        raise Poison("missing_header", f"{name} header is missing")
    try:
        return UUID(value)
    except ValueError as exc:
        raise Poison("invalid_header", f"{name} is not a UUID") from exc


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
