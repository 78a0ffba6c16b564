"""G5 (effect once, offsets after the transaction) and G8 (bounded stop) for the worker."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from order_service.config import Settings
from order_service.domain.order import Order
from order_service.messaging.kafka_client import create_consumer, ensure_topics
from order_service.messaging.worker import run_worker
from tests.e2e.processes import Service, running_stack, settings_env, wait_ok
from tests.factories import (
    Background,
    Raw,
    effects,
    insert_order,
    insert_orders,
    produce,
    set_stock,
)
from tests.kafka_reader import read_all
from tests.scrape import sample

pytestmark = pytest.mark.integration


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.1)


async def count(db: asyncpg.Connection, sql: str, *args: object) -> int:
    return int(await db.fetchval(sql, *args))


async def committed_offsets(settings: Settings) -> dict[int, int | None]:
    consumer = create_consumer(settings)
    await consumer.start()
    try:
        return {
            p: await consumer.committed(TopicPartition(settings.kafka_order_topic, p))
            for p in range(settings.kafka_topic_partitions)
        }
    finally:
        await consumer.stop()


async def test_worker_commits_no_offset_before_its_transaction_and_stops_in_time_when_blocked(
    settings: Settings, db: asyncpg.Connection
) -> None:
    placed = await insert_orders(db, settings, 5)
    await ensure_topics(settings)
    await produce(settings, [Raw.of(m) for _, m in placed])
    failures = metric("worker_events_failed_total", reason="db_unavailable")

    blocker = await asyncpg.connect(settings.asyncpg_dsn)
    block = blocker.transaction()
    await block.start()
    await blocker.execute("LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE")
    try:
        worker = Background(run_worker, settings)

        async def tried() -> bool:
            return metric("worker_events_failed_total", reason="db_unavailable") > failures

        await eventually(tried)
        took = await worker.stop()
        assert took < settings.shutdown_timeout_s
        assert await count(db, "SELECT count(*) FROM orders WHERE status = 'PENDING'") == 5
        assert set((await committed_offsets(settings)).values()) <= {None, -1}
    finally:
        await block.rollback()
        await blocker.close()

    # A fresh group resumes from the same (uncommitted) start and joins without waiting for
    # Tansu to expire the first member's session.
    settings = settings.model_copy(
        update={"kafka_consumer_group": f"{settings.kafka_consumer_group}-2"}
    )
    async with Background(run_worker, settings):

        async def confirmed() -> bool:
            return await count(db, "SELECT count(*) FROM orders WHERE status = 'CONFIRMED'") == 5

        await eventually(confirmed)
    records = await asyncio.to_thread(
        read_all, settings.kafka_bootstrap_servers, settings.kafka_order_topic
    )
    ends = {r.partition: r.offset + 1 for r in records}
    committed = await committed_offsets(settings)
    assert {p: committed[p] for p in ends} == ends
    assert await count(db, "SELECT count(*) FROM inbox") == 5


async def test_a_redelivered_event_has_no_second_effect(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """G5 + G9 on redelivery: the order is confirmed once (3 units reserved, one
    `order.confirmed` outbox row); then it is rewound to PENDING by hand, so that only the
    inbox stands between a redelivery and a second effect, and its event is delivered twice
    more. Both copies are read and committed past (offsets), counted as duplicates, and
    change nothing: stock, status-event rows, status and `updated_at` as they were.

    Seen failing on a broken variant of `persistence.order_settlement` (restored afterwards):
    inbox check dropped (`... IN (SELECT event_id FROM fresh) AS fresh` replaced by
    `true AS fresh`) — the order was reserved again (available 4, reserved 6) and a second
    `order.confirmed` row was written.
    """
    await set_stock(db, "widget", 10)
    order, message = await insert_order(db, settings, item="widget", quantity=3)
    await ensure_topics(settings)
    await produce(settings, [Raw.of(message)])
    status = "SELECT status FROM orders WHERE id = $1"
    async with Background(run_worker, settings):

        async def confirmed() -> bool:
            return bool(await db.fetchval(status, order.id) == "CONFIRMED")

        await eventually(confirmed)
        first = await effects(db, settings, "widget")
        assert (first.available, first.reserved) == (7, 3)
        assert first.status_events == {order.id: ["order.confirmed"]}

        await db.execute("UPDATE orders SET status = 'PENDING' WHERE id = $1", order.id)
        rewound_at = await db.fetchval("SELECT updated_at FROM orders WHERE id = $1", order.id)
        duplicates = metric("worker_events_duplicate_total")
        await produce(settings, [Raw.of(message), Raw.of(message)])
        await eventually(lambda: _caught_up(settings, 3))  # both copies read and committed

    after = await effects(db, settings, "widget")
    assert (after.available, after.reserved) == (7, 3)
    assert after.status_events == {order.id: ["order.confirmed"]}
    assert after.orders[order.id] == ("PENDING", rewound_at)
    assert after.inbox_rows == 1
    assert metric("worker_events_duplicate_total") - duplicates == 2


async def place_and_send(
    db: asyncpg.Connection, settings: Settings, count: int, item: str
) -> list[Order]:
    placed = [await insert_order(db, settings, item=item, quantity=1 + n % 3) for n in range(count)]
    await produce(settings, [Raw.of(m) for _, m in placed])
    return [order for order, _ in placed]


async def settled(db: asyncpg.Connection, orders: list[Order]) -> bool:
    pending = await db.fetchval(
        "SELECT count(*) FROM orders WHERE status = 'PENDING' AND id = ANY($1::uuid[])",
        [o.id for o in orders],
    )
    return int(pending) == 0


def log_events(service: Service, event: str) -> list[dict[str, Any]]:
    lines = (orjson.loads(line) for line in service.output().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]


async def test_two_workers_sharing_the_group_through_a_rebalance_apply_each_event_once(
    settings: Settings, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """G5 + G9 through a rebalance with a batch in flight, two worker processes (each its own
    /metrics, so each member's counts are its own).

    Worker 1 settles 20 orders, then is held in the middle of its next batch (its transaction
    waits for the stock row, locked by the test) while worker 2 joins. Once worker 1 has seen
    the rebalance (aiokafka's "Heartbeat failed ... because it is rebalancing") the lock is
    released: the revocation must have waited for the batch, which commits before its
    partitions move — worker 1 logs the revocation only after the release, and no member reads
    an applied record again (duplicates 0 on both). Then 20 more orders are shared by both.
    Both members applied events, their applied counts add up to the 60 events, every order has
    one status-event row, and the reserved units are exactly the confirmed orders' units.

    Seen failing on a broken variant of `messaging.rebalance.HandBack` (restored afterwards):
    the revocation does not wait for the batch in flight — worker 1 logged it 1.1 s before the
    release (2 runs of 2). Not seen failing: the effect counts, since even then no applied
    record was read again in those runs (duplicates 0), so a broken inbox had nothing to
    mis-apply here; the redelivery and SIGKILL tests above carry that.
    """
    await set_stock(db, "widget", 50)
    await ensure_topics(settings)
    held_env = {
        "LOG_LEVEL": "INFO",  # the revocation's log line, with its time
        "DB_STATEMENT_TIMEOUT_MS": "60000",  # held by the lock, not timed out
        "SHUTDOWN_TIMEOUT_S": "30",  # a revocation waits up to this long for the batch
    }
    with running_stack(settings, tmp_path) as stack:
        one = await asyncio.to_thread(lambda: stack.start("worker", **held_env))
        first = await place_and_send(db, settings, 20, "widget")
        await eventually(lambda: settled(db, first), timeout_s=30)

        blocker = await asyncpg.connect(settings.asyncpg_dsn)
        hold = blocker.transaction()
        await hold.start()
        try:
            await blocker.execute("SELECT 1 FROM stock WHERE item = 'widget' FOR UPDATE")
            second = await place_and_send(db, settings, 20, "widget")

            async def mid_batch() -> bool:
                waiting = await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return int(waiting) > 0

            await eventually(mid_batch)
            # Not waited for: its start-up completes with its first assignment, after the hold.
            two = stack.start("worker", wait=False, **held_env)

            async def rebalancing() -> bool:
                return "because it is rebalancing" in one.output()

            await eventually(rebalancing, timeout_s=30)
            await asyncio.sleep(1)  # a revocation that does not wait would happen meanwhile
            assert not await settled(db, second)  # still in flight
            released = datetime.now(UTC)
        finally:
            await hold.rollback()
            await blocker.close()
        await eventually(lambda: settled(db, second), timeout_s=30)
        await asyncio.to_thread(wait_ok, f"{two.url}/readyz", 30.0, two.process)

        async def both_assigned() -> bool:
            counts = [
                await asyncio.to_thread(sample, w.url, "worker_rebalances_total", change="assigned")
                for w in (one, two)
            ]
            return counts[0] >= 2 and counts[1] >= 1

        await eventually(both_assigned, timeout_s=30)
        third = await place_and_send(db, settings, 20, "widget")
        await eventually(lambda: settled(db, third), timeout_s=30)
        counts = {
            name: [await asyncio.to_thread(sample, w.url, name) for w in (one, two)]
            for name in ("worker_events_processed_total", "worker_events_duplicate_total")
        }
        revoked = [
            datetime.fromisoformat(e["timestamp"])
            for e in log_events(one, "worker_partitions_revoked")
            if e["partitions"]
        ]

    assert revoked and min(revoked) >= released, (released, revoked)
    processed = counts["worker_events_processed_total"]
    assert all(n > 0 for n in processed), counts  # both members applied events
    assert sum(processed) == 60, counts
    assert counts["worker_events_duplicate_total"] == [0, 0], counts
    after = await effects(db, settings, "widget")
    assert after.inbox_rows == 60
    assert all(status != "PENDING" for status, _ in after.orders.values())
    after.assert_applied_once(stock_set=50)


async def test_a_batch_that_outlived_its_revocation_commits_and_is_not_rewound(
    settings: Settings, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """Issue 20.5: a batch outlives SHUTDOWN_TIMEOUT_S (its transaction waits for the stock
    row, locked by the test, as in a database outage) while a second member joins. The
    revocation stops waiting, part of the batch's partitions move, then the lock goes and the
    batch commits — its moved partitions skipped. Nothing after that commit may count it as
    crashed: worker 1 logs no `worker_batch_crashed` and counts no internal error. The
    scenario ran: worker 1 logged its revocation with the batch in flight and a second
    assignment, each event was applied once across both members, and worker 2 read again
    records worker 1 had applied (duplicates > 0: the batch held partitions that moved).

    Seen failing on landed main, whose lag was recorded for every partition of the batch:
    `AssertionError('Partition is not assigned')` from aiokafka's `highwater`, logged as
    `worker_batch_crashed` once the batch had committed, internal errors 1.
    """
    await set_stock(db, "widget", 100)
    await ensure_topics(settings)
    placed = [await insert_order(db, settings, item="widget", quantity=1) for _ in range(30)]
    partitions = settings.kafka_topic_partitions
    for partition in range(partitions):  # every partition in worker 1's first batch
        batch = [Raw.of(m) for _, m in placed[partition::partitions]]
        await produce(settings, batch, partition=partition)
    orders = [order for order, _ in placed]
    env = {
        "LOG_LEVEL": "INFO",
        "DB_STATEMENT_TIMEOUT_MS": "60000",  # held by the lock, not timed out
        "SHUTDOWN_TIMEOUT_S": "1",  # a revocation waits this long for the batch, then goes on
    }
    with running_stack(settings, tmp_path) as stack:
        blocker = await asyncpg.connect(settings.asyncpg_dsn)
        hold = blocker.transaction()
        await hold.start()
        try:
            await blocker.execute("SELECT 1 FROM stock WHERE item = 'widget' FOR UPDATE")
            one = await asyncio.to_thread(lambda: stack.start("worker", **env))

            async def mid_batch() -> bool:
                waiting = await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return int(waiting) > 0

            await eventually(mid_batch, timeout_s=30)
            two = stack.start("worker", wait=False, **env)

            async def reassigned() -> bool:
                return len(log_events(one, "worker_partitions_assigned")) >= 2

            await eventually(reassigned, timeout_s=60)
            assert not await settled(db, orders)  # the batch is still in flight
        finally:
            await hold.rollback()
            await blocker.close()
        await eventually(lambda: settled(db, orders), timeout_s=30)
        await asyncio.to_thread(wait_ok, f"{two.url}/readyz", 30.0, two.process)

        def applied() -> list[float]:
            return [sample(w.url, "worker_events_processed_total") for w in (one, two)]

        async def accounted() -> bool:  # both batches went through `_account`
            return sum(await asyncio.to_thread(applied)) == len(orders)

        await eventually(accounted, timeout_s=30)
        internal = await asyncio.to_thread(
            sample, one.url, "worker_events_failed_total", reason="internal_error"
        )
        duplicates = await asyncio.to_thread(sample, two.url, "worker_events_duplicate_total")
        crashed = log_events(one, "worker_batch_crashed")

    assert log_events(one, "worker_revoked_with_batch_in_flight"), "the revocation waited"
    assert crashed == [] and internal == 0, (internal, crashed[:1])
    assert duplicates > 0  # worker 2 read again what worker 1's batch applied on its partitions
    after = await effects(db, settings, "widget")
    assert after.inbox_rows == len(orders)
    after.assert_applied_once(stock_set=100)


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a kill script's process: the test's Settings (tests/e2e/processes)."""
    return settings_env(settings, **extra)


KILL_SCRIPT = """
import asyncio, os, signal
from order_service.config import Settings
from order_service.domain.order import Order
from order_service.messaging import worker

async def die_before_commit(self, batch, stop):
    os.kill(os.getpid(), signal.SIGKILL)  # the transaction committed, the offsets did not

worker.Worker._commit = die_before_commit
asyncio.run(worker.run_worker(Settings(), stop=asyncio.Event()))
"""


async def test_a_worker_killed_between_its_transaction_and_its_offset_commit_has_no_second_effect(
    settings: Settings, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """G5 + G9 across SIGKILL: ten orders of a stock-managed item (55 units asked, 40 there),
    a worker process reading batches of 4, killed right after its first transaction committed
    and before its offset commit. Nothing was committed, so the next worker reads every record
    again: raw counts show the redelivery (each event applied before the kill comes back as a
    duplicate, the other events are applied), and nothing moves twice — one status-event row
    per order naming its status, reserved units equal to the confirmed orders' units, and the
    orders settled before the kill untouched (status and `updated_at` as they were).

    Seen failing on broken variants (restored afterwards):
    - inbox check dropped (`... AS fresh` replaced by `true AS fresh` in order_settlement):
      the status guard (only PENDING orders are decided) still hides it from the tables, but
      not from the raw counts — 0 duplicates where 4 events came back;
    - every delivery applied as new (that, and the order read as PENDING): an order settled
      before the kill was decided again — a second status-event row (`order.confirmed` twice,
      its units reserved twice, or `order.confirmed` then `order.rejected`);
    - offsets committed before the effect (`_commit` before `_apply_all` in `Worker.handle`):
      the process died at that commit with nothing applied (`0 < applied` failed).
    """
    await set_stock(db, "widget", 40)
    placed = [await insert_order(db, settings, item="widget", quantity=q) for q in range(1, 11)]
    await ensure_topics(settings)
    await produce(settings, [Raw.of(m) for _, m in placed])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KILL_SCRIPT,
        env=worker_env(settings, WORKER_BATCH_SIZE="4"),  # dies with 6 events not yet read
        cwd=tmp_path,
    )
    async with asyncio.timeout(30):
        assert await process.wait() == -signal.SIGKILL
    killed = await effects(db, settings, "widget")
    applied = killed.inbox_rows
    assert 0 < applied <= 4
    assert set((await committed_offsets(settings)).values()) <= {None, -1}
    settled = {i: s for i, s in killed.orders.items() if s[0] != "PENDING"}
    # First come, first served: with the batch's orders, every order of the item placed
    # before the latest of them was decided too, in the same transaction.
    upto = await db.fetchval(
        "SELECT max(o.placed_seq) FROM inbox i JOIN orders o ON o.id = i.order_id"
    )
    placed_by_then = await db.fetch("SELECT id FROM orders WHERE placed_seq <= $1", upto)
    assert set(settled) == {r["id"] for r in placed_by_then}
    assert len(settled) >= applied
    killed.assert_applied_once(stock_set=40)

    # Nothing was committed, so any member of the group starts over from the beginning; a fresh
    # group does the same without waiting for Tansu to expire the killed member's session.
    processed = metric("worker_events_processed_total")
    duplicates = metric("worker_events_duplicate_total")
    again = settings.model_copy(
        update={"kafka_consumer_group": f"{settings.kafka_consumer_group}-2"}
    )
    async with Background(run_worker, again):
        await eventually(lambda: _caught_up(again, 10))

    after = await effects(db, settings, "widget")
    assert all(status != "PENDING" for status, _ in after.orders.values())
    after.assert_applied_once(stock_set=40)
    assert {i: after.orders[i] for i in settled} == settled
    assert after.inbox_rows == 10
    # The redelivery really happened: every event applied before the kill came back.
    assert metric("worker_events_duplicate_total") - duplicates == applied
    assert metric("worker_events_processed_total") - processed == 10 - applied


async def _caught_up(settings: Settings, total: int) -> bool:
    committed = await committed_offsets(settings)
    return sum(o for o in committed.values() if o and o > 0) >= total
