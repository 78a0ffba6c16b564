"""The order aggregate and its status machine (DESIGN.md §3).

PENDING → CONFIRMED | REJECTED (the worker's decision), PENDING | CONFIRMED → CANCELLED (the
customer's). REJECTED and CANCELLED are final. Imports nothing from infrastructure.
"""

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
ANONYMOUS_OWNER = "anonymous"


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


class RejectionReason(StrEnum):
    OUT_OF_STOCK = "out_of_stock"


_ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED}
    ),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.CANCELLED}),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}
# Settled: the worker has nothing left to decide (a CONFIRMED order may still be cancelled).
SETTLED_STATUSES = frozenset({OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED})


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
    rejection_reason: RejectionReason | None = None
    owner: str = ANONYMOUS_OWNER
    # True once the worker took `quantity` units from the item's stock for this order: a
    # cancellation gives exactly those back (an item managed later was never reserved).
    reserved: bool = False

    @classmethod
    def place(
        cls, item: str, quantity: int, *, owner: str = ANONYMOUS_OWNER, now: datetime | None = None
    ) -> Order:
        at = now or utcnow()
        return cls(new_order_id(), item, quantity, OrderStatus.PENDING, at, at, owner=owner)

    def transition(self, target: OrderStatus, *, now: datetime | None = None) -> Order:
        """`updated_at` never goes back: a transition's time is no earlier than the one it
        follows, also when that one came from a host whose clock runs ahead."""
        if not can_transition(self.status, target):
            raise InvalidTransition(self.status, target)
        return replace(self, status=target, updated_at=max(now or utcnow(), self.updated_at))

    def confirm(self, *, reserved: bool, now: datetime | None = None) -> Order:
        return replace(self.transition(OrderStatus.CONFIRMED, now=now), reserved=reserved)

    def reject(self, reason: RejectionReason, *, now: datetime | None = None) -> Order:
        return replace(self.transition(OrderStatus.REJECTED, now=now), rejection_reason=reason)

    def cancel(self, *, now: datetime | None = None) -> Order:
        return self.transition(OrderStatus.CANCELLED, now=now)
