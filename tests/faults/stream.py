"""A steady stream of orders — and, when asked, of cancellations — that records what every
client saw, for the fault suite's verdicts (tests/faults/verdicts.py).

A 2xx is a promise (the order exists, once, and ends settled); a problem+json error is a
promise too (nothing was written), `outcome: "unknown"` excepted: the client must ask. A
request that died in transit (reset connection, client timeout) promises nothing either: the
client contract is to retry with the same Idempotency-Key, which the stream does once the
fault is over (`resolve`), as it does for every "unknown".
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

HOT_ITEM = "stream-hot-item"


@dataclass
class Outcomes:
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key → order id
    refused: dict[str, int] = field(default_factory=dict)  # key → status (problem+json)
    unsent: set[str] = field(default_factory=set)  # connection refused: never reached the api
    unknown: set[str] = field(default_factory=set)  # died in transit or 503 "unknown": ask again
    hot: set[str] = field(default_factory=set)  # keys of orders for the stock-managed item
    latencies: list[tuple[float, float, int]] = field(default_factory=list)  # (at, took, status)
    not_problem_json: list[str] = field(default_factory=list)
    outcome_unknown: int = 0  # 503s that said "unknown" (resolved by a retry with the key)
    timed_out: list[float] = field(default_factory=list)  # when requests the client gave up on
    # had been sent (no answer within the stream's timeout)
    # Requests whose connection broke with no answer: (when sent, key, the httpx error's name).
    broken: list[tuple[float, str, str]] = field(default_factory=list)
    # Cancellations: order id → the status the cancel answered with (200, 409, ...).
    cancels: dict[str, int] = field(default_factory=dict)
    cancels_unresolved: set[str] = field(default_factory=set)  # order ids to cancel again
    # When each key was first sent, and when its order was first answered 2xx (monotonic):
    # A was placed before B when answered[A] < sent[B] (first come, first served).
    sent: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter[int]:
        return Counter(s for at, _, s in self.latencies if since <= at < until)

    def slowest(self, since: float = 0.0, until: float = float("inf")) -> float:
        return max((t for at, t, _ in self.latencies if since <= at < until), default=0.0)


def item_of(key: str, hot: bool = False) -> str:
    return HOT_ITEM if hot else f"stream-{key}"


class OrderStream:
    """POSTs `rate` orders a second with fresh Idempotency-Keys until stopped.

    `hot_share` of them order `HOT_ITEM` (set its stock first); `cancel_share` of the
    accepted ones are cancelled a moment later, racing the worker's decision."""

    def __init__(
        self,
        base_url: str,
        *,
        rate: float = 60.0,
        timeout_s: float = 10.0,
        hot_share: float = 0.0,
        cancel_share: float = 0.0,
        seed: int = 7,
        connections: int = 64,
    ) -> None:
        self.base_url = base_url
        self.rate = rate
        self.timeout_s = timeout_s
        self.hot_share = hot_share
        self.cancel_share = cancel_share
        self.outcomes = Outcomes()
        self._random = random.Random(seed)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[object]] = set()
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def __aenter__(self) -> OrderStream:
        self.resume()
        return self

    def resume(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._run())

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def point_at(self, base_url: str) -> None:
        self.base_url = base_url

    async def stop(self) -> None:
        """Stop sending and wait for the answers in flight (`resume` starts again)."""
        self._stop.set()
        if self._task is not None:
            await self._task
        while self._inflight:
            await asyncio.wait(set(self._inflight))

    def _spawn(self, work: object) -> None:
        task: asyncio.Task[object] = asyncio.create_task(work)  # type: ignore[arg-type]
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            key = uuid.uuid4().hex
            if self._random.random() < self.hot_share:
                self.outcomes.hot.add(key)
            self._spawn(self._place_then_maybe_cancel(key))
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _place_then_maybe_cancel(self, key: str) -> None:
        status = await self.post(key)
        if status is None or not 200 <= status < 300:
            return
        if self._random.random() < self.cancel_share:
            await asyncio.sleep(self._random.uniform(0.0, 0.2))
            await self.cancel(self.outcomes.accepted[key])

    async def post(self, key: str) -> int | None:
        out = self.outcomes
        started = time.monotonic()
        out.sent.setdefault(key, started)
        try:
            response = await self._client.post(
                f"{self.base_url}/orders",
                json={"item": item_of(key, key in out.hot), "quantity": 1},
                headers={"Idempotency-Key": key},
            )
        except httpx.ConnectError:
            out.unsent.add(key)
            return None
        except httpx.TimeoutException:
            out.timed_out.append(started)
            out.unknown.add(key)
            return None
        except httpx.TransportError as exc:
            out.broken.append((started, key, type(exc).__name__))
            out.unknown.add(key)
            return None
        out.latencies.append((started, time.monotonic() - started, response.status_code))
        out.unknown.discard(key)
        if response.is_success:
            out.answered.setdefault(key, time.monotonic())
            out.accepted[key] = response.json()["id"]
            out.refused.pop(key, None)
            return response.status_code
        if response.headers.get("content-type") != "application/problem+json":
            out.not_problem_json.append(f"{response.status_code} {response.text[:200]}")
        if response.status_code == 503 and response.json().get("outcome") == "unknown":
            out.outcome_unknown += 1
            out.unknown.add(key)  # may have committed: only a retry with the key can tell
        else:
            out.refused[key] = response.status_code
        return response.status_code

    async def cancel(self, order_id: str) -> int | None:
        out = self.outcomes
        try:
            response = await self._client.post(
                f"{self.base_url}/orders/{order_id}/cancel",
                headers={"Idempotency-Key": f"cancel-{order_id}"},
            )
        except httpx.TransportError:
            out.cancels_unresolved.add(order_id)
            return None
        if response.status_code >= 500:
            out.cancels_unresolved.add(order_id)
        else:
            out.cancels[order_id] = response.status_code
            out.cancels_unresolved.discard(order_id)
        return response.status_code

    async def resolve(self, deadline_s: float = 30.0) -> None:
        """Retry every casualty with its key until it gets a definite answer (the contract)."""
        deadline = time.monotonic() + deadline_s
        out = self.outcomes
        while (out.unknown or out.cancels_unresolved) and time.monotonic() < deadline:
            for key in list(out.unknown):
                status = await self.post(key)
                if status is not None and status >= 500 and key not in out.unknown:
                    out.refused.pop(key, None)
                    out.unknown.add(key)  # a plain 503: still ambiguous until a definite answer
            for order_id in list(out.cancels_unresolved):
                await self.cancel(order_id)
            if out.unknown or out.cancels_unresolved:
                await asyncio.sleep(0.5)
        assert not out.unknown, f"unresolved orders after retries: {out.unknown}"
        assert not out.cancels_unresolved, f"unresolved cancels: {out.cancels_unresolved}"
