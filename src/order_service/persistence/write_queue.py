"""The group commit's queue: pending writes with their deadlines and what became of them.

A write is QUEUED, then TAKEN into a batch (still not sent while the batch waits for a
connection), then SENT (its statement went to the database: only the answer tells the
outcome), or ABANDONED (answered NotWritten: never to be sent). The queue is bounded by the
number of QUEUED entries; abandoned ones are dropped lazily, and compacted away when many.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from opentelemetry import trace

from order_service.persistence.order_batch import StoredResponse, WriteRequest


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """Either this request's order was committed, or an earlier one owns its key."""

    created: bool
    earlier: StoredResponse | None = None


class State(Enum):
    QUEUED = "queued"
    TAKEN = "taken"
    SENT = "sent"
    ABANDONED = "abandoned"


def _new_future() -> asyncio.Future[WriteOutcome]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False, slots=True)
class Pending:
    request: WriteRequest
    deadline: float
    span: trace.SpanContext
    future: asyncio.Future[WriteOutcome] = field(default_factory=_new_future)
    state: State = State.QUEUED

    def settle(self, outcome: WriteOutcome | BaseException) -> None:
        if self.future.done():
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


class WriteQueue:
    def __init__(self, max_queued: int) -> None:
        self.max_queued = max_queued
        self._entries: deque[Pending] = deque()
        self.queued = 0  # entries still QUEUED

    @property
    def full(self) -> bool:
        return self.queued >= self.max_queued

    def append(self, entry: Pending) -> None:
        self._entries.append(entry)
        self.queued += 1
        if len(self._entries) > 2 * self.max_queued:  # many abandoned entries: compact
            self._entries = deque(e for e in self._entries if e.state is State.QUEUED)

    def abandon(self, entry: Pending) -> None:
        """The caller was answered NotWritten: the entry must never be sent."""
        if entry.state is State.QUEUED:
            self.queued -= 1
        entry.state = State.ABANDONED

    def take(self, limit: int) -> list[Pending]:
        """Up to `limit` queued entries, oldest first, now TAKEN."""
        batch: list[Pending] = []
        while self._entries and len(batch) < limit:
            entry = self._entries.popleft()
            if entry.state is not State.QUEUED:
                continue
            self.queued -= 1
            entry.state = State.TAKEN
            batch.append(entry)
        return batch


def unclaimed(future: asyncio.Future[WriteOutcome]) -> None:
    """Settled after its caller stopped waiting: read it, so asyncio does not log it."""
    if not future.cancelled():
        future.exception()
