"""The order aggregate's status machine and identifiers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from order_service.domain.errors import InvalidTransition
from order_service.domain.order import Order, OrderStatus, can_transition


def test_a_placed_order_is_pending_with_equal_timestamps() -> None:
    order = Order.place("book", 2)

    assert order.status is OrderStatus.PENDING
    assert order.created_at == order.updated_at
    assert order.created_at.tzinfo is not None


def test_order_ids_are_uuid7_and_sort_by_creation() -> None:
    ids = [Order.place("x", 1).id for _ in range(50)]

    assert all(i.version == 7 for i in ids)
    assert ids == sorted(ids)


@pytest.mark.parametrize("target", [OrderStatus.CONFIRMED, OrderStatus.REJECTED])
def test_a_pending_order_can_be_confirmed_or_rejected(target: OrderStatus) -> None:
    later = datetime.now(UTC) + timedelta(seconds=5)

    moved = Order.place("book", 1).transition(target, now=later)

    assert moved.status is target
    assert moved.updated_at == later


@pytest.mark.parametrize("final", [OrderStatus.CONFIRMED, OrderStatus.REJECTED])
@pytest.mark.parametrize("target", list(OrderStatus))
def test_a_final_status_never_changes(final: OrderStatus, target: OrderStatus) -> None:
    order = Order.place("book", 1).transition(final)

    assert not can_transition(final, target)
    with pytest.raises(InvalidTransition):
        order.transition(target)
