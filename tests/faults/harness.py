"""Load and verdicts for the fault suite: a steady stream of orders, and the checks after a fault.

The stream records what every client saw. A 2xx is a promise (the order exists, once, and ends
CONFIRMED); a problem+json error is a promise too (nothing was written). A request that died in
transit (reset connection, client timeout) promises nothing: the client contract is to retry
with the same Idempotency-Key, which the stream does once the fault is over (`resolve`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import httpx

from tests.kafka_reader import read_all


@dataclass
class Outcomes:
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key → order id
    refused: dict[str, int] = field(default_factory=dict)  # key → status (problem+json)
    unsent: set[str] = field(default_factory=set)  # connection refused: never reached the api
    unknown: set[str] = field(default_factory=set)  # died in transit: outcome unknown
    latencies: list[tuple[float, float, int]] = field(default_factory=list)  # (at, took, status)
    not_problem_json: list[str] = field(default_factory=list)

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter[int]:
        return Counter(s for at, _, s in self.latencies if since <= at < until)

    def slowest(self, since: float = 0.0, until: float = float("inf")) -> float:
        return max((t for at, t, _ in self.latencies if since <= at < until), default=0.0)


def item_of(key: str) -> str:
    return f"stream-{key}"


class OrderStream:
    """POSTs `rate` orders a second with fresh Idempotency-Keys until stopped."""

    def __init__(self, base_url: str, *, rate: float = 60.0, timeout_s: float = 10.0) -> None:
        self.base_url = base_url
        self.rate = rate
        self.timeout_s = timeout_s
        self.outcomes = Outcomes()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient(
            timeout=timeout_s, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
        )

    async def __aenter__(self) -> OrderStream:
        self.resume()
        return self

    def resume(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._run())

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        await self._client.aclose()

    def point_at(self, base_url: str) -> None:
        self.base_url = base_url

    async def stop(self) -> None:
        """Stop sending and wait for the answers in flight (`resume` starts again)."""
        self._stop.set()
        if self._task is not None:
            await self._task
        if self._inflight:
            await asyncio.wait(self._inflight)

    async def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            task = asyncio.create_task(self.post(uuid.uuid4().hex))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def post(self, key: str) -> int | None:
        out = self.outcomes
        started = time.monotonic()
        try:
            response = await self._client.post(
                f"{self.base_url}/orders",
                json={"item": item_of(key), "quantity": 1},
                headers={"Idempotency-Key": key},
            )
        except httpx.ConnectError:
            out.unsent.add(key)
            return None
        except httpx.TransportError:
            out.unknown.add(key)
            return None
        out.latencies.append((started, time.monotonic() - started, response.status_code))
        out.unknown.discard(key)
        if response.is_success:
            out.accepted[key] = response.json()["id"]
            out.refused.pop(key, None)
        else:
            out.refused[key] = response.status_code
            if response.headers.get("content-type") != "application/problem+json":
                out.not_problem_json.append(f"{response.status_code} {response.text[:200]}")
        return response.status_code

    async def resolve(self, deadline_s: float = 20.0) -> None:
        """Retry every in-transit casualty with its key until it gets an answer (the contract)."""
        deadline = time.monotonic() + deadline_s
        while self.outcomes.unknown and time.monotonic() < deadline:
            for key in list(self.outcomes.unknown):
                status = await self.post(key)
                if status is not None and status >= 500:
                    self.outcomes.unknown.add(key)  # still ambiguous until a definite answer
            if self.outcomes.unknown:
                await asyncio.sleep(0.5)
        assert not self.outcomes.unknown, f"unresolved after retries: {self.outcomes.unknown}"


async def confirmed_within(db: asyncpg.Connection, outcomes: Outcomes, timeout_s: float) -> float:
    """Seconds until every accepted order is CONFIRMED; fails with the stragglers otherwise."""
    started = time.monotonic()
    ids = [uuid.UUID(i) for i in outcomes.accepted.values()]
    pending: int | None = None
    while time.monotonic() - started < timeout_s:
        pending = await db.fetchval(
            "SELECT count(*) FROM unnest($1::uuid[]) AS a(id) "
            "LEFT JOIN orders o USING (id) WHERE o.status IS DISTINCT FROM 'CONFIRMED'",
            ids,
        )
        if pending == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"{pending} of {len(ids)} accepted orders not CONFIRMED in {timeout_s}s")


async def assert_books_balance(db: asyncpg.Connection, outcomes: Outcomes) -> None:
    """Exactly-once in the database: one order per 2xx, none for a refusal, one inbox row each."""
    accepted_items = [item_of(k) for k in outcomes.accepted]
    rows = await db.fetch("SELECT id, item, status FROM orders")
    by_item = Counter(r["item"] for r in rows)
    assert len(rows) == len(outcomes.accepted), (len(rows), len(outcomes.accepted))
    assert all(by_item[i] == 1 for i in accepted_items), "an accepted order is missing or doubled"
    ids = {str(r["id"]) for r in rows}
    assert ids == set(outcomes.accepted.values())
    assert {r["status"] for r in rows} <= {"CONFIRMED"}
    no_answer = [*outcomes.refused, *outcomes.unsent]
    assert not [item_of(k) for k in no_answer if by_item[item_of(k)]], "a refusal left an order"
    leaked_keys = await db.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE idem_key = ANY($1::text[])", no_answer
    )
    assert leaked_keys == 0, "a refused request left its idempotency record"
    # One event per order, and each applied exactly once: the inbox mirrors the outbox.
    counts = await db.fetchrow(
        "SELECT (SELECT count(*) FROM outbox) AS outbox, (SELECT count(*) FROM inbox) AS inbox,"
        " (SELECT count(DISTINCT order_id) FROM inbox) AS orders,"
        " (SELECT count(*) FROM outbox o LEFT JOIN inbox i USING (event_id)"
        "   WHERE i.event_id IS NULL) AS unapplied"
    )
    assert counts["outbox"] == counts["inbox"] == counts["orders"] == len(rows), dict(counts)
    assert counts["unapplied"] == 0


async def assert_order_held_on_the_topic(
    db: asyncpg.Connection, bootstrap: str, topic: str
) -> tuple[int, int]:
    """Every committed event is on the topic at least once; every copy of an order's events sits
    on that order's one partition, first copies in commit (outbox id) order, so a consumer sees
    an order's events in order. Returns (records, redelivered duplicates)."""
    outbox = {
        str(r["event_id"]): (r["id"], str(r["aggregate_id"]))
        for r in await db.fetch("SELECT id, event_id, aggregate_id FROM outbox")
    }
    records = await asyncio.to_thread(read_all, bootstrap, topic, 30.0, 2.0)
    seen: set[str] = set()
    partition_of: dict[str, int] = {}
    last: dict[str, int] = {}
    duplicates = 0
    for record in records:
        event_id = record.headers["ce_id"]
        outbox_id, order_id = outbox[event_id]
        assert record.key == order_id
        assert partition_of.setdefault(order_id, record.partition) == record.partition
        if event_id in seen:
            duplicates += 1
            continue
        seen.add(event_id)
        assert outbox_id > last.get(order_id, 0), f"order {order_id} events out of order"
        last[order_id] = outbox_id
    assert seen == set(outbox), f"{len(set(outbox) - seen)} committed events never reached Kafka"
    return len(records), duplicates
