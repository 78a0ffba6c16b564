"""What `--verify` concludes from final states: the managed item's books and the
cancellations (pure arithmetic, no I/O)."""

from __future__ import annotations

from order_service.loadtest.cancels import CancelKind
from order_service.loadtest.checks import FinalOrder, check_books, check_cancellations

ITEM = "lamp"


def orders() -> list[FinalOrder]:
    return [
        FinalOrder("a", "CONFIRMED", ITEM, 4),
        FinalOrder("b", "CONFIRMED", ITEM, 3),
        FinalOrder("c", "REJECTED", ITEM, 9, "out_of_stock"),
        FinalOrder("d", "CANCELLED", ITEM, 5),  # confirmed, then cancelled: its units came back
        FinalOrder("e", "CONFIRMED", "blue chair", 7),  # another item: not in the books
    ]


def test_books_balance_when_available_plus_confirmed_units_is_the_stock_set() -> None:
    """Catches the units of REJECTED or CANCELLED orders, or of another item, counted as
    held: 10 set, 7 held by the two confirmed orders, 3 left."""
    books = check_books(ITEM, 10, 0, (3, 7), orders())
    assert books.ok, books.problems
    assert books.confirmed_units == 7
    assert books.states == {"CONFIRMED": 2, "REJECTED": 1, "CANCELLED": 1}


def test_a_unit_made_up_or_lost_unbalances_the_books() -> None:
    """Catches a check that compares only `reserved` (here right) and misses `available`."""
    books = check_books(ITEM, 10, 0, (4, 7), orders())
    assert not books.ok
    assert books.problems == ["available 4 + confirmed units 7 = 11, not the 10 set"]


def test_reserved_must_be_the_confirmed_units_over_what_was_reserved_before() -> None:
    """Catches reserved compared without the reservations the item held before the run
    (PUT /stock keeps them), and a reservation a cancellation failed to give back."""
    assert check_books(ITEM, 10, 5, (3, 12), orders()).ok
    kept = check_books(ITEM, 10, 0, (3, 12), orders())
    assert kept.problems == ["reserved is 12, not 0 + confirmed units 7"]


def test_oversold_stock_fails_even_when_the_sum_balances() -> None:
    """Catches `available + held == set` accepted with available below zero (an oversell
    that a matching phantom order would hide)."""
    phantom = [*orders(), FinalOrder("f", "CONFIRMED", ITEM, 5)]
    books = check_books(ITEM, 10, 0, (-2, 12), phantom)
    assert books.problems == ["available is -2: oversold"]


def test_a_rejection_for_another_reason_and_an_unreadable_stock_fail() -> None:
    """Catches REJECTED orders of the item taken as fine whatever their reason, and a stock
    that could not be read passing as balanced."""
    odd = [*orders(), FinalOrder("g", "REJECTED", ITEM, 1, None)]
    books = check_books(ITEM, 10, 0, (3, 7), odd)
    assert books.wrong_rejections == 1 and not books.ok
    unread = check_books(ITEM, 10, 0, None, orders())
    assert unread.problems == ["the stock of 'lamp' could not be read"]
    assert unread.as_dict()["available"] is None


FINAL = {"a": "CANCELLED", "b": "REJECTED", "c": "CONFIRMED", "d": "CONFIRMED"}


def test_cancellations_hold_when_each_answer_matches_the_final_status() -> None:
    """Catches a 409 for a REJECTED order or a refused (not_written) cancel counted as a
    failure, and orders never cancelled that stay uncancelled flagged."""
    answers = {
        "a": CancelKind.CANCELLED,
        "b": CancelKind.REFUSED_REJECTED,
        "c": CancelKind.NOT_WRITTEN,
    }
    check = check_cancellations(FINAL, answers)
    assert check.ok, check.problems
    assert check.answers == {"cancelled": 1, "refused_rejected": 1, "not_written": 1}


def test_a_cancel_that_did_not_hold_fails() -> None:
    """Catches a 200 whose order ended elsewhere than CANCELLED, a 409 for an order that
    ended CONFIRMED, a `not_written` cancel that was written after all, and an order no one
    cancelled that ended CANCELLED."""
    final = {**FINAL, "e": "CANCELLED", "f": "CANCELLED"}
    answers = {
        "c": CancelKind.CANCELLED,
        "d": CancelKind.REFUSED_REJECTED,
        "f": CancelKind.NOT_WRITTEN,
    }
    check = check_cancellations(final, answers)
    assert sorted(check.failed_ids) == ["a", "c", "d", "e", "f"]
    assert "1 orders: cancel answered cancelled but the order ended CONFIRMED" in check.problems
    assert "2 orders: CANCELLED without being cancelled" in check.problems


def test_breaches_and_answers_never_resolved_fail_whatever_the_final_status() -> None:
    """Catches a 404 for an order the run created, and a cancel whose answer stayed lost,
    passing because the order happens to look right at the end."""
    answers = {
        "a": CancelKind.NOT_FOUND,
        "b": CancelKind.UNKNOWN,
        "c": CancelKind.CONFLICT,
        "d": CancelKind.TIMEOUT,
    }
    check = check_cancellations({**FINAL, "a": "CONFIRMED"}, answers)
    assert sorted(check.failed_ids) == ["a", "b", "c", "d"]
    assert "2 orders: cancel answer never resolved" in check.problems
