"""`--verify`: resolve the answers lost on the way, read every order of the run back through
the API until each is settled (CONFIRMED, REJECTED or CANCELLED), then check what the run
promised: cancellations held, no unmanaged item rejected, and the managed item's books.

The drain time runs from the end of the load until the last order was seen settled. An order
is lost only when it never appears (404 until the deadline); one still PENDING then is
unsettled. Either fails the run, as does any check.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import aiohttp
import orjson

from order_service.loadtest.checks import (
    CONFIRMED,
    FINAL,
    REJECTED,
    Books,
    CancelCheck,
    FinalOrder,
    check_books,
    check_cancellations,
)
from order_service.loadtest.client import get_stock
from order_service.loadtest.options import LoadOptions
from order_service.loadtest.recorder import Recorder
from order_service.loadtest.resolve import Resolution, resolve_cancels, resolve_orders
from order_service.loadtest.stock import ManagedStock

MISSING = "MISSING"  # 404: the API does not know an order it acknowledged
UNREADABLE = "UNREADABLE"  # transport error or a non-200/404 answer on the last look
_SAMPLE = 10


@dataclass(frozen=True)
class VerifyResult:
    expected: int
    states: dict[str, int]
    drain_s: float | None  # None when not every order was settled before the deadline
    timed_out: bool
    failed_ids: list[str] = field(default_factory=list)  # a sample, for the report
    problems: list[str] = field(default_factory=list)  # every check that failed, in words
    resolution: Resolution | None = None
    cancellations: CancelCheck | None = None
    books: Books | None = None

    @property
    def confirmed(self) -> int:
        return self.states.get(CONFIRMED, 0)

    @property
    def settled(self) -> int:
        return sum(n for state, n in self.states.items() if state in FINAL)

    @property
    def lost(self) -> int:
        return self.states.get(MISSING, 0)

    @property
    def ok(self) -> bool:
        return self.settled == self.expected and not self.problems

    def as_dict(self) -> dict[str, object]:
        return {
            "expected": self.expected,
            "confirmed": self.confirmed,
            "settled": self.settled,
            "lost": self.lost,
            "unsettled": self.expected - self.settled - self.lost,
            "states": dict(self.states),
            "drain_s": None if self.drain_s is None else round(self.drain_s, 3),
            "timed_out": self.timed_out,
            "ok": self.ok,
            "problems": list(self.problems),
            "failed_ids_sample": self.failed_ids,
            "resolved": self.resolution.as_dict() if self.resolution else None,
            "cancellations": self.cancellations.as_dict() if self.cancellations else None,
            "books": self.books.as_dict() if self.books else None,
        }


def _final_order(order_id: str, document: object) -> tuple[str, FinalOrder | None]:
    if not isinstance(document, dict) or not document.get("status"):
        return UNREADABLE, None
    status = str(document["status"])
    quantity = document.get("quantity")
    reason = document.get("rejection_reason")
    order = FinalOrder(
        order_id,
        status,
        str(document.get("item", "")),
        quantity if isinstance(quantity, int) else 0,
        str(reason) if reason is not None else None,
    )
    return status, order


async def _read(
    session: aiohttp.ClientSession, url: str, order_id: str
) -> tuple[str, FinalOrder | None]:
    try:
        async with session.get(url) as resp:
            if resp.status == 404:
                return MISSING, None
            if resp.status != 200:
                return UNREADABLE, None
            document = orjson.loads(await resp.read())
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return UNREADABLE, None
    return _final_order(order_id, document)


@dataclass
class _Poll:
    last: dict[str, str]
    orders: dict[str, FinalOrder]
    drain_s: float | None
    timed_out: bool


async def _poll_until_settled(
    session: aiohttp.ClientSession,
    options: LoadOptions,
    order_ids: Sequence[str],
    *,
    load_ended_at: float,
    deadline: float,
    poll_interval_s: float,
    stop: asyncio.Event | None,
) -> _Poll:
    loop = asyncio.get_running_loop()
    poll = _Poll({}, {}, 0.0 if not order_ids else None, False)
    open_ids = list(dict.fromkeys(order_ids))
    gate = asyncio.Semaphore(options.connections)

    async def look(order_id: str) -> None:
        async with gate:
            state, order = await _read(session, options.order_url(order_id), order_id)
        poll.last[order_id] = state
        if order is not None:
            poll.orders[order_id] = order

    while open_ids:
        await asyncio.gather(*(look(order_id) for order_id in open_ids))
        open_ids = [order_id for order_id in open_ids if poll.last[order_id] not in FINAL]
        if not open_ids:
            poll.drain_s = loop.time() - load_ended_at
            break
        if loop.time() >= deadline or (stop is not None and stop.is_set()):
            poll.timed_out = True
            break
        await asyncio.sleep(poll_interval_s)
    return poll


async def verify_run(
    session: aiohttp.ClientSession,
    options: LoadOptions,
    recorder: Recorder,
    managed: ManagedStock | None = None,
    *,
    load_ended_at: float,
    timeout_s: float,
    poll_interval_s: float = 0.25,
    stop: asyncio.Event | None = None,
) -> VerifyResult:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    resolution, created = await resolve_orders(
        session, options, recorder.unresolved, deadline=deadline, stop=stop
    )
    answers, cancels_asked, cancels_unresolved = await resolve_cancels(
        session, options, recorder.cancels, deadline=deadline, stop=stop
    )
    resolution = replace(
        resolution, cancels_asked=cancels_asked, cancels_unresolved=cancels_unresolved
    )
    poll = await _poll_until_settled(
        session,
        options,
        [*recorder.accepted_ids, *created],
        load_ended_at=load_ended_at,
        deadline=deadline,
        poll_interval_s=poll_interval_s,
        stop=stop,
    )
    problems: list[str] = []
    failed = [order_id for order_id, state in poll.last.items() if state not in FINAL]
    if resolution.unresolved:
        problems.append(f"{resolution.unresolved} orders whose answer was lost never resolved")
    cancellations = None
    if answers or options.cancel_ratio > 0:
        cancellations = check_cancellations(poll.last, answers)
        problems += cancellations.problems
        failed += cancellations.failed_ids
    managed_item = managed.item if managed is not None else None
    wrongly_rejected = [
        o.order_id for o in poll.orders.values() if o.status == REJECTED and o.item != managed_item
    ]
    if wrongly_rejected:
        problems.append(f"{len(wrongly_rejected)} orders of items without stock REJECTED")
        failed += wrongly_rejected
    books = None
    if managed is not None:
        level = await get_stock(session, options, managed.item)
        books = check_books(
            managed.item,
            managed.stock_set,
            managed.reserved_at_start,
            (level.available, level.reserved) if level is not None else None,
            poll.orders.values(),
        )
        problems += books.problems
    states = Counter(poll.last.values())
    return VerifyResult(
        len(poll.last),
        dict(states),
        poll.drain_s,
        poll.timed_out,
        list(dict.fromkeys(failed))[:_SAMPLE],
        problems,
        resolution,
        cancellations,
        books,
    )
