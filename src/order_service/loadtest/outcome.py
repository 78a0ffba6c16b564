"""How one response is judged: accepted, replayed, rightly rejected, or an error of some kind."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from order_service.loadtest.bodies import Planned, PlannedRequest


class Kind(StrEnum):
    ACCEPTED = "accepted"
    REPLAYED = "replayed"
    REJECTED = "rejected_invalid"  # an invalid body answered with a 4xx, as it should be
    DROPPED = "dropped"  # not sent: the client was already at its in-flight cap
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    CLIENT_ERROR = "4xx"
    SERVER_ERROR = "5xx"
    UNEXPECTED = "unexpected"  # a 2xx that breaks the contract, a 1xx/3xx, an unreadable body


ERROR_KINDS: tuple[Kind, ...] = (
    Kind.TIMEOUT,
    Kind.CONNECTION,
    Kind.CLIENT_ERROR,
    Kind.SERVER_ERROR,
    Kind.UNEXPECTED,
    Kind.DROPPED,
)


@dataclass(frozen=True, slots=True)
class Outcome:
    planned: PlannedRequest
    kind: Kind
    status: int | None
    latency_s: float
    offset_s: float  # when the request was due, from the start of the run
    order_id: str | None = None
    detail: str | None = None

    @property
    def is_error(self) -> bool:
        return self.kind in ERROR_KINDS


def classify(
    planned: PlannedRequest, status: int, order_id: str | None, replayed: bool
) -> tuple[Kind, str | None]:
    """The verdict for a response that arrived; transport failures never get here."""
    if 500 <= status <= 599:
        return Kind.SERVER_ERROR, None
    is_2xx = 200 <= status <= 299
    if planned.kind is Planned.INVALID:
        if 400 <= status <= 499:
            return Kind.REJECTED, None
        if is_2xx:
            return Kind.UNEXPECTED, "invalid body accepted"
        return Kind.UNEXPECTED, f"status {status}"
    if 400 <= status <= 499:
        return Kind.CLIENT_ERROR, None
    if not is_2xx:
        return Kind.UNEXPECTED, f"status {status}"
    if order_id is None:
        return Kind.UNEXPECTED, "2xx without an order id"
    if planned.kind is Planned.REPLAY:
        if order_id != planned.replay_of:
            return Kind.UNEXPECTED, "replay created a second order"
        if not replayed:
            return Kind.UNEXPECTED, "replay without Idempotency-Replayed: true"
        return Kind.REPLAYED, None
    return Kind.ACCEPTED, None
