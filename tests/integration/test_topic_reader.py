"""`order-service events`: a topic read from its beginning on the real broker, every record
summarised (also one with neither key nor value, or nested past any parser's depth), one order's
events in their order, the last N, a clear one-line error for a topic that does not exist,
`--follow`, and a topic that keeps receiving events while it is read.

Broker-agnostic (Tansu, Apache Kafka). On Apache Kafka 4.1.1 landed main failed every read
here: its unsubscribed consumer knew no partition of the topic ("No partitions are currently
assigned")."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from asyncio.subprocess import PIPE
from collections import defaultdict
from typing import Any

import pytest

from order_service.config import Settings
from order_service.domain.order import Order
from order_service.messaging.envelope import kafka_headers
from order_service.messaging.kafka_client import create_producer, ensure_topics
from order_service.messaging.topic_reader import UnknownTopic, read_topic
from tests.factories import Raw, order_created, produce, produce_raw

pytestmark = pytest.mark.integration


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_STATUS_TOPIC": settings.kafka_status_topic,
        "KAFKA_ORDER_TOPIC": settings.kafka_order_topic,
    }


def run_events(
    settings: Settings, *args: str, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "order_service", "events", *args]
    return subprocess.run(
        command, env=cli_env(settings), capture_output=True, text=True, timeout=timeout_s
    )


class Flow:
    """Orders that keep arriving while a test reads the topic. First a history: a few bursts,
    each a record batch of several records on every partition. Then, until the block ends, a
    burst every few tens of milliseconds on every partition but the first: partition 0 stays as
    the history left it, ending with a batch of several records. `acked` is every record the
    broker acknowledged, as (partition, offset)."""

    PER_PARTITION = 3  # records a burst sends to each partition, together: one batch
    PAUSE_S = 0.03  # the pace of the flow, not a wait for anything

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.acked: list[tuple[int, int]] = []
        self._producer = create_producer(settings, linger_ms=5)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def burst(self, partitions: range) -> None:
        sent = []
        for partition in partitions:
            for _ in range(self.PER_PARTITION):
                raw = Raw.of(order_created(self.settings, Order.place("flow", 1)))
                sent.append(
                    await self._producer.send(
                        self.settings.kafka_order_topic,
                        value=raw.value,
                        key=(raw.key or "").encode(),
                        headers=kafka_headers(raw.headers),
                        partition=partition,
                    )
                )
        self.acked.extend((m.partition, m.offset) for m in await asyncio.gather(*sent))

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.burst(range(1, self.settings.kafka_topic_partitions))
            await asyncio.sleep(self.PAUSE_S)

    async def __aenter__(self) -> Flow:
        await self._producer.start()
        for _ in range(4):
            await self.burst(range(self.settings.kafka_topic_partitions))
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            await self._producer.stop()


async def interrupt(follower: asyncio.subprocess.Process) -> tuple[int, str]:
    """Ctrl-C; its exit code and stderr. What it prints meanwhile is read (a full pipe would
    block it as no terminal does); killed, and the test failed, when it does not end."""
    follower.send_signal(signal.SIGINT)
    try:
        _, stderr = await asyncio.wait_for(follower.communicate(), 15)
    except TimeoutError:
        follower.kill()
        await follower.wait()
        raise AssertionError("events --follow did not end on Ctrl-C") from None
    assert follower.returncode is not None
    return follower.returncode, stderr.decode()


def by_partition(lines: list[dict[str, Any]]) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = defaultdict(list)
    for line in lines:
        offsets[line["partition"]].append(line["offset"])
    return dict(offsets)


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
    await ensure_topics(settings)
    await produce(settings, [Raw.of(order_created(settings, Order.place("cli", 1)))])

    def events(*args: str) -> subprocess.CompletedProcess[str]:
        return run_events(settings, *args)

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
    command = [sys.executable, "-m", "order_service", "events", settings.kafka_order_topic]
    follower = await asyncio.create_subprocess_exec(
        *command, "--follow", "--json", env=cli_env(settings), stdout=PIPE, stderr=PIPE
    )
    try:
        assert follower.stdout is not None
        history = json.loads(await asyncio.wait_for(follower.stdout.readline(), 30))
        assert history["key"] == str(first.id)
        await produce(settings, [Raw.of(order_created(settings, second))])
        arrived = json.loads(await asyncio.wait_for(follower.stdout.readline(), 30))
        assert (arrived["key"], arrived["type"]) == (str(second.id), "order.created")
    finally:
        code, stderr = await interrupt(follower)
    assert code == 0, stderr


async def test_a_topic_that_keeps_receiving_events_is_read_up_to_where_it_was(
    settings: Settings,
) -> None:
    """Issue 20.1: with orders flowing, `events` returns, and shows every record that was there
    when it began — each once, no gap: a partition's offsets from 0 up in order. Tansu reports a
    partition's end offset as its last record batch's base offset + 1: partition 0's last
    batch (of several records, none added during the read) must be shown whole.

    Seen failing on the reader that stopped only after an empty fetch (landed main): the flow
    never lets a fetch come back empty, and the command was still running when killed at 30 s
    (subprocess.TimeoutExpired). Seen failing on Tansu on a variant that drops the records at
    or past the end offsets taken at the start: partition 0's last 2 records were missing."""
    await ensure_topics(settings)
    async with Flow(settings) as flow:
        present = list(flow.acked)  # acknowledged before the command starts: there at its start
        done = await asyncio.to_thread(
            run_events, settings, settings.kafka_order_topic, "--json", timeout_s=30
        )
        during = len(flow.acked)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    shown = {(x["partition"], x["offset"]) for x in lines}
    assert len(shown) == len(lines)  # each record once
    assert set(present) <= shown, sorted(set(present) - shown)
    for partition, offsets in by_partition(lines).items():
        assert offsets == list(range(len(offsets))), partition  # in offset order, no gap
    print(
        f"\n[events while flowing] {len(present)} there at start, {len(lines)} shown, "
        f"{during - len(present)} sent during the read"
    )


async def test_follow_on_a_topic_that_keeps_receiving_events_prints_its_history_then_goes_on(
    settings: Settings,
) -> None:
    """Issue 20.1 with `--follow`: every record there at its start is printed (the history
    phase ends on a busy topic), then the records that keep coming, each once and in offset
    order per partition, and Ctrl-C ends it with exit 0.

    Seen failing on the reader that stopped only after an empty fetch (landed main): not one
    line in 30 s (TimeoutError waiting for the first)."""
    await ensure_topics(settings)
    command = [sys.executable, "-m", "order_service", "events", settings.kafka_order_topic]
    async with Flow(settings) as flow:
        present = set(flow.acked)
        follower = await asyncio.create_subprocess_exec(
            *command, "--follow", "--json", env=cli_env(settings), stdout=PIPE, stderr=PIPE
        )
        lines: list[dict[str, Any]] = []
        try:
            assert follower.stdout is not None
            async with asyncio.timeout(30):
                # Until all that was there has been printed, and then some of what came after.
                while not present <= {(x["partition"], x["offset"]) for x in lines} or (
                    len(lines) < len(present) + 10
                ):
                    lines.append(json.loads(await follower.stdout.readline()))
        finally:
            code, stderr = await interrupt(follower)
    assert code == 0, stderr
    for partition, offsets in by_partition(lines).items():
        assert offsets == list(range(len(offsets))), partition  # in order, each once, no gap


async def test_the_command_summarises_a_record_nested_past_any_parsers_depth(
    settings: Settings,
) -> None:
    """Issue 20.2: a value of 3,000 `[` (what the worker dead-letters with its value) and
    others nested as deep get a summary like any record; the command exits 0.

    Seen failing on `summarise` parsing with the standard library's json (landed main): exit 1,
    `RecursionError: maximum recursion depth exceeded while decoding a JSON array`."""
    await ensure_topics(settings)
    dead = [("dlq.error.type", b"not_json"), ("ce_type", b"order.created")]
    nested = [
        (b"arrays", b"[" * 3000, dead),
        (b"objects", b'{"status":' * 3000 + b"1" + b"}" * 3000, dead),
        (b"closed", b"[" * 100_000 + b"]" * 100_000, []),
    ]
    await produce_raw(settings, nested)

    done = await asyncio.to_thread(run_events, settings, settings.kafka_order_topic, "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(x["key"], x["status"], x["value_bytes"]) for x in lines] == [
        (k.decode(), None, len(v)) for k, v, _ in nested
    ]
    assert [x["dead_letter_reason"] for x in lines] == ["not_json", "not_json", None]
    table = await asyncio.to_thread(run_events, settings, settings.kafka_order_topic)
    assert table.returncode == 0, table.stderr
    assert "3 event(s)" in table.stdout


async def test_one_orders_events_are_listed_in_offset_order_whatever_their_times(
    settings: Settings,
) -> None:
    """Issue 20.3: a cancellation stamped before the confirmation it follows (as landed main
    could write it, and the topic keeps for its retention) is still listed after it — one
    order's events share a partition, and its offsets are the order they happened in.

    Seen failing on the reader that sorted by `ce_time` alone (landed main): `--key` listed
    order.cancelled before order.confirmed."""
    await ensure_topics(settings)
    order = Order.place("late", 1)

    def event(kind: str, status: str, time: str) -> Raw:
        headers = {"ce_type": kind, "ce_time": time}
        return Raw(str(order.id), json.dumps({"status": status}).encode(), headers)

    other = Order.place("other", 1)
    await produce(
        settings,
        [
            event("order.created", "PENDING", "2026-12-01T12:00:00.000000+00:00"),
            event("order.confirmed", "CONFIRMED", "2026-12-01T12:00:02.000000+00:00"),
            event("order.cancelled", "CANCELLED", "2026-12-01T12:00:01.000000+00:00"),
            Raw.of(order_created(settings, other)),
        ],
    )

    mine = await read_topic(settings, settings.kafka_order_topic, key=str(order.id))
    assert [e.type for e in mine] == ["order.created", "order.confirmed", "order.cancelled"]
    assert [e.offset for e in mine] == sorted(e.offset for e in mine)
    everything = await read_topic(settings, settings.kafka_order_topic)
    assert [e.type for e in everything if e.key == str(order.id)] == [e.type for e in mine]

    done = await asyncio.to_thread(
        run_events, settings, settings.kafka_order_topic, "--key", str(order.id), "--json"
    )
    assert done.returncode == 0, done.stderr
    listed = [json.loads(line)["type"] for line in done.stdout.splitlines()]
    assert listed == ["order.created", "order.confirmed", "order.cancelled"]
