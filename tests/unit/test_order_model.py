"""The order aggregate's status machine and identifiers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from order_service.domain.errors import InvalidTransition
from order_service.domain.order import Order, OrderStatus, RejectionReason, can_transition


def test_a_placed_order_is_pending_with_equal_timestamps_and_its_owner() -> None:
    order = Order.place("book", 2, owner="alice")

    assert order.status is OrderStatus.PENDING
    assert order.created_at == order.updated_at
    assert order.created_at.tzinfo is not None
    assert order.owner == "alice"
    assert order.rejection_reason is None and not order.reserved


def test_order_ids_are_uuid7_and_sort_by_creation() -> None:
    ids = [Order.place("x", 1).id for _ in range(50)]

    assert all(i.version == 7 for i in ids)
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    "target", [OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED]
)
def test_a_pending_order_can_be_confirmed_rejected_or_cancelled(target: OrderStatus) -> None:
    later = datetime.now(UTC) + timedelta(seconds=5)

    moved = Order.place("book", 1).transition(target, now=later)

    assert moved.status is target
    assert moved.updated_at == later


def test_a_transition_is_never_stamped_before_the_one_it_follows() -> None:
    """Issue 20.3: a confirmation from a host whose clock runs ahead, then a cancellation with
    this host's time. Seen failing on landed main: `updated_at` went back by a minute."""
    ahead = datetime.now(UTC) + timedelta(minutes=1)
    confirmed = Order.place("book", 1).confirm(reserved=False, now=ahead)

    assert confirmed.cancel(now=datetime.now(UTC)).updated_at == ahead
    assert confirmed.cancel(now=ahead + timedelta(seconds=1)).updated_at > ahead


def test_a_confirmed_order_can_only_be_cancelled() -> None:
    confirmed = Order.place("book", 1).confirm(reserved=True)

    assert confirmed.cancel().status is OrderStatus.CANCELLED
    for target in (OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.REJECTED):
        with pytest.raises(InvalidTransition):
            confirmed.transition(target)


def test_a_rejection_carries_its_reason() -> None:
    rejected = Order.place("book", 1).reject(RejectionReason.OUT_OF_STOCK)

    assert rejected.status is OrderStatus.REJECTED
    assert rejected.rejection_reason is RejectionReason.OUT_OF_STOCK


@pytest.mark.parametrize("final", [OrderStatus.REJECTED, OrderStatus.CANCELLED])
@pytest.mark.parametrize("target", list(OrderStatus))
def test_rejected_and_cancelled_never_change(final: OrderStatus, target: OrderStatus) -> None:
    order = Order.place("book", 1).transition(final)

    assert not can_transition(final, target)
    with pytest.raises(InvalidTransition):
        order.transition(target)
