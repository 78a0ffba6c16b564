"""Which broker error holds the relay or the worker: counted, and said by /readyz.

aiokafka retries most broker errors inside the client — with idempotence on, a produce that
gets NOT_ENOUGH_REPLICAS is retried until it succeeds, and a group whose coordinator moved is
looked up again and again — and the only trace of those retries is its log records. So the
records of the `aiokafka` loggers are classified here (as are the failures that do reach our
code: a batch whose delivery failed), each counted in `kafka_client_errors_total{error}`.

An error of a kind that stops work (not enough in-sync replicas, no partition leader, the group
coordinator moving) *holds* the process once it has kept coming for `PERSIST_S` (a lone one,
like the coordinator lookups of a group's very first join, is only counted), until the process
makes progress again (the relay: a batch acknowledged; the worker: partitions assigned or
offsets committed) or `HOLD_S` passes without another one; while held, its readiness is 503
with the kind as the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from aiokafka.errors import (
    CommitFailedError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    IllegalGenerationError,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    NodeNotReadyError,
    NotCoordinatorError,
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    RebalanceInProgressError,
    RequestTimedOutError,
    UnknownMemberIdError,
    UnknownProducerId,
)

from order_service.observability.metrics import KAFKA_CLIENT_ERRORS

NOT_ENOUGH_REPLICAS = "not_enough_replicas"
NO_LEADER = "no_leader"
COORDINATOR_MOVING = "coordinator_moving"
# The kinds that stop work until the cluster heals; the others are counted only.
HOLDING = frozenset({NOT_ENOUGH_REPLICAS, NO_LEADER, COORDINATOR_MOVING})
HOLD_S = 5.0
PERSIST_S = 1.0
GAP_S = 2.0  # a longer pause between two errors of a kind starts a new run of them

# Every kind here is one of metrics.KAFKA_ERROR_KINDS (the label values exposed at 0).
_KIND_OF: tuple[tuple[type[BaseException], str], ...] = (
    (NotEnoughReplicasError, NOT_ENOUGH_REPLICAS),
    (NotEnoughReplicasAfterAppendError, NOT_ENOUGH_REPLICAS),
    (NotLeaderForPartitionError, NO_LEADER),
    (LeaderNotAvailableError, NO_LEADER),
    (NotCoordinatorError, COORDINATOR_MOVING),
    (CoordinatorNotAvailableError, COORDINATOR_MOVING),
    (CoordinatorLoadInProgressError, COORDINATOR_MOVING),
    (KafkaConnectionError, "broker_unreachable"),
    (NodeNotReadyError, "broker_unreachable"),
    (RequestTimedOutError, "request_timeout"),
    (KafkaTimeoutError, "request_timeout"),
    (OutOfOrderSequenceNumber, "producer_id"),
    (UnknownProducerId, "producer_id"),
    (InvalidProducerEpoch, "producer_id"),
    (InvalidProducerIdMapping, "producer_id"),
    (ProducerFenced, "producer_id"),
    (RebalanceInProgressError, "rebalance"),
    (IllegalGenerationError, "rebalance"),
    (UnknownMemberIdError, "rebalance"),
    (CommitFailedError, "rebalance"),
)
# aiokafka's messages about the group coordinator carry no error class (or a connection error
# that is the coordinator's broker going away): the message itself says what happened.
_COORDINATOR_MESSAGES = (
    "marking coordinator dead",
    "marking the coordinator dead",
    "coordinator (node %s) is either not started or not valid",
    "group coordinator request failed",
    "heartbeat session expired",
)


def kind_of(error: BaseException | type[BaseException]) -> str | None:
    """The label of a Kafka error (an instance or a class); None for anything else."""
    cls = error if isinstance(error, type) else type(error)
    if not issubclass(cls, KafkaError):
        return None
    for known, kind in _KIND_OF:
        if issubclass(cls, known):
            return kind
    return "other"


def kind_of_record(record: logging.LogRecord) -> str | None:
    """The broker error an aiokafka log record reports, if it reports one."""
    template = str(record.msg).lower()
    if any(text in template for text in _COORDINATOR_MESSAGES):
        return COORDINATOR_MOVING
    for arg in _arguments(record):
        if isinstance(arg, BaseException | type):
            kind = kind_of(arg)
            if kind is not None:
                return kind
    return None


def _arguments(record: logging.LogRecord) -> Iterable[object]:
    args = record.args
    if isinstance(args, dict):
        yield from args.values()
    elif args:
        yield from args
    if record.exc_info and record.exc_info[1] is not None:
        yield record.exc_info[1]


class BrokerErrors:
    """Errors seen by this process's Kafka clients, and whether one holds it now."""

    def __init__(
        self,
        hold_s: float = HOLD_S,
        persist_s: float = PERSIST_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._hold_s = hold_s
        self._persist_s = persist_s
        self._clock = clock
        self._runs: dict[str, tuple[float, float]] = {}  # kind: (first, last) of its run
        self._lock = threading.Lock()  # log records may come from any thread

    def seen(self, kind: str) -> None:
        KAFKA_CLIENT_ERRORS.labels(error=kind).inc()
        if kind not in HOLDING:
            return
        now = self._clock()
        with self._lock:
            first, last = self._runs.get(kind, (now, now))
            self._runs[kind] = (first if now - last <= GAP_S else now, now)

    def seen_error(self, error: BaseException) -> None:
        kind = kind_of(error)
        if kind is not None:
            self.seen(kind)

    def progress(self) -> None:
        """Work went through: nothing holds the process any more."""
        with self._lock:
            self._runs.clear()

    def holding(self) -> str | None:
        """The holding kind seen last, if its run has lasted `persist_s` and is not over."""
        now = self._clock()
        with self._lock:
            held = [
                (last, kind)
                for kind, (first, last) in self._runs.items()
                if now - last <= self._hold_s and last - first >= self._persist_s
            ]
        return max(held)[1] if held else None


class _AiokafkaRecords(logging.Handler):
    def __init__(self, errors: BrokerErrors) -> None:
        super().__init__(level=logging.WARNING)
        self._errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        kind = kind_of_record(record)
        if kind is not None:
            self._errors.seen(kind)


# One per process: the relay or the worker (their clients share the `aiokafka` loggers).
BROKER_ERRORS = BrokerErrors()
_handler = _AiokafkaRecords(BROKER_ERRORS)


def watch_aiokafka() -> None:
    """Classify aiokafka's log records from now on (idempotent)."""
    logger = logging.getLogger("aiokafka")
    if _handler not in logger.handlers:
        logger.addHandler(_handler)
