"""Backlog drain: N committed orders with their `order.created` outbox rows, written while no
relay runs; then the relay is started and drains them to the broker; then the worker is
started and settles them (each settlement writes an `order.confirmed`, which the relay, still
running, publishes too).

The rows are written in bulk by SQL in the api's shape — the same columns, headers, payload
and lane (CRC-32 of the key, as `envelope.lane_of`) — and one of them is checked against the
api's own event codec before anything is started, so the backlog is what the api would have
left behind, only written faster than Python could.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import asyncpg
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench.processes import cpu_per_unit, cpu_snapshot
from bench.stack import Context, OurStack, our_stack
from order_service.domain.events import OrderCreated
from order_service.domain.order import Order
from order_service.messaging.envelope import cloud_event_headers, order_created_message
from order_service.messaging.event_codec import decode
from order_service.persistence.outbox_message import OUTBOX_LANES

DEFAULT_ROWS = 100_000
QUOTED_ROWS = 1_000_000  # what results.md quotes: `python -m bench --backlog 1000000`
CHUNK_ROWS = 50_000  # rows per INSERT statement (each its own transaction)
SOURCE = "order-service"  # the api's ce_source, as `Settings.service_name` defaults it

# One statement writes a chunk of orders and their outbox rows, as the api's group commit
# does (without idempotency keys: the bench's requests carry none either).
_INSERT_CHUNK = """
WITH new_orders AS (
  INSERT INTO orders (id, item, quantity, status, owner, created_at, updated_at)
  SELECT uuidv7(), 'backlog-' || n, n % 100 + 1, 'PENDING', 'anonymous', now(), now()
  FROM generate_series($1::bigint, $2::bigint) AS n
  RETURNING id, item, quantity, created_at
), events AS (
  SELECT uuidv7() AS event_id, o.*, to_json(o.created_at) #>> '{}' AS at FROM new_orders o
)
INSERT INTO outbox (event_id, aggregate_id, topic, message_key, payload, headers, lane,
                    created_at)
SELECT e.event_id, e.id, $3, e.id::text,
       convert_to(json_build_object(
         'schema_version', $4::int, 'id', e.id, 'item', e.item, 'quantity', e.quantity,
         'status', 'PENDING', 'created_at', e.at, 'updated_at', e.at)::text, 'UTF8'),
       $5::jsonb || jsonb_build_object('ce_id', e.event_id::text, 'ce_time', e.at),
       crc32(convert_to(e.id::text, 'UTF8')) % $6, e.created_at
FROM events e
ORDER BY e.id
"""


@dataclass
class BacklogResult:
    rows: int
    relays: int = 1
    insert_s: float = 0.0
    drain_s: float | None = None  # relay started -> every row acknowledged and marked
    drain_rate: float | None = None  # events/s between the first and the last mark
    settle_s: float | None = None  # worker started -> every order CONFIRMED
    settle_rate: float | None = None  # orders/s between the first and the last settlement
    drain_cpu_us: dict[str, float] = field(default_factory=dict)  # per event
    settle_cpu_us: dict[str, float] = field(default_factory=dict)  # per order
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.drain_s is not None


def _template(topic: str) -> dict[str, str]:
    """The headers every `order.created` carries, from the api's own envelope."""
    order = Order.place("template", 1)
    message = order_created_message(
        OrderCreated.of(order), topic=topic, source=SOURCE, trace_headers={}
    )
    varying = {"ce_id", "ce_time"}
    return {k: v for k, v in message.headers.items() if k not in varying}


async def write_backlog(dsn: str, topic: str, rows: int) -> None:
    constant = orjson.dumps(_template(topic)).decode()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET TimeZone = 'UTC'")  # ISO times as the api writes them
        for start in range(1, rows + 1, CHUNK_ROWS):
            end = min(rows, start + CHUNK_ROWS - 1)
            await conn.execute(_INSERT_CHUNK, start, end, topic, 1, constant, OUTBOX_LANES)
        sample = await conn.fetchrow(
            "SELECT message_key, payload, headers FROM outbox ORDER BY id LIMIT 1"
        )
        assert sample is not None
        headers = orjson.loads(sample["headers"])
        api_headers = set(_template(topic)) | {"ce_id", "ce_time"}
        if set(headers) != api_headers:
            raise AssertionError(f"backlog headers {sorted(headers)} != {sorted(api_headers)}")
        # The worker's own decoding: a row it would dead-letter would make the figure a lie.
        sent = cloud_event_headers(headers, key=str(sample["message_key"]), source=SOURCE)
        decode(bytes(sample["payload"]), [(k, v.encode()) for k, v in sent.items()])
        await conn.execute("VACUUM ANALYZE orders, outbox")
    finally:
        await conn.close()


async def _count(dsn: str, query: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


async def _span_rate(dsn: str, query: str) -> float | None:
    """Rows / seconds between the first and the last timestamp the query returns."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(query)
    finally:
        await conn.close()
    assert row is not None
    span = row["span"]
    return row["n"] / float(span) if span else None


def counter(url: str, name: str) -> float:
    """A counter's value from a /metrics page (summed over its labels)."""
    text = httpx.get(url, timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == f"{name}_total" or sample.name == name
    )


# Published rows counted by the relay's acks; CONFIRMED orders by the worker's commits. The
# database is asked once, at the end, to check them and to time the first and the last.
PUBLISHED = "outbox_published"
PROCESSED = "worker_events_processed"
CHECK_PUBLISHED = "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"
CHECK_CONFIRMED = "SELECT count(*) FROM orders WHERE status = 'CONFIRMED'"
DRAIN_SPAN = (
    "SELECT count(*) AS n, extract(epoch FROM max(published_at) - min(published_at)) AS span "
    "FROM outbox"
)
SETTLE_SPAN = (
    "SELECT count(*) AS n, extract(epoch FROM max(updated_at) - min(updated_at)) AS span "
    "FROM orders WHERE status = 'CONFIRMED'"
)


def _started(stack: OurStack, names: list[str], metric: str) -> tuple[dict[str, float], float]:
    """Start these processes; returns the CPU snapshot and the work they already counted once
    ready, so that their start-up (imports, connections) is not counted as work."""
    stack.start(*names)
    return cpu_snapshot(stack.pids), sum(counter(stack.metrics[n], metric) for n in names)


def _counted(stack: OurStack, names: list[str], metric: str) -> float:
    return sum(counter(stack.metrics[n], metric) for n in names)


def _wait(stack: OurStack, names: list[str], metric: str, target: int, timeout_s: float) -> bool:
    """Until the processes' counters `metric` add up to `target` (polled from their /metrics,
    which costs the database nothing); False at the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _counted(stack, names, metric) >= target:
            return True
        time.sleep(0.25)
    return False


def backlog(
    ctx: Context,
    rows: int = DEFAULT_ROWS,
    *,
    relays: int = 1,
    settle: bool = True,
    env: Mapping[str, str] | None = None,
) -> BacklogResult:
    """`relays` drain together (each claims its own lanes); `settle=False` stops after the
    drain (for comparing relay settings); `env` is given to the stack's processes."""
    result = BacklogResult(rows, relays=relays)
    relay_names = ["relay", *(f"relay-{n}" for n in range(2, relays + 1))]
    # Generous: a 2-core machine shared with other work drains at well over 500 events/s.
    timeout_s = 120.0 + rows / 500
    with our_stack(ctx, env, services=(), name="backlog") as stack:
        started = time.monotonic()
        asyncio.run(write_backlog(stack.dsn, stack.env["KAFKA_ORDER_TOPIC"], rows))
        result.insert_s = time.monotonic() - started

        started = time.monotonic()
        before, done = _started(stack, relay_names, PUBLISHED)
        if not _wait(stack, relay_names, PUBLISHED, rows, timeout_s):
            result.error = f"the relay did not drain {rows:,} rows in {timeout_s:.0f} s"
            return result
        result.drain_s = time.monotonic() - started
        result.drain_cpu_us = cpu_per_unit(before, cpu_snapshot(stack.pids), int(rows - done))
        result.drain_rate = asyncio.run(_span_rate(stack.dsn, DRAIN_SPAN))
        if not settle:
            return result

        started = time.monotonic()
        before, done = _started(stack, ["worker"], PROCESSED)
        # Settled: applied by the worker, and its order.confirmed published by the relays.
        settled = _wait(stack, ["worker"], PROCESSED, rows, timeout_s) and _wait(
            stack, relay_names, PUBLISHED, 2 * rows, timeout_s
        )
        if not settled:
            result.error = f"the worker did not settle {rows:,} orders in {timeout_s:.0f} s"
            return result
        result.settle_s = time.monotonic() - started
        result.settle_cpu_us = cpu_per_unit(before, cpu_snapshot(stack.pids), int(rows - done))
        result.settle_rate = asyncio.run(_span_rate(stack.dsn, SETTLE_SPAN))
        published = asyncio.run(_count(stack.dsn, CHECK_PUBLISHED))
        confirmed = asyncio.run(_count(stack.dsn, CHECK_CONFIRMED))
        if published != 2 * rows or confirmed != rows:
            result.error = (
                f"{confirmed:,} of {rows:,} orders CONFIRMED, {published:,} of {2 * rows:,} "
                "events marked published"
            )
    return result
