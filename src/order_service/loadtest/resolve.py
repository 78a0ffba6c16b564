"""`--verify`, first step: settle every answer that was lost on the way, as the contract says a
client must (DESIGN.md §3, G1) — ask again with the same Idempotency-Key until the answer is
definite; without a key, a 503 `unknown` names the order, and `GET /orders/{id}` tells.

A retry with the key either replays what the first request committed or, when it committed
nothing, does the work itself: either way the order then exists and joins the orders checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import aiohttp

from order_service.loadtest.bodies import Planned
from order_service.loadtest.cancels import CANCEL_MAYBE_WRITTEN, CancelKind, CancelOutcome
from order_service.loadtest.client import post_cancel, post_order
from order_service.loadtest.options import LoadOptions
from order_service.loadtest.outcome import Kind, retry_wait
from order_service.loadtest.recorder import Unresolved

_PAUSE_S = 0.5  # between attempts that got no definite answer (Retry-After wins when given)


@dataclass(frozen=True)
class Resolution:
    asked: int  # new orders whose answer was lost
    created: int  # ... that exist: the first request committed, or the retry did
    not_created: int  # ... that definitely do not (a 4xx to the retry, a 404 to the GET)
    unresolved: int  # still no definite answer at the deadline: a failure
    unresolvable: int  # no key and no order id to ask with (counted, not a failure)
    cancels_asked: int  # cancels whose answer was lost, asked again with their key
    cancels_unresolved: int

    def as_dict(self) -> dict[str, int]:
        return {
            "asked": self.asked,
            "created": self.created,
            "not_created": self.not_created,
            "unresolved": self.unresolved,
            "unresolvable": self.unresolvable,
            "cancels_asked": self.cancels_asked,
            "cancels_unresolved": self.cancels_unresolved,
        }


Attempt = Callable[[], Awaitable[tuple[bool, str | None, float]]]  # (definite, order id, wait)


async def _until_definite(
    attempt: Attempt, deadline: float, stop: asyncio.Event | None
) -> tuple[bool, str | None]:
    loop = asyncio.get_running_loop()
    while True:
        # Checked before each attempt too: entries queued behind the connection gate must not
        # each spend a full request timeout after the deadline against a blackholed api.
        if loop.time() >= deadline or (stop is not None and stop.is_set()):
            return False, None
        definite, order_id, wait_s = await attempt()
        if definite:
            return True, order_id
        if loop.time() + wait_s >= deadline or (stop is not None and stop.is_set()):
            return False, None
        await asyncio.sleep(wait_s)


async def _read_exists(
    session: aiohttp.ClientSession, options: LoadOptions, order_id: str
) -> tuple[bool, str | None, float]:
    try:
        async with session.get(options.order_url(order_id)) as resp:
            status = resp.status
    except (TimeoutError, aiohttp.ClientError):
        return False, None, _PAUSE_S
    if status == 200:
        return True, order_id, 0.0
    if status == 404:
        return True, None, 0.0
    return False, None, _PAUSE_S


async def resolve_orders(
    session: aiohttp.ClientSession,
    options: LoadOptions,
    unresolved: Sequence[Unresolved],
    *,
    deadline: float,
    stop: asyncio.Event | None = None,
) -> tuple[Resolution, list[str]]:
    """Returns the counts and the ids of the orders that turned out to exist."""
    gate = asyncio.Semaphore(options.connections)
    created: list[str] = []
    counts = {"not_created": 0, "unresolved": 0, "unresolvable": 0}

    async def ask_with_key(entry: Unresolved) -> tuple[bool, str | None, float]:
        # Sent as a replay of itself; only the status and the order id are read here.
        again = replace(entry.planned, kind=Planned.REPLAY, replay_of=entry.order_id)
        loop = asyncio.get_running_loop()
        outcome = await post_order(session, options, again, due=loop.time(), offset_s=0.0)
        if outcome.status is not None and 200 <= outcome.status <= 299 and outcome.order_id:
            return True, outcome.order_id, 0.0
        if outcome.kind is Kind.REPLAY_IN_FLIGHT:
            return False, None, retry_wait(outcome.retry_after_s)
        if outcome.status is not None and 400 <= outcome.status <= 499:
            return True, None, 0.0
        return False, None, retry_wait(outcome.retry_after_s, _PAUSE_S)

    async def one(entry: Unresolved) -> None:
        async with gate:
            if entry.planned.idempotency_key is not None:
                definite, order_id = await _until_definite(
                    lambda: ask_with_key(entry), deadline, stop
                )
            elif entry.order_id is not None:
                named = entry.order_id
                definite, order_id = await _until_definite(
                    lambda: _read_exists(session, options, named), deadline, stop
                )
            else:
                counts["unresolvable"] += 1
                return
        if not definite:
            counts["unresolved"] += 1
        elif order_id is None:
            counts["not_created"] += 1
        else:
            created.append(order_id)

    await asyncio.gather(*(one(entry) for entry in unresolved))
    resolution = Resolution(
        asked=len(unresolved),
        created=len(created),
        not_created=counts["not_created"],
        unresolved=counts["unresolved"],
        unresolvable=counts["unresolvable"],
        cancels_asked=0,
        cancels_unresolved=0,
    )
    return resolution, list(dict.fromkeys(created))


async def resolve_cancels(
    session: aiohttp.ClientSession,
    options: LoadOptions,
    cancels: dict[str, CancelOutcome],
    *,
    deadline: float,
    stop: asyncio.Event | None = None,
) -> tuple[dict[str, CancelKind], int, int]:
    """Each cancel's last answer after asking again where it was lost: (answers, asked,
    still unresolved)."""
    gate = asyncio.Semaphore(options.connections)
    answers = {order_id: outcome.kind for order_id, outcome in cancels.items()}
    lost = [o for o in cancels.values() if o.kind in CANCEL_MAYBE_WRITTEN]
    still = 0

    async def one(first: CancelOutcome) -> None:
        nonlocal still
        latest = first

        async def attempt() -> tuple[bool, str | None, float]:
            nonlocal latest
            latest = await post_cancel(session, options, first.order_id, first.key)
            if latest.kind in CANCEL_MAYBE_WRITTEN:
                return False, None, retry_wait(latest.retry_after_s, _PAUSE_S)
            return True, first.order_id, 0.0

        async with gate:
            definite, _ = await _until_definite(attempt, deadline, stop)
        answers[first.order_id] = latest.kind
        if not definite:
            still += 1

    await asyncio.gather(*(one(outcome) for outcome in lost))
    return answers, len(lost), still
