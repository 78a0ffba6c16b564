"""Collects outcomes as they arrive: counters, latencies, accepted ids, the replay pool, the
answers still to be resolved, and the cancellations with what each one answered."""

from __future__ import annotations

from array import array
from collections import Counter, deque
from dataclasses import dataclass

from order_service.loadtest.bodies import Planned, PlannedRequest, Replayable
from order_service.loadtest.cancels import CANCEL_ERRORS, CancelKind, CancelOutcome
from order_service.loadtest.outcome import ERROR_KINDS, Kind, Outcome
from order_service.loadtest.stats import LatencyHistogram

_REPLAY_POOL = 1_000


@dataclass(frozen=True)
class Snapshot:
    completed: int
    errors: int
    p99_s: float
    cancels: int


@dataclass(frozen=True, slots=True)
class Unresolved:
    """A new order whose answer was lost: it may exist. `order_id` when the 503 named it."""

    planned: PlannedRequest
    order_id: str | None


class Recorder:
    def __init__(self) -> None:
        self.kinds: Counter[Kind] = Counter()
        self.statuses: Counter[int] = Counter()
        self.histogram = LatencyHistogram()
        # Two flat float arrays (8 bytes a sample) keep a million samples cheap for the plot.
        self.offsets = array("d")
        self.latencies = array("d")
        self.accepted_ids: list[str] = []
        self.replayable: deque[Replayable] = deque(maxlen=_REPLAY_POOL)
        self.details: Counter[str] = Counter()
        self.unresolved: list[Unresolved] = []
        # Cancellations: every answer counted; per order, the last one (a retry's wins).
        self.cancel_kinds: Counter[CancelKind] = Counter()
        self.cancel_statuses: Counter[int] = Counter()
        self.cancel_details: Counter[str] = Counter()
        self.cancel_latencies = array("d")
        self.cancels: dict[str, CancelOutcome] = {}
        self.cancels_abandoned = 0  # still waiting or in flight when an interrupt ended the run

    def record(self, outcome: Outcome) -> None:
        self.kinds[outcome.kind] += 1
        if outcome.detail:
            self.details[outcome.detail] += 1
        if outcome.kind is Kind.DROPPED:
            return
        if outcome.status is not None:
            self.statuses[outcome.status] += 1
        self.histogram.record(outcome.latency_s)
        self.offsets.append(outcome.offset_s)
        self.latencies.append(outcome.latency_s)
        if outcome.maybe_written:
            self.unresolved.append(Unresolved(outcome.planned, outcome.order_id))
        if outcome.kind is Kind.ACCEPTED and outcome.order_id is not None:
            self.accepted_ids.append(outcome.order_id)
            key = outcome.planned.idempotency_key
            if key is not None and outcome.planned.kind is Planned.NEW:
                self.replayable.append(Replayable(key, outcome.planned.body, outcome.order_id))

    def record_cancel(self, outcome: CancelOutcome) -> None:
        self.cancel_kinds[outcome.kind] += 1
        if outcome.status is not None:
            self.cancel_statuses[outcome.status] += 1
        if outcome.detail:
            self.cancel_details[outcome.detail] += 1
        self.cancel_latencies.append(outcome.latency_s)
        self.cancels[outcome.order_id] = outcome

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def errors(self) -> int:
        return sum(self.kinds[kind] for kind in ERROR_KINDS)

    @property
    def cancel_errors(self) -> int:
        return sum(self.cancel_kinds[kind] for kind in CANCEL_ERRORS)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.completed,
            self.errors,
            self.histogram.percentile(99),
            len(self.cancel_latencies),
        )
