"""How the load test judges the answers to `POST /orders/{id}/cancel` and reads problem+json."""

from __future__ import annotations

import orjson
import pytest

from order_service.loadtest.cancels import (
    CANCEL_ERRORS,
    CANCEL_OUTCOMES,
    CancelKind,
    judge_cancel,
)
from order_service.loadtest.client import problem_from
from order_service.loadtest.outcome import Problem

ORDER = "0190-order"
IN_FLIGHT = Problem(type="/problems/idempotency-key-in-flight", retry_after_s=1.0)


def rejected_now(status_now: str) -> Problem:
    return Problem(type="/problems/invalid-transition", status_now=status_now)


@pytest.mark.parametrize(
    ("status", "document", "problem", "kind"),
    [
        (200, {"id": ORDER, "status": "CANCELLED"}, None, CancelKind.CANCELLED),
        (200, {"id": ORDER, "status": "CONFIRMED"}, None, CancelKind.UNEXPECTED),
        (200, {"id": "another", "status": "CANCELLED"}, None, CancelKind.UNEXPECTED),
        (200, None, None, CancelKind.UNEXPECTED),
        (409, None, rejected_now("REJECTED"), CancelKind.REFUSED_REJECTED),
        (409, None, rejected_now("CONFIRMED"), CancelKind.CONFLICT),
        (409, None, None, CancelKind.CONFLICT),
        (409, None, IN_FLIGHT, CancelKind.IN_FLIGHT),
        (404, None, Problem(), CancelKind.NOT_FOUND),
        (503, None, Problem(outcome="not_written"), CancelKind.NOT_WRITTEN),
        (503, None, Problem(outcome="unknown", order_id=ORDER), CancelKind.UNKNOWN),
        (503, None, None, CancelKind.SERVER_ERROR),
        (401, None, Problem(), CancelKind.CLIENT_ERROR),
        (302, None, None, CancelKind.UNEXPECTED),
    ],
)
def test_a_cancel_is_judged_against_the_contract(
    status: int, document: dict[str, object] | None, problem: Problem | None, kind: CancelKind
) -> None:
    """Catches a 409 accepted for an order that is not REJECTED, a 404 for an order the run
    created counted as normal, and a 200 that did not cancel taken at its word."""
    assert judge_cancel(ORDER, status, document, problem)[0] is kind


def test_only_the_contracts_breaches_are_errors() -> None:
    """Catches a cancel refused because the order is REJECTED, one still in flight, or a 503
    that says what became of it, reported as an error of the service."""
    answers = set(CANCEL_OUTCOMES)
    assert answers == {
        CancelKind.CANCELLED,
        CancelKind.REFUSED_REJECTED,
        CancelKind.IN_FLIGHT,
        CancelKind.NOT_WRITTEN,
        CancelKind.UNKNOWN,
    }
    assert not answers & set(CANCEL_ERRORS)
    assert answers | set(CANCEL_ERRORS) == set(CancelKind)


def test_problem_members_are_read_only_from_problem_json() -> None:
    """Catches a plain JSON body (say a proxy's) read as the api's `outcome`, and the
    Retry-After header or `status_now` member dropped on the way to the judgement."""
    body = orjson.dumps(
        {
            "type": "/problems/dependency-unavailable",
            "status": 503,
            "outcome": "unknown",
            "order_id": ORDER,
        }
    )
    problem = problem_from("application/problem+json", body, "2")
    assert problem == Problem("/problems/dependency-unavailable", "unknown", ORDER, None, 2.0)
    assert problem_from("application/json", body, "2") is None
    refusal = problem_from(
        "application/problem+json", orjson.dumps({"status_now": "REJECTED"}), None
    )
    assert refusal is not None and refusal.status_now == "REJECTED"
    assert problem_from("application/problem+json", b"not json", None) == Problem()
