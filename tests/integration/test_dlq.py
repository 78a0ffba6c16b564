"""G6 (poison isolation): bad messages reach the DLQ with their story, good ones keep flowing."""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import orjson
import pytest

from order_service.config import Settings
from order_service.domain.order import Order
from order_service.messaging.dlq import replay_dlq
from order_service.messaging.kafka_client import ensure_topics
from order_service.messaging.worker import run_worker
from tests.factories import Background, Raw, insert_order, order_created, produce
from tests.integration.test_worker import eventually
from tests.kafka_reader import read_all, wait_for_records

pytestmark = pytest.mark.integration


async def confirmed(db: asyncpg.Connection, order: Order) -> bool:
    return bool(
        await db.fetchval("SELECT status FROM orders WHERE id = $1", order.id) == "CONFIRMED"
    )


async def test_poison_messages_go_to_the_dlq_with_headers_and_the_partition_keeps_moving(
    settings: Settings, db: asyncpg.Connection
) -> None:
    await ensure_topics(settings)
    order, good = await insert_order(db, settings)
    ghost = order_created(settings, Order.place("never stored", 1))
    template = order_created(settings, Order.place("template", 1))  # fresh ce_id each poison
    no_id = {k: v for k, v in template.headers.items() if k != "ce_id"}
    poison = [
        Raw("a", b"{not json", order_created(settings, order).headers),
        Raw("b", orjson.dumps({"id": "not-a-uuid"}), template.headers),
        Raw("c", template.payload, no_id),
        Raw.of(ghost),
    ]
    await produce(settings, [*poison, Raw.of(good)], partition=0)

    async with Background(run_worker, settings):
        await eventually(lambda: confirmed(db, order))
        dead = await wait_for_records(settings.kafka_bootstrap_servers, settings.dlq_topic, 4)

    assert [r.headers["dlq.error.type"] for r in dead] == [
        "not_json",
        "invalid_schema",
        "missing_header",
        "unknown_order",
    ]
    for offset, (record, sent) in enumerate(zip(dead, poison, strict=True)):
        assert record.key == sent.key
        assert record.value == sent.value
        assert record.headers["dlq.original.topic"] == settings.kafka_order_topic
        assert record.headers["dlq.original.partition"] == "0"
        assert record.headers["dlq.original.offset"] == str(offset)
        assert record.headers["dlq.attempts"] == "1"
        assert record.headers["dlq.error.message"]
        assert datetime.fromisoformat(record.headers["dlq.failed_at"]).tzinfo is not None
        assert {k: v for k, v in record.headers.items() if not k.startswith("dlq.")} == sent.headers


async def test_an_event_that_keeps_failing_is_dead_lettered_after_bounded_attempts(
    settings: Settings, db: asyncpg.Connection
) -> None:
    await ensure_topics(settings)
    cursed, cursed_msg = await insert_order(db, settings, item="cursed")
    order, good = await insert_order(db, settings)
    await db.execute(f"""
        CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.order_id = '{cursed.id}' THEN RAISE EXCEPTION 'refused by test'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse BEFORE INSERT ON inbox FOR EACH ROW EXECUTE FUNCTION refuse();
        """)
    await produce(settings, [Raw.of(cursed_msg), Raw.of(good)], partition=0)

    async with Background(run_worker, settings):
        await eventually(lambda: confirmed(db, order))
        [dead] = await wait_for_records(settings.kafka_bootstrap_servers, settings.dlq_topic, 1)

    assert dead.headers["ce_id"] == cursed_msg.event_id
    assert dead.headers["dlq.error.type"] == "processing_error"
    assert dead.headers["dlq.attempts"] == str(settings.worker_max_attempts)
    assert "refused by test" in dead.headers["dlq.error.message"]
    assert not await confirmed(db, cursed)


async def test_replay_dlq_republishes_dead_letters_once_and_dry_run_only_counts(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    ghosts = [Order.place(f"late-{i}", 1) for i in range(2)]
    messages = [order_created(settings, g) for g in ghosts]
    await produce(settings, [Raw.of(m) for m in messages])
    async with Background(run_worker, settings):
        await wait_for_records(settings.kafka_bootstrap_servers, settings.dlq_topic, 2)

    assert await replay_dlq(settings, dry_run=True) == 2
    assert await replay_dlq(settings, dry_run=True) == 2  # a dry run moves nothing
    assert await replay_dlq(settings, limit=1) == 1
    assert await replay_dlq(settings) == 1
    assert await replay_dlq(settings) == 0

    records = await asyncio.to_thread(
        read_all, settings.kafka_bootstrap_servers, settings.kafka_order_topic
    )
    assert not any(k.startswith("dlq.") for r in records for k in r.headers)
    assert sorted(r.headers["ce_id"] for r in records) == sorted([m.event_id for m in messages] * 2)
