"""First come, first served for stock-managed items (README "HTTP API", G9): an order answered
201 before another order of the same item was sent is never rejected for stock while the later
one is confirmed — whatever partition, batch or worker each event reaches, and however far
behind the worker was.

Orders are keyed by their own id, so one item's orders spread over every partition. Each test
places them one after another (each sent only after the previous one's 201) and reads the
decisions from the database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import httpx
import pytest

from order_service.config import Settings
from order_service.domain.events import OrderStatusChanged
from order_service.domain.order import Order
from order_service.messaging.envelope import event_message
from order_service.messaging.kafka_client import ensure_topics
from order_service.messaging.relay import run_relay
from order_service.messaging.worker import run_worker
from order_service.persistence.migrate import upgrade_to
from order_service.persistence.order_settlement import StatusMessage, settle_created
from order_service.persistence.outbox_message import OutboxMessage
from tests.conftest import Infra, drop_database
from tests.factories import Background, insert_order, set_stock
from tests.kafka_reader import read_all

pytestmark = pytest.mark.integration

ITEMS = 8
UNITS = 2
ORDERS_PER_ITEM = 6
DUE = "C" * UNITS + "R" * (ORDERS_PER_ITEM - UNITS)  # CCRRRR


async def place_in_turn(
    client: httpx.AsyncClient, items: list[str], per_item: int
) -> dict[str, list[str]]:
    """One order at a time, each sent after the previous one's 201, the items taking turns."""
    placed: dict[str, list[str]] = {item: [] for item in items}
    for _ in range(per_item):
        for item in items:
            response = await client.post("/orders", json={"item": item, "quantity": 1})
            assert response.status_code == 201, response.text
            placed[item].append(response.json()["id"])
    return placed


async def stocked(client: httpx.AsyncClient, prefix: str, units: int, count: int) -> list[str]:
    items = [f"{prefix}-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    for item in items:
        response = await client.put(f"/stock/{item}", json={"available": units})
        assert response.status_code == 200
    return items


async def decisions(
    db: asyncpg.Connection, placed: dict[str, list[str]], timeout_s: float = 60
) -> dict[str, str]:
    """Per item, each order's status in placement order: "CCRRRR" (C confirmed, R rejected)."""
    ids = [UUID(i) for ids in placed.values() for i in ids]
    async with asyncio.timeout(timeout_s):
        while await db.fetchval(
            "SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'PENDING'", ids
        ):
            await asyncio.sleep(0.1)
    status = {
        str(r["id"]): r["status"][0]
        for r in await db.fetch("SELECT id, status FROM orders WHERE id = ANY($1)", ids)
    }
    return {item: "".join(status[i] for i in order_ids) for item, order_ids in placed.items()}


def partitions_used(settings: Settings, placed: dict[str, list[str]]) -> set[int]:
    ours = {i for ids in placed.values() for i in ids}
    records = read_all(settings.kafka_bootstrap_servers, settings.kafka_order_topic, 20.0)
    return {r.partition for r in records if r.key in ours}


@pytest.fixture
async def relay(settings: Settings) -> AsyncIterator[Background]:
    await ensure_topics(settings)
    async with Background(run_relay, settings) as running:
        yield running


async def test_sequential_orders_are_decided_in_placement_order_while_the_worker_keeps_up(
    settings: Settings, client: httpx.AsyncClient, db: asyncpg.Connection, relay: Background
) -> None:
    """8 items with 2 units each, 6 orders each, placed one after another while the worker
    runs: every item CCRRRR. Catches decisions taken in whatever order a batch delivers its
    partitions (seen failing on the code before issue 19: e.g. `CRCRRR`, `RCCRRR`)."""
    async with Background(run_worker, settings):
        items = await stocked(client, "kept-up", UNITS, ITEMS)
        placed = await place_in_turn(client, items, ORDERS_PER_ITEM)
        decided = await decisions(db, placed)
    assert decided == dict.fromkeys(items, DUE)
    assert partitions_used(settings, placed) == set(range(settings.kafka_topic_partitions))


async def test_sequential_orders_are_decided_in_placement_order_after_the_worker_lagged(
    settings: Settings, client: httpx.AsyncClient, db: asyncpg.Connection, relay: Background
) -> None:
    """The issue's deterministic case: no worker while 8 items (2 units) get 6 orders each,
    then the worker catches up on the backlog, partition by partition: every item CCRRRR.
    Seen failing on the code before issue 19 (most items decided in partition order, e.g.
    `CRRRCR`, `RCRCRR`), and with the sweep of earlier orders removed from the batch
    statement (the batch's own orders sorted by placement only: `RRCRCR`-like results)."""
    items = await stocked(client, "lagged", UNITS, ITEMS)
    placed = await place_in_turn(client, items, ORDERS_PER_ITEM)
    assert partitions_used(settings, placed) == set(range(settings.kafka_topic_partitions))
    async with Background(run_worker, settings.model_copy(update={"worker_batch_size": 7})):
        decided = await decisions(db, placed)
    assert decided == dict.fromkeys(items, DUE)


async def test_three_orders_for_one_unit_confirm_the_first_and_reject_the_others_every_time(
    settings: Settings, client: httpx.AsyncClient, db: asyncpg.Connection, relay: Background
) -> None:
    """The issue's report: `PUT /stock/ink {"available": 1}`, three orders one after another;
    the first CONFIRMED, the other two REJECTED `out_of_stock` — the first round before the
    worker has joined its group (as on `make dev`), four more with it running. Seen failing
    on the code before issue 19 (`RRC` in the first round)."""
    first = await stocked(client, "ink", 1, 1)
    rounds = [await place_in_turn(client, first, 3)]
    async with Background(run_worker, settings):
        for _ in range(4):
            rounds.append(await place_in_turn(client, await stocked(client, "ink", 1, 1), 3))
        for placed in rounds:
            assert await decisions(db, placed) == dict.fromkeys(placed, "CRR")
    reasons = await db.fetch(
        "SELECT DISTINCT rejection_reason FROM orders WHERE status = 'REJECTED'"
    )
    assert [r["rejection_reason"] for r in reasons] == ["out_of_stock"]


async def test_two_workers_and_a_rebalance_on_a_backlog_keep_placement_order(
    settings: Settings, client: httpx.AsyncClient, db: asyncpg.Connection, relay: Background
) -> None:
    """Several workers: the backlog of 8 items, 6 orders each, is read by one worker in small
    batches while a second joins the group (a rebalance moves partitions mid-backlog), the two
    then deciding one item's orders side by side — every item CCRRRR, and nothing decided
    twice (one decision event per order). Seen failing on the code before issue 19."""
    items = await stocked(client, "rebalanced", UNITS, ITEMS)
    placed = await place_in_turn(client, items, ORDERS_PER_ITEM)
    small = settings.model_copy(update={"worker_batch_size": 3})
    async with Background(run_worker, small):
        await asyncio.sleep(0.5)
        async with Background(run_worker, small):
            decided = await decisions(db, placed)
    assert decided == dict.fromkeys(items, DUE)
    per_order = await db.fetch(
        "SELECT aggregate_id, count(*) AS n FROM outbox WHERE topic = $1 GROUP BY aggregate_id",
        settings.kafka_status_topic,
    )
    assert len(per_order) == ITEMS * ORDERS_PER_ITEM and {r["n"] for r in per_order} == {1}


def _status_message(settings: Settings) -> StatusMessage:
    def message(order: Order, cause: UUID) -> OutboxMessage:
        return event_message(
            OrderStatusChanged.of(order),
            topic=settings.kafka_status_topic,
            source="test",
            trace_headers={},
        )

    return message


async def test_a_long_line_of_earlier_orders_is_decided_in_slices_before_the_batch(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """A batch of the last 3 of an item's 12 orders (3 units), with at most 2 earlier orders
    per statement: the 9 earlier PENDING orders — and the batch's own earlier ones — are
    decided first, in slices of 2 (each its own transaction), then the batch's latest:
    `CCCRRRRRRRRR` in placement order, the decision events in that order too, the 3 events in
    the inbox (the others', when they come, change nothing). Catches a slice that is not the
    earliest (seen failing with the slice taken latest first: `RRRRRRRCRCCR`) and a batch
    settled before the line ahead of it."""
    await set_stock(db, "queue", 3)
    placed = [await insert_order(db, settings, item="queue", quantity=1) for _ in range(12)]
    events = [(UUID(message.event_id), order.id) for order, message in placed[-3:]]
    async with asyncio.timeout(30):
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            settled = await settle_created(
                conn,
                events,
                _status_message(settings),
                now=placed[-1][0].created_at,
                earlier_per_item=2,
            )
        finally:
            await conn.close()
    assert len(settled.ahead) == 11
    rows = await db.fetch(
        "SELECT o.id, o.status FROM orders o WHERE item = 'queue' ORDER BY placed_seq"
    )
    assert [r["id"] for r in rows] == [o.id for o, _ in placed]
    assert "".join(r["status"][0] for r in rows) == "CCC" + "R" * 9
    decided = await db.fetch(
        "SELECT aggregate_id FROM outbox WHERE topic = $1 ORDER BY id", settings.kafka_status_topic
    )
    assert [r["aggregate_id"] for r in decided] == [o.id for o, _ in placed]
    assert await db.fetchval("SELECT count(*) FROM inbox") == 3
    stock = await db.fetchrow("SELECT available, reserved FROM stock WHERE item = 'queue'")
    assert dict(stock) == {"available": 0, "reserved": 3}


STATUSES = ["PENDING", "CONFIRMED", "PENDING", "PENDING"]


async def test_orders_pending_before_the_migration_are_numbered_first_in_id_order(
    infra: Infra,
) -> None:
    """Migration 0005 under a running service: orders still PENDING from before get places
    below every number the sequence gives, in id (time) order; settled ones stay unnumbered
    (never looked up); an order inserted afterwards without naming the column — as the
    previous release does — gets the next number. Catches a backfill that numbers the old
    orders after the new ones (they would be decided after orders placed later)."""
    database = f"m5_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infra.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    dsn = infra.dsn(database)
    try:
        await asyncio.to_thread(upgrade_to, dsn, "0004")
        db = await asyncpg.connect(dsn.replace("+asyncpg", ""))
        try:
            insert = (
                "INSERT INTO orders (id, item, quantity, status, created_at, updated_at) "
                "VALUES ($1, 'old', 1, $2, now(), now())"
            )
            old = [Order.place("old", 1).id for _ in STATUSES]
            for order_id, status in zip(old, STATUSES, strict=True):
                await db.execute(insert, order_id, status)
            await asyncio.to_thread(upgrade_to, dsn, "head")
            newer = Order.place("old", 1).id
            await db.execute(insert, newer, "PENDING")
            places = dict(await db.fetch("SELECT id, placed_seq FROM orders"))
        finally:
            await db.close()
    finally:
        await drop_database(infra, database)
    pending = sorted(i for i, status in zip(old, STATUSES, strict=True) if status == "PENDING")
    assert [places[i] for i in pending] == [-3, -2, -1]
    assert places[old[STATUSES.index("CONFIRMED")]] is None
    assert places[newer] == 1
