"""G6 against a real worker process: hostile messages go to the DLQ, the partition keeps moving,
and `order-service dlq replay` (the CLI) brings a dead letter back once its cause is fixed."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
import orjson

from order_service.config import Settings
from order_service.domain.order import Order
from order_service.messaging.kafka_client import ensure_topics
from tests.e2e.processes import Stack, settings_env
from tests.factories import Raw, insert_order, insert_order_row, order_created, produce
from tests.kafka_reader import wait_for_records

HUGE = 900 * 1024


async def status_of(db: asyncpg.Connection, order: Order) -> str | None:
    value = await db.fetchval("SELECT status FROM orders WHERE id = $1", order.id)
    return str(value) if value is not None else None


async def until_confirmed(db: asyncpg.Connection, order: Order, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while await status_of(db, order) != "CONFIRMED":
            await asyncio.sleep(0.1)


async def test_hostile_messages_are_dead_lettered_with_reasons_and_replay_fixes_the_unknown_order(
    stack: Stack, settings: Settings, db: asyncpg.Connection
) -> None:
    await ensure_topics(settings)
    order, good = await insert_order(db, settings, item="after the poison")
    ghost = Order.place("not yet stored", 3)
    ghost_event = order_created(settings, ghost)
    headers = order_created(settings, Order.place("template", 1)).headers
    hostile = [
        Raw("not-json", b"\xff\xfe{{{ definitely not json", headers),
        Raw("wrong-schema", orjson.dumps({"id": str(ghost.id), "quantity": "many"}), headers),
        Raw.of(ghost_event),
        Raw("huge", b'{"pad": "' + b"x" * HUGE + b'"}', headers),
        Raw("no-headers", good.payload, {}),
    ]
    expected = ["not_json", "invalid_schema", "unknown_order", "oversized", "missing_header"]
    await produce(settings, [*hostile, Raw.of(good)], partition=0)

    stack.start("worker")
    await until_confirmed(db, order)
    dead = await wait_for_records(settings.kafka_bootstrap_servers, settings.dlq_topic, 5, 30)

    by_offset = {int(r.headers["dlq.original.offset"]): r for r in dead}
    assert [by_offset[i].headers["dlq.error.type"] for i in range(5)] == expected
    assert all(r.headers["dlq.error.message"] for r in dead)
    assert len(by_offset[3].value) > HUGE
    assert await status_of(db, ghost) is None

    # Fix the cause (the order now exists), then replay through the CLI as an operator would.
    await insert_order_row(db, ghost)
    replay = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "order_service", "dlq", "replay"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr[-2000:]
    assert "replayed 5 event(s)" in replay.stdout
    await until_confirmed(db, ghost)
    # The still-broken ones come back to the DLQ; the repaired one does not.
    again = await wait_for_records(settings.kafka_bootstrap_servers, settings.dlq_topic, 9, 30)
    assert sorted(r.headers["dlq.error.type"] for r in again[5:]) == sorted(
        set(expected) - {"unknown_order"}
    )
    assert await db.fetchval("SELECT count(*) FROM inbox WHERE order_id = $1", ghost.id) == 1
