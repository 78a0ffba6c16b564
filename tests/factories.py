"""Arrange data exactly as the API writes it: an order and its outbox row in one transaction."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Callable
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord

from order_service.config import Settings
from order_service.domain.events import OrderCreated, OrderStatusChanged
from order_service.domain.order import Order, RejectionReason
from order_service.messaging.envelope import (
    Event,
    kafka_headers,
    order_created_message,
    wire_headers,
)
from order_service.messaging.kafka_client import client_options, create_producer
from order_service.persistence.outbox_message import OutboxMessage

_INSERT_ORDER = """
INSERT INTO orders (id, item, quantity, status, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""
_INSERT_OUTBOX = """
INSERT INTO outbox (event_id, aggregate_id, topic, message_key, payload, headers, lane)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
"""


def order_created(
    settings: Settings,
    order: Order,
    *,
    trace_headers: dict[str, str] | None = None,
    extra_payload: dict[str, Any] | None = None,
) -> OutboxMessage:
    """The outbox message of a fresh `order.created` event (a new event id each call)."""
    message = order_created_message(
        OrderCreated.of(order),
        topic=settings.kafka_order_topic,
        source=settings.service_name,
        trace_headers=trace_headers or {},
    )
    if extra_payload:
        payload = {**orjson.loads(message.payload), **extra_payload}
        message = dataclasses.replace(message, payload=orjson.dumps(payload))
    return message


def _placed() -> Order:
    return Order.place("book", 2)


# One event of every kind the code produces, made the way the domain makes them (fresh ids on
# each call), for the tests that hold them against schemas/ and docs/asyncapi.yaml.
EVENT_CASES: dict[str, Callable[[], Event]] = {
    "created": lambda: OrderCreated.of(_placed()),
    "confirmed_with_stock": lambda: OrderStatusChanged.of(_placed().confirm(reserved=True)),
    "confirmed_unmanaged": lambda: OrderStatusChanged.of(_placed().confirm(reserved=False)),
    "rejected": lambda: OrderStatusChanged.of(_placed().reject(RejectionReason.OUT_OF_STOCK)),
    "cancelled_pending": lambda: OrderStatusChanged.of(_placed().cancel()),
    "cancelled_confirmed": lambda: OrderStatusChanged.of(_placed().confirm(reserved=True).cancel()),
}


async def insert_outbox(conn: asyncpg.Connection, message: OutboxMessage) -> None:
    await conn.execute(
        _INSERT_OUTBOX,
        message.event_id,
        message.aggregate_id,
        message.topic,
        message.key,
        message.payload,
        orjson.dumps(message.headers).decode(),
        message.lane,
    )


async def insert_order(
    conn: asyncpg.Connection,
    settings: Settings,
    *,
    item: str = "book",
    quantity: int = 2,
    trace_headers: dict[str, str] | None = None,
) -> tuple[Order, OutboxMessage]:
    """One order and its `order.created` outbox row, committed together (as G1 demands)."""
    order = Order.place(item, quantity)
    message = order_created(settings, order, trace_headers=trace_headers)
    async with conn.transaction():
        await insert_order_row(conn, order)
        await insert_outbox(conn, message)
    return order, message


async def insert_order_row(conn: asyncpg.Connection, order: Order) -> None:
    await conn.execute(
        _INSERT_ORDER,
        order.id,
        order.item,
        order.quantity,
        order.status.value,
        order.created_at,
        order.updated_at,
    )


async def insert_orders(
    conn: asyncpg.Connection, settings: Settings, count: int
) -> list[tuple[Order, OutboxMessage]]:
    return [await insert_order(conn, settings, item=f"item-{i}") for i in range(count)]


async def set_stock(conn: asyncpg.Connection, item: str, available: int) -> None:
    """Make `item` stock-managed with `available` units, none reserved (as PUT /stock does)."""
    await conn.execute(
        "INSERT INTO stock (item, available, reserved) VALUES ($1, $2, 0) "
        "ON CONFLICT (item) DO UPDATE SET available = EXCLUDED.available, reserved = 0",
        item,
        available,
    )


@dataclasses.dataclass(frozen=True)
class Effects:
    """Everything the worker's effect leaves behind, to see a second application of an event:
    the item's stock, the status-event outbox rows of every order (raw rows, in outbox order),
    the inbox rows, and each order's status and updated_at."""

    available: int
    reserved: int
    status_events: dict[UUID, list[str]]
    inbox_rows: int
    orders: dict[UUID, tuple[str, datetime.datetime]]
    confirmed_units: int

    def assert_applied_once(self, stock_set: int) -> None:
        """G5 + G9 for settled orders: one status event per order, naming its status; the
        reserved units are exactly those of the confirmed orders, none made up or lost."""
        for order_id, (status, _) in self.orders.items():
            if status == "PENDING":
                continue
            assert self.status_events.get(order_id) == [f"order.{status.lower()}"], (
                order_id,
                status,
                self.status_events.get(order_id),
            )
        assert self.available >= 0
        assert self.reserved == self.confirmed_units, (self.reserved, self.confirmed_units)
        assert self.available + self.reserved == stock_set, (self.available, self.reserved)


async def effects(conn: asyncpg.Connection, settings: Settings, item: str) -> Effects:
    stock = await conn.fetchrow("SELECT available, reserved FROM stock WHERE item = $1", item)
    assert stock is not None, f"{item} is not stock-managed"
    status_events: dict[UUID, list[str]] = {}
    for row in await conn.fetch(
        "SELECT aggregate_id, headers->>'ce_type' AS type FROM outbox WHERE topic = $1 ORDER BY id",
        settings.kafka_status_topic,
    ):
        status_events.setdefault(row["aggregate_id"], []).append(row["type"])
    inbox_rows = await conn.fetchval("SELECT count(*) FROM inbox")
    orders = {
        r["id"]: (r["status"], r["updated_at"])
        for r in await conn.fetch("SELECT id, status, updated_at FROM orders")
    }
    confirmed = await conn.fetchval(
        "SELECT COALESCE(sum(quantity), 0) FROM orders "
        "WHERE item = $1 AND status = 'CONFIRMED' AND reserved",
        item,
    )
    return Effects(
        stock["available"],
        stock["reserved"],
        status_events,
        int(inbox_rows),
        orders,
        int(confirmed),
    )


class Background:
    """A relay or worker `run_*` coroutine running as a task until `stop()`."""

    def __init__(self, run: Any, settings: Settings, **kwargs: Any) -> None:
        self.stop_event = asyncio.Event()
        self.settings = settings
        self.task = asyncio.create_task(run(settings, stop=self.stop_event, **kwargs))

    async def stop(self, timeout_s: float | None = None) -> float:
        """Set stop and wait for the run to return; returns how long it took."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.stop_event.set()
        async with asyncio.timeout(timeout_s or self.settings.shutdown_timeout_s + 5):
            await self.task
        return loop.time() - started

    async def __aenter__(self) -> Background:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self.task.done():
            await self.stop()
        elif not self.task.cancelled() and self.task.exception() is not None:
            raise self.task.exception()  # type: ignore[misc]


@dataclasses.dataclass(frozen=True)
class Raw:
    """A Kafka message as a test wants it on the wire, well-formed or not."""

    key: str | None
    value: bytes | None
    headers: dict[str, str]

    @classmethod
    def of(cls, message: OutboxMessage, source: str = "order-service") -> Raw:
        """As the relay sends it (`source`: the relay's SERVICE_NAME)."""
        return cls(message.key, message.payload, wire_headers(message, source))


async def produce(settings: Settings, messages: list[Raw], *, partition: int | None = None) -> None:
    """Send in order and wait for every acknowledgement (topics must exist)."""
    producer = create_producer(settings)
    await producer.start()
    try:
        futures = [
            await producer.send(
                settings.kafka_order_topic,
                value=m.value,
                key=m.key.encode() if m.key is not None else None,
                headers=kafka_headers(m.headers),
                partition=partition,
            )
            for m in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def consumer_record(
    headers: list[tuple[str, bytes]],
    *,
    topic: str = "orders.created",
    partition: int = 0,
    offset: int = 0,
    key: bytes = b"k",
    value: bytes = b"{}",
) -> ConsumerRecord:
    """A record as aiokafka hands it to the worker, for the pure functions that read one."""
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=headers,
    )


async def produce_raw(
    settings: Settings, records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]
) -> None:
    """Send records exactly as given, to partition 0, in order (a batch per record: a record
    with neither key nor value can only be written this way with aiokafka)."""
    producer = AIOKafkaProducer(
        **client_options(settings), enable_idempotence=False, max_request_size=4 * 2**20
    )
    await producer.start()
    try:
        for key, value, headers in records:
            batch = producer.create_batch()
            appended = batch.append(key=key, value=value, timestamp=None, headers=headers)
            assert appended is not None
            delivery = await producer.send_batch(batch, settings.kafka_order_topic, partition=0)
            await delivery
    finally:
        await producer.stop()
