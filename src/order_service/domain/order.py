"""The order aggregate and its status machine."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

import uuid_utils

from order_service.domain.errors import InvalidTransition

ITEM_MAX_LENGTH = 200
QUANTITY_MIN = 1
QUANTITY_MAX = 10_000


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"


_ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.REJECTED}),
    OrderStatus.CONFIRMED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
}


def can_transition(current: OrderStatus, target: OrderStatus) -> bool:
    return target in _ALLOWED[current]


def new_order_id() -> UUID:
    """UUIDv7: time-ordered, so the primary key index stays append-only and keyset pages sort."""
    return UUID(bytes=uuid_utils.uuid7().bytes)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Order:
    id: UUID
    item: str
    quantity: int
    status: OrderStatus
    created_at: datetime
    updated_at: datetime

    @classmethod
    def place(cls, item: str, quantity: int, *, now: datetime | None = None) -> Order:
        at = now or utcnow()
        return cls(new_order_id(), item, quantity, OrderStatus.PENDING, at, at)

    def transition(self, target: OrderStatus, *, now: datetime | None = None) -> Order:
        if not can_transition(self.status, target):
            raise InvalidTransition(self.status, target)
        return replace(self, status=target, updated_at=now or utcnow())
