"""The order's events — `order.created` and the status changes — free of any transport.

Payloads are versioned: `schema_version` is the major version (a breaking change gets a new
one); the full version (major.minor) names the JSON Schema in `schemas/` the payload follows
and travels as the CloudEvents `dataschema` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import uuid_utils

from order_service.domain.order import Order, OrderStatus

ORDER_CREATED_TYPE = "order.created"
EVENT_SPEC_VERSION = "1.0"
EVENT_SCHEMA_VERSION = 1  # the major version every payload carries as `schema_version`
SCHEMA_BASE_URI = "https://github.com/order-service/schemas/"


class StatusEventType(StrEnum):
    CONFIRMED = "order.confirmed"
    REJECTED = "order.rejected"
    CANCELLED = "order.cancelled"


STATUS_EVENT_OF: dict[OrderStatus, StatusEventType] = {
    OrderStatus.CONFIRMED: StatusEventType.CONFIRMED,
    OrderStatus.REJECTED: StatusEventType.REJECTED,
    OrderStatus.CANCELLED: StatusEventType.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    family: str  # "order.created" or "order.status"
    major: int
    minor: int

    @property
    def file_name(self) -> str:
        """`order.status.v1.json` for 1.0, `order.status.v1.2.json` for 1.2 (in schemas/)."""
        minor = f".{self.minor}" if self.minor else ""
        return f"{self.family}.v{self.major}{minor}.json"

    @property
    def uri(self) -> str:
        """The schema's `$id`: the CloudEvents `dataschema` attribute of its events."""
        return f"{SCHEMA_BASE_URI}{self.file_name}"


ORDER_CREATED_SCHEMA = SchemaVersion("order.created", 1, 0)
ORDER_STATUS_SCHEMA = SchemaVersion("order.status", 1, 0)


def new_event_id() -> UUID:
    return UUID(bytes=uuid_utils.uuid7().bytes)


def _order_payload(order: Order) -> dict[str, Any]:
    return {
        "schema_version": EVENT_SCHEMA_VERSION,
        "id": str(order.id),
        "item": order.item,
        "quantity": order.quantity,
        "status": order.status.value,
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
    }


@dataclass(frozen=True, slots=True)
class OrderCreated:
    event_id: UUID
    order: Order
    occurred_at: datetime
    type: str = ORDER_CREATED_TYPE
    schema: SchemaVersion = ORDER_CREATED_SCHEMA

    @classmethod
    def of(cls, order: Order) -> OrderCreated:
        return cls(new_event_id(), order, order.created_at)

    def payload(self) -> dict[str, Any]:
        """The event value: the order as JSON (DESIGN.md §4), versioned for consumers."""
        return _order_payload(self.order)


@dataclass(frozen=True, slots=True)
class OrderStatusChanged:
    """`order.confirmed` | `order.rejected` | `order.cancelled`: the order after the change."""

    event_id: UUID
    order: Order
    occurred_at: datetime
    type: str
    schema: SchemaVersion = ORDER_STATUS_SCHEMA

    @classmethod
    def of(cls, order: Order) -> OrderStatusChanged:
        return cls(new_event_id(), order, order.updated_at, STATUS_EVENT_OF[order.status].value)

    def payload(self) -> dict[str, Any]:
        body = _order_payload(self.order)
        body["rejection_reason"] = (
            self.order.rejection_reason.value if self.order.rejection_reason else None
        )
        return body
