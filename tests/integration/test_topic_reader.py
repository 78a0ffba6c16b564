"""`order-service events`: a topic read from its beginning on the real broker, every record
summarised (also one with neither key nor value), one order's events in their order, the last N,
a clear one-line error for a topic that does not exist, and `--follow`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from asyncio.subprocess import PIPE

import pytest

from order_service.config import Settings
from order_service.domain.order import Order
from order_service.messaging.kafka_client import ensure_topics
from order_service.messaging.topic_reader import UnknownTopic, read_topic
from tests.factories import Raw, order_created, produce, produce_raw

pytestmark = pytest.mark.integration


async def test_every_record_is_read_in_order_and_the_key_and_limit_select(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    orders = [Order.place(f"item-{i}", 1) for i in range(20)]
    # Three events per order, sent in one burst: the producer packs them into record batches.
    sent = [Raw.of(order_created(settings, order)) for _ in range(3) for order in orders]
    await produce(settings, sent)
    odd = [
        (None, None, []),
        (b"not-json", b"{oops", [("ce_type", b"order.created"), ("x-bin", b"\xff\xfe")]),
    ]
    await produce_raw(settings, odd)  # neither key nor value: aiokafka's send() refuses it

    events = await read_topic(settings, settings.kafka_order_topic)

    assert len(events) == len(sent) + len(odd)
    assert len({(e.partition, e.offset) for e in events}) == len(events)
    blank = [e for e in events if e.key is None]
    assert [(b.type, b.status, b.value_bytes) for b in blank] == [(None, None, 0)]
    broken = [e for e in events if e.key == "not-json"]
    assert [(b.type, b.status) for b in broken] == [("order.created", None)]

    first = str(orders[0].id)
    mine = await read_topic(settings, settings.kafka_order_topic, key=first)
    assert [e.key for e in mine] == [first] * 3
    assert len({e.partition for e in mine}) == 1
    assert [e.offset for e in mine] == sorted(e.offset for e in mine)
    assert {(e.type, e.status) for e in mine} == {("order.created", "PENDING")}

    last = await read_topic(settings, settings.kafka_order_topic, limit=5)
    assert last == events[-5:]

    again = await read_topic(settings, settings.kafka_order_topic)
    assert again == events  # nothing committed, nothing consumed away


async def test_a_topic_that_does_not_exist_is_named(settings: Settings) -> None:
    await ensure_topics(settings)
    with pytest.raises(UnknownTopic, match="topic no-such-topic does not exist"):
        await read_topic(settings, "no-such-topic")


async def test_the_command_prints_one_json_object_a_line_and_fails_clearly(
    settings: Settings,
) -> None:
    """The CLI end to end, as an operator runs it: the status topic by default."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_STATUS_TOPIC": settings.kafka_status_topic,
        "KAFKA_ORDER_TOPIC": settings.kafka_order_topic,
    }
    await ensure_topics(settings)
    await produce(settings, [Raw.of(order_created(settings, Order.place("cli", 1)))])

    def events(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "order_service", "events", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    status = await asyncio.to_thread(events, "--json")
    assert status.returncode == 0, status.stderr
    assert status.stdout == ""  # the status topic has nothing yet

    created = await asyncio.to_thread(events, settings.kafka_order_topic, "--json")
    assert created.returncode == 0, created.stderr
    lines = [json.loads(line) for line in created.stdout.splitlines()]
    assert [(x["type"], x["status"]) for x in lines] == [("order.created", "PENDING")]

    table = await asyncio.to_thread(events, settings.kafka_order_topic)
    assert table.returncode == 0, table.stderr
    assert "1 event(s)" in table.stdout and "order.created" in table.stdout

    missing = await asyncio.to_thread(events, "no-such-topic")
    assert missing.returncode == 1
    assert "order-service: topic no-such-topic does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


async def test_follow_prints_the_history_then_each_new_event_and_stops_on_ctrl_c(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    first, second = Order.place("before", 1), Order.place("after", 1)
    await produce(settings, [Raw.of(order_created(settings, first))])
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers}
    command = [sys.executable, "-m", "order_service", "events", settings.kafka_order_topic]
    follower = await asyncio.create_subprocess_exec(
        *command, "--follow", "--json", env=env, stdout=PIPE, stderr=PIPE
    )
    try:
        assert follower.stdout is not None
        history = json.loads(await asyncio.wait_for(follower.stdout.readline(), 30))
        assert history["key"] == str(first.id)
        await produce(settings, [Raw.of(order_created(settings, second))])
        arrived = json.loads(await asyncio.wait_for(follower.stdout.readline(), 30))
        assert (arrived["key"], arrived["type"]) == (str(second.id), "order.created")
    finally:
        follower.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(follower.wait(), 15)
    assert code == 0, (await follower.stderr.read()).decode() if follower.stderr else code
