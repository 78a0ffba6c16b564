"""How one response to a POST of an order is judged: accepted, replayed, rightly rejected, a
contract answer that promises nothing yet (in flight, not written, unknown), or an error."""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from order_service.loadtest.bodies import Planned, PlannedRequest

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_DEFAULT_S = 1.0
RETRY_AFTER_CAP_S = 10.0
RETRY_FLOOR_S = 0.05


class Kind(StrEnum):
    ACCEPTED = "accepted"
    REPLAYED = "replayed"
    REJECTED = "rejected_invalid"  # an invalid body answered with a 4xx, as it should be
    # The contract's answers that are not errors (DESIGN.md §3): a replay whose original is
    # still being written (409 + Retry-After, asked again), a 503 that wrote nothing, and a 503
    # whose COMMIT's answer was lost (resolved by --verify with the same Idempotency-Key).
    REPLAY_IN_FLIGHT = "replay_in_flight"
    NOT_WRITTEN = "not_written"
    OUTCOME_UNKNOWN = "outcome_unknown"
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
OUTCOME_KINDS: tuple[Kind, ...] = (
    Kind.ACCEPTED,
    Kind.REPLAYED,
    Kind.REJECTED,
    Kind.REPLAY_IN_FLIGHT,
    Kind.NOT_WRITTEN,
    Kind.OUTCOME_UNKNOWN,
)
# Answers after which an order may exist although none was acknowledged: a request with a key
# is asked again by --verify (a 503 `not_written` and every 4xx promise nothing was written;
# UNEXPECTED covers a 2xx without an order id and a reply cut off while it was read).
MAYBE_WRITTEN: frozenset[Kind] = frozenset(
    {Kind.OUTCOME_UNKNOWN, Kind.TIMEOUT, Kind.SERVER_ERROR, Kind.CONNECTION, Kind.UNEXPECTED}
)


@dataclass(frozen=True, slots=True)
class Problem:
    """The parts of an RFC 9457 problem+json answer the judgement reads."""

    type: str | None = None
    outcome: str | None = None  # a 503 on a POST: "not_written" | "unknown"
    order_id: str | None = None  # with outcome "unknown": the order that may exist
    status_now: str | None = None  # a 409 invalid transition: the order's status
    retry_after_s: float | None = None  # from the Retry-After header

    @property
    def in_flight(self) -> bool:
        return self.type is not None and self.type.endswith("idempotency-key-in-flight")


@dataclass(frozen=True, slots=True)
class Outcome:
    planned: PlannedRequest
    kind: Kind
    status: int | None
    latency_s: float
    offset_s: float  # when the request was due, from the start of the run
    order_id: str | None = None  # accepted or replayed; with OUTCOME_UNKNOWN, the one named
    detail: str | None = None
    retry_after_s: float | None = None  # REPLAY_IN_FLIGHT: when to ask again
    sent: bool = True  # False: the connection was never made, so nothing can have been written

    @property
    def is_error(self) -> bool:
        return self.kind in ERROR_KINDS

    @property
    def maybe_written(self) -> bool:
        """An order may exist behind this answer: only asking again can tell."""
        return self.sent and self.kind in MAYBE_WRITTEN and self.planned.kind is Planned.NEW


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP-date), clamped to [0, cap]."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def retry_wait(retry_after_s: float | None, default_s: float = RETRY_AFTER_DEFAULT_S) -> float:
    """How long to wait before asking again: as told (Retry-After: 0 included), else the
    default; never less than a short floor, so a retry loop cannot spin."""
    return max(default_s if retry_after_s is None else retry_after_s, RETRY_FLOOR_S)


def _server_answer(status: int, problem: Problem | None) -> tuple[Kind, str | None]:
    if status == 503 and problem is not None and problem.outcome == "not_written":
        return Kind.NOT_WRITTEN, None
    if status == 503 and problem is not None and problem.outcome == "unknown":
        return Kind.OUTCOME_UNKNOWN, None
    return Kind.SERVER_ERROR, None


def classify(
    planned: PlannedRequest,
    status: int,
    order_id: str | None,
    replayed: bool,
    problem: Problem | None = None,
) -> tuple[Kind, str | None]:
    """The verdict for a response that arrived; transport failures never get here.

    `problem` is the parsed body of a problem+json answer (None for any other content type).
    """
    if 500 <= status <= 599:
        return _server_answer(status, problem)
    is_2xx = 200 <= status <= 299
    if planned.kind is Planned.INVALID:
        if 400 <= status <= 499:
            return Kind.REJECTED, None
        if is_2xx:
            return Kind.UNEXPECTED, "invalid body accepted"
        return Kind.UNEXPECTED, f"status {status}"
    if status == 409 and planned.kind is Planned.REPLAY:
        # Same key while the first request is still being written: a correct answer.
        if problem is not None and problem.in_flight and problem.retry_after_s is not None:
            return Kind.REPLAY_IN_FLIGHT, None
        return Kind.UNEXPECTED, "409 in flight without problem+json and Retry-After"
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
