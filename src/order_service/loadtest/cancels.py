"""How one answer to `POST /orders/{id}/cancel` is judged, for an order this run created.

The contract (DESIGN.md §3): PENDING | CONFIRMED → CANCELLED is 200 with the order, now
CANCELLED; a REJECTED order is 409; 404 only for an order that does not exist or is not the
caller's — never for one the run created; the same key while the first cancel is still being
written is 409 + Retry-After; a 503 says `not_written` or `unknown`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from order_service.loadtest.outcome import Problem


class CancelKind(StrEnum):
    CANCELLED = "cancelled"  # 200, the order now CANCELLED: it must end CANCELLED
    REFUSED_REJECTED = "refused_rejected"  # 409, the order is REJECTED: it must end REJECTED
    IN_FLIGHT = "in_flight"  # 409 for our own key still being written: asked again
    NOT_WRITTEN = "not_written"  # 503 not_written: nothing changed, the order is not cancelled
    UNKNOWN = "unknown"  # 503 unknown: --verify asks again with the same key
    NOT_FOUND = "404"  # an order we created: a contract breach
    CONFLICT = "409_not_rejected"  # 409 for an order that is not REJECTED: a breach
    CLIENT_ERROR = "4xx"
    SERVER_ERROR = "5xx"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    UNEXPECTED = "unexpected"  # a 200 that is not the order CANCELLED, a 1xx/3xx


CANCEL_OUTCOMES: tuple[CancelKind, ...] = (
    CancelKind.CANCELLED,
    CancelKind.REFUSED_REJECTED,
    CancelKind.IN_FLIGHT,
    CancelKind.NOT_WRITTEN,
    CancelKind.UNKNOWN,
)
CANCEL_ERRORS: tuple[CancelKind, ...] = (
    CancelKind.NOT_FOUND,
    CancelKind.CONFLICT,
    CancelKind.CLIENT_ERROR,
    CancelKind.SERVER_ERROR,
    CancelKind.TIMEOUT,
    CancelKind.CONNECTION,
    CancelKind.UNEXPECTED,
)
# After these the cancellation may have been written: --verify asks again with the key.
CANCEL_MAYBE_WRITTEN: frozenset[CancelKind] = frozenset(
    {
        CancelKind.UNKNOWN,
        CancelKind.IN_FLIGHT,
        CancelKind.SERVER_ERROR,
        CancelKind.TIMEOUT,
        CancelKind.CONNECTION,
    }
)
# Definite answers: what the order's final status must then be.
MUST_END: dict[CancelKind, frozenset[str]] = {
    CancelKind.CANCELLED: frozenset({"CANCELLED"}),
    CancelKind.REFUSED_REJECTED: frozenset({"REJECTED"}),
    CancelKind.NOT_WRITTEN: frozenset({"CONFIRMED", "REJECTED"}),
}


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    order_id: str
    key: str
    kind: CancelKind
    status: int | None
    latency_s: float
    detail: str | None = None
    retry_after_s: float | None = None

    @property
    def is_error(self) -> bool:
        return self.kind in CANCEL_ERRORS


def judge_cancel(
    order_id: str,
    status: int,
    document: dict[str, object] | None,
    problem: Problem | None,
) -> tuple[CancelKind, str | None]:
    """The verdict on an answer that arrived; `document` is a 2xx's JSON body."""
    if status == 200:
        if document is None:
            return CancelKind.UNEXPECTED, "200 without a JSON order"
        if str(document.get("id")) != order_id:
            return CancelKind.UNEXPECTED, "200 for another order"
        if document.get("status") != "CANCELLED":
            return CancelKind.UNEXPECTED, f"200 but the order is {document.get('status')}"
        return CancelKind.CANCELLED, None
    if status == 409:
        if problem is not None and problem.in_flight and problem.retry_after_s is not None:
            return CancelKind.IN_FLIGHT, None
        if problem is not None and problem.status_now == "REJECTED":
            return CancelKind.REFUSED_REJECTED, None
        now = problem.status_now if problem is not None else None
        return CancelKind.CONFLICT, f"cancel 409 while the order is {now or 'not said'}"
    if status == 404:
        return CancelKind.NOT_FOUND, "cancel 404 for an order the run created"
    if status == 503 and problem is not None and problem.outcome == "not_written":
        return CancelKind.NOT_WRITTEN, None
    if status == 503 and problem is not None and problem.outcome == "unknown":
        return CancelKind.UNKNOWN, None
    if 500 <= status <= 599:
        return CancelKind.SERVER_ERROR, None
    if 400 <= status <= 499:
        return CancelKind.CLIENT_ERROR, None
    return CancelKind.UNEXPECTED, f"cancel status {status}"
