"""G6, G10: no record can crash the worker — against a real worker process and real records.

Records no producer of ours writes, but any producer on the topic could: neither key nor
value (aiokafka refuses to *send* one: the old worker crashed on its DLQ send, and so did the
next worker to take the partition), a tombstone, a value over the producer's 1 MB request
limit (the old worker retried its DLQ send forever), headers that are not UTF-8, headers
without a value, a flood of headers, an unknown event type, a newer major version. Each one
is dead-lettered (trimmed where it must be) or skipped, the worker stays up, and the event
after them is applied: the partition moves on and its offset is committed past them all.
"""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
from aiokafka import TopicPartition

from order_service.config import Settings
from order_service.messaging.kafka_client import create_consumer, ensure_topics
from tests.e2e.processes import Stack
from tests.factories import insert_order, order_created, produce_raw
from tests.kafka_admin import set_topic_config
from tests.kafka_reader import wait_for_records
from tests.scrape import sample, total

BIG = 1_200_000  # over aiokafka's default max_request_size (1 MiB): the DLQ copy cannot fit


async def test_no_record_crashes_the_worker_and_the_partition_moves_on(
    stack: Stack, settings: Settings, db: asyncpg.Connection
) -> None:
    await ensure_topics(settings)
    # A topic an operator opened to larger records than the DLQ's (Kafka's default is 1 MB):
    # what lands on it may not fit the dead-letter copy.
    await set_topic_config(
        settings.kafka_bootstrap_servers,
        settings.kafka_order_topic,
        {"max.message.bytes": "2000000"},
    )
    order, good = await insert_order(db, settings, item="after the hostile ones")
    valid = [(k, v.encode()) for k, v in order_created(settings, order).headers.items()]
    template = order_created(settings, order)  # a fresh ce_id for each hostile record
    newer = {**orjson.loads(template.payload), "schema_version": 2}
    hostile: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
        (None, None, [(k, v.encode()) for k, v in order_created(settings, order).headers.items()]),
        (None, None, []),  # nothing at all
        (b"tomb", None, [(k, v.encode()) for k, v in template.headers.items()]),
        (b"big", b"x" * BIG, [(k, v.encode()) for k, v in template.headers.items()]),
        (b"utf", template.payload, [*valid[:-1], ("x-binary", b"\xff\xfe\xfd")]),
        (b"none-header", template.payload, [("ce_id", b"")]),
        (
            b"unknown-type",
            template.payload,
            [
                *((k, v) for k, v in valid if k not in ("ce_type", "ce_id")),
                ("ce_type", b"x.y"),
                ("ce_id", order_created(settings, order).event_id.encode()),
            ],
        ),
        (
            b"newer-major",
            orjson.dumps(newer),
            [
                (k, v.replace(b".v1.json", b".v2.json") if k == "ce_dataschema" else v)
                for k, v in (
                    (k, v.encode()) for k, v in order_created(settings, order).headers.items()
                )
            ],
        ),
    ]
    flood = [(f"x-junk-{i}", b"j" * 50) for i in range(300)]
    last = (good.key.encode(), good.payload, [*valid, *flood])
    await produce_raw(settings, [*hostile, last])

    worker = stack.start("worker")
    async with asyncio.timeout(40):
        while await db.fetchval("SELECT status FROM orders WHERE id = $1", order.id) != "CONFIRMED":
            assert worker.process.poll() is None, worker.output()[-3000:]
            await asyncio.sleep(0.2)
    dead = await wait_for_records(settings.kafka_bootstrap_servers, settings.dlq_topic, 6, 30)
    by_offset = {int(r.headers["dlq.original.offset"]): r for r in dead}
    assert sorted(by_offset) == [0, 1, 2, 3, 4, 5], sorted(by_offset)
    reasons = [by_offset[i].headers["dlq.error.type"] for i in range(6)]
    assert reasons == [
        "tombstone",  # neither key nor value, an event's headers
        "missing_header",  # neither key nor value, no headers at all
        "tombstone",
        "oversized",
        "invalid_header",  # not UTF-8
        "invalid_header",  # an empty ce_id
    ], reasons
    for offset in (0, 1, 3):  # no key and no value, twice; too big for the DLQ
        assert by_offset[offset].headers["dlq.trimmed"] == "true"
        assert by_offset[offset].value == b""
    assert by_offset[3].headers["dlq.original.value_bytes"] == str(BIG)
    assert by_offset[4].value == template.payload  # whole where it fits
    assert sample(worker.url, "worker_events_skipped_total", reason="unknown_type") == 1
    assert sample(worker.url, "worker_events_skipped_total", reason="unsupported_version") == 1
    # Every trimmed copy counted: the two without key and value too (seen failing: only the
    # oversized one was, 1 instead of 3).
    assert total(worker.url, "worker_dead_letters_trimmed_total") == 3

    consumer = create_consumer(settings)
    await consumer.start()
    try:
        committed = await consumer.committed(TopicPartition(settings.kafka_order_topic, 0))
    finally:
        await consumer.stop()
    assert committed == len(hostile) + 1  # past every hostile record and the good one
    assert worker.process.poll() is None
    assert "Traceback" not in worker.output()
