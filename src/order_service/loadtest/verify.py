"""`--verify`: read every accepted order back through the API until all are CONFIRMED.

The drain time is the time from the end of the load until the last order was seen
CONFIRMED; an order that is missing (404), REJECTED or still PENDING at the deadline is a loss.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
import orjson

from order_service.loadtest.options import LoadOptions

CONFIRMED = "CONFIRMED"
MISSING = "MISSING"  # 404: the API does not know an order it acknowledged
UNREADABLE = "UNREADABLE"  # transport error or a non-200/404 answer on the last look
_FINAL = frozenset({CONFIRMED, "REJECTED"})
_SAMPLE = 10


@dataclass(frozen=True)
class VerifyResult:
    expected: int
    states: dict[str, int]
    drain_s: float | None  # None when not every order was confirmed before the deadline
    timed_out: bool
    failed_ids: list[str] = field(default_factory=list)  # a sample, for the report

    @property
    def confirmed(self) -> int:
        return self.states.get(CONFIRMED, 0)

    @property
    def ok(self) -> bool:
        return self.confirmed == self.expected

    def as_dict(self) -> dict[str, object]:
        return {
            "expected": self.expected,
            "confirmed": self.confirmed,
            "states": dict(self.states),
            "drain_s": None if self.drain_s is None else round(self.drain_s, 3),
            "timed_out": self.timed_out,
            "ok": self.ok,
            "failed_ids_sample": self.failed_ids,
        }


async def _state(session: aiohttp.ClientSession, url: str) -> str:
    try:
        async with session.get(url) as resp:
            if resp.status == 404:
                return MISSING
            if resp.status != 200:
                return UNREADABLE
            document = orjson.loads(await resp.read())
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return UNREADABLE
    status = document.get("status") if isinstance(document, dict) else None
    return str(status) if status else UNREADABLE


async def verify_orders(
    session: aiohttp.ClientSession,
    options: LoadOptions,
    order_ids: Sequence[str],
    *,
    load_ended_at: float,
    timeout_s: float,
    poll_interval_s: float = 0.25,
    stop: asyncio.Event | None = None,
) -> VerifyResult:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: dict[str, str] = {}
    open_ids = list(dict.fromkeys(order_ids))
    gate = asyncio.Semaphore(options.connections)
    drain_s: float | None = 0.0 if not open_ids else None

    async def look(order_id: str) -> None:
        async with gate:
            last[order_id] = await _state(session, options.order_url(order_id))

    while open_ids:
        await asyncio.gather(*(look(order_id) for order_id in open_ids))
        open_ids = [order_id for order_id in open_ids if last[order_id] not in _FINAL]
        if not open_ids:
            if all(state == CONFIRMED for state in last.values()):
                drain_s = loop.time() - load_ended_at
            break
        if loop.time() >= deadline or (stop is not None and stop.is_set()):
            break
        await asyncio.sleep(poll_interval_s)
    states = Counter(last.values())
    failed = [order_id for order_id, state in last.items() if state != CONFIRMED][:_SAMPLE]
    return VerifyResult(len(last), dict(states), drain_s, bool(open_ids), failed)
