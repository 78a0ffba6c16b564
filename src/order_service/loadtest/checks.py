"""What `--verify` concludes from the final states it read: pure functions, no I/O.

- the books of the stock-managed item (G9): `available + Σ quantity(CONFIRMED) == stock set`,
  `available ≥ 0`, `reserved == reserved at the start + Σ quantity(CONFIRMED)`, every REJECTED
  order of the item `out_of_stock`;
- the cancellations: a cancel answered 200 ends CANCELLED, one answered 409 ends REJECTED, a
  503 `not_written` left the order uncancelled, and no order the run did not cancel is
  CANCELLED; a cancel answer the contract forbids (404, 409 for an order not REJECTED) fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from order_service.loadtest.cancels import (
    CANCEL_MAYBE_WRITTEN,
    MUST_END,
    CancelKind,
)

CONFIRMED = "CONFIRMED"
REJECTED = "REJECTED"
CANCELLED = "CANCELLED"
FINAL = frozenset({CONFIRMED, REJECTED, CANCELLED})
OUT_OF_STOCK = "out_of_stock"
_BREACHES = frozenset({CancelKind.NOT_FOUND, CancelKind.CONFLICT, CancelKind.UNEXPECTED})


@dataclass(frozen=True, slots=True)
class FinalOrder:
    """An order as `GET /orders/{id}` last showed it."""

    order_id: str
    status: str
    item: str
    quantity: int
    rejection_reason: str | None = None


@dataclass(frozen=True)
class Books:
    item: str
    stock_set: int
    reserved_at_start: int
    available: int | None  # None: GET /stock/{item} could not be read
    reserved: int | None
    confirmed_units: int
    states: dict[str, int]
    wrong_rejections: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {
            "item": self.item,
            "stock_set": self.stock_set,
            "reserved_at_start": self.reserved_at_start,
            "available": self.available,
            "reserved": self.reserved,
            "confirmed_units": self.confirmed_units,
            "states": dict(self.states),
            "wrong_rejections": self.wrong_rejections,
            "ok": self.ok,
            "problems": list(self.problems),
        }


def check_books(
    item: str,
    stock_set: int,
    reserved_at_start: int,
    level: tuple[int, int] | None,
    orders: Iterable[FinalOrder],
) -> Books:
    """`level` is (available, reserved) read at the end; `orders` every order of the run."""
    mine = [o for o in orders if o.item == item]
    states: dict[str, int] = {}
    for order in mine:
        states[order.status] = states.get(order.status, 0) + 1
    confirmed_units = sum(o.quantity for o in mine if o.status == CONFIRMED)
    wrong = sum(1 for o in mine if o.status == REJECTED and o.rejection_reason != OUT_OF_STOCK)
    problems: list[str] = []
    available, reserved = level if level is not None else (None, None)
    if available is None or reserved is None:
        problems.append(f"the stock of {item!r} could not be read")
    else:
        if available < 0:
            problems.append(f"available is {available}: oversold")
        if available + confirmed_units != stock_set:
            problems.append(
                f"available {available} + confirmed units {confirmed_units} = "
                f"{available + confirmed_units}, not the {stock_set} set"
            )
        if reserved != reserved_at_start + confirmed_units:
            problems.append(
                f"reserved is {reserved}, not {reserved_at_start} + confirmed units "
                f"{confirmed_units}"
            )
    if wrong:
        problems.append(f"{wrong} REJECTED orders of {item!r} not rejected {OUT_OF_STOCK}")
    return Books(
        item,
        stock_set,
        reserved_at_start,
        available,
        reserved,
        confirmed_units,
        states,
        wrong,
        problems,
    )


@dataclass(frozen=True)
class CancelCheck:
    asked: int
    answers: dict[str, int]  # the last answer per cancelled order, by kind
    problems: list[str] = field(default_factory=list)
    failed_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {
            "asked": self.asked,
            "answers": dict(self.answers),
            "ok": self.ok,
            "problems": list(self.problems),
        }


def check_cancellations(final: Mapping[str, str], answers: Mapping[str, CancelKind]) -> CancelCheck:
    """`final`: order id → last status read; `answers`: order id → its cancel's last answer."""
    wrong: dict[str, list[str]] = {}

    def fail(reason: str, order_id: str) -> None:
        wrong.setdefault(reason, []).append(order_id)

    for order_id, kind in answers.items():
        status = final.get(order_id)
        if kind in _BREACHES:
            fail(f"cancel answered {kind.value}", order_id)
        elif kind in CANCEL_MAYBE_WRITTEN:
            fail("cancel answer never resolved", order_id)
        elif status in FINAL and kind in MUST_END and status not in MUST_END[kind]:
            fail(f"cancel answered {kind.value} but the order ended {status}", order_id)
    for order_id, status in final.items():
        if status == CANCELLED and order_id not in answers:
            fail("CANCELLED without being cancelled", order_id)
    counts: dict[str, int] = {}
    for kind in answers.values():
        counts[kind.value] = counts.get(kind.value, 0) + 1
    problems = [f"{len(ids)} orders: {reason}" for reason, ids in wrong.items()]
    failed = [order_id for ids in wrong.values() for order_id in ids]
    return CancelCheck(len(answers), counts, problems, failed)
