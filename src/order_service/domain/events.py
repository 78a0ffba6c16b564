"""The `order.created` event: its payload and CloudEvents attributes, free of any transport."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import uuid_utils

from order_service.domain.order import Order

ORDER_CREATED_TYPE = "order.created"
EVENT_SPEC_VERSION = "1.0"
EVENT_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class OrderCreated:
    event_id: UUID
    order: Order
    occurred_at: datetime

    @classmethod
    def of(cls, order: Order) -> OrderCreated:
        return cls(UUID(bytes=uuid_utils.uuid7().bytes), order, order.created_at)

    def payload(self) -> dict[str, Any]:
        """The event value: the order as JSON (DESIGN.md §4), versioned for consumers."""
        o = self.order
        return {
            "schema_version": EVENT_SCHEMA_VERSION,
            "id": str(o.id),
            "item": o.item,
            "quantity": o.quantity,
            "status": o.status.value,
            "created_at": o.created_at.isoformat(),
            "updated_at": o.updated_at.isoformat(),
        }
