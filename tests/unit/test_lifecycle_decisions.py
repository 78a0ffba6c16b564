"""The worker's reservation decisions and the cancellation, as pure functions (G9)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from order_service.domain.errors import InvalidTransition
from order_service.domain.lifecycle import cancel, settle
from order_service.domain.order import Order, OrderStatus, RejectionReason
from order_service.domain.stock import Stock

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_an_item_without_stock_is_confirmed_without_a_reservation() -> None:
    result = settle([Order.place("free", 3)], {}, now=NOW)

    assert [o.status for o in result.changed] == [OrderStatus.CONFIRMED]
    assert not result.changed[0].reserved
    assert result.stock == {}


def test_orders_of_one_item_share_its_stock_first_come_first_served() -> None:
    orders = [Order.place("book", q) for q in (2, 2, 1, 3)]

    result = settle(orders, {"book": Stock("book", 3)}, now=NOW)

    assert [o.status for o in result.changed] == [
        OrderStatus.CONFIRMED,
        OrderStatus.REJECTED,  # 2 > 1 left
        OrderStatus.CONFIRMED,  # 1 fits: a smaller later order is not rejected with it
        OrderStatus.REJECTED,
    ]
    assert result.changed[1].rejection_reason is RejectionReason.OUT_OF_STOCK
    assert result.stock == {"book": Stock("book", 0, 3)}


def test_an_order_cancelled_before_the_worker_saw_it_reserves_nothing() -> None:
    cancelled = Order.place("book", 1).cancel()

    result = settle([cancelled], {"book": Stock("book", 5)}, now=NOW)

    assert result.changed == [] and result.stock == {}


@given(
    available=st.integers(0, 50),
    quantities=st.lists(st.integers(1, 10), max_size=40),
)
def test_settling_never_oversells_and_conserves_the_units(
    available: int, quantities: list[int]
) -> None:
    orders = [Order.place("hot", q) for q in quantities]

    result = settle(orders, {"hot": Stock("hot", available)}, now=NOW)

    after = result.stock.get("hot", Stock("hot", available))
    confirmed = sum(o.quantity for o in result.changed if o.status is OrderStatus.CONFIRMED)
    assert after.available >= 0
    assert after.available + after.reserved == available
    assert after.reserved == confirmed
    # Every rejection was a real shortage at its turn: it did not fit what was left then.
    left = available
    for order in result.changed:
        if order.status is OrderStatus.CONFIRMED:
            left -= order.quantity
        else:
            assert order.quantity > left


def test_cancelling_a_reserved_confirmed_order_gives_its_units_back() -> None:
    order = Order.place("book", 2).confirm(reserved=True)

    result = cancel(order, Stock("book", 1, 2), now=NOW)

    assert result.changed and result.order.status is OrderStatus.CANCELLED
    assert result.stock == Stock("book", 3, 0)


def test_cancelling_a_pending_or_unreserved_order_moves_no_stock() -> None:
    pending = cancel(Order.place("book", 2), Stock("book", 1, 2), now=NOW)
    unreserved = cancel(Order.place("book", 2).confirm(reserved=False), Stock("book", 1), now=NOW)

    assert pending.stock is None and unreserved.stock is None
    assert pending.order.status is unreserved.order.status is OrderStatus.CANCELLED


def test_cancelling_twice_changes_nothing_and_a_rejected_order_cannot_be_cancelled() -> None:
    cancelled = Order.place("book", 1).cancel()
    again = cancel(cancelled, None, now=NOW)

    assert not again.changed and again.order == cancelled
    with pytest.raises(InvalidTransition):
        cancel(Order.place("book", 1).reject(RejectionReason.OUT_OF_STOCK), None, now=NOW)
