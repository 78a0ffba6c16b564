"""What the live-stack test asks of the running api, so that every metric the dashboards and
rules name has samples: labelled counters only appear once incremented."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import httpx

from order_service.config import Settings
from order_service.messaging.kafka_client import create_producer
from tests.factories import produce_raw
from tests.netfault.proxy import DelayProxy

DECIDED = {"CONFIRMED", "REJECTED"}


async def traffic_wave(api: str, orders: int) -> int:
    """Orders through both endpoints, replays, conflicts, reads and validation failures.

    Returns the number of orders created (each must reach the worker)."""
    limit = asyncio.Semaphore(16)
    keyed = min(10, orders)
    seeds = orders // 20 + 1
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:

        async def post(path: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
            headers = {"Idempotency-Key": key} if key else {}
            async with limit:
                return await client.post(path, json=body, headers=headers)

        keys = [f"obs-{uuid.uuid4()}" for _ in range(keyed)]
        bodies = [{"item": f"book-{i}", "quantity": i % 5 + 1} for i in range(orders)]
        created = await asyncio.gather(
            *(post("/orders", b, keys[i] if i < keyed else None) for i, b in enumerate(bodies))
        )
        assert [r.status_code for r in created] == [201] * orders, created[0].text
        seed = await asyncio.gather(
            *(post("/order", {"item": "pen", "quantity": 1}) for _ in range(seeds))
        )
        assert {r.status_code for r in seed} == {200}
        replays = await asyncio.gather(*(post("/orders", bodies[i], keys[i]) for i in range(keyed)))
        assert {r.status_code for r in replays} == {201}
        conflicts = await asyncio.gather(
            *(post("/orders", {"item": "other", "quantity": 9}, keys[i]) for i in range(2))
        )
        assert {r.status_code for r in conflicts} == {422}
        invalid = await asyncio.gather(
            *(post("/orders", {"item": "book", "quantity": 0}) for _ in range(2)),
            *(post("/orders", {"item": "  ", "quantity": 1}) for _ in range(2)),
        )
        assert {r.status_code for r in invalid} == {422}
        for response in created[:5]:
            got = await client.get(f"/orders/{response.json()['id']}")
            assert got.status_code == 200
    return orders + seeds


async def lifecycle_wave(api: str, item: str, available: int = 3, orders: int = 5) -> int:
    """A stock-managed item with `available` units, `orders` orders of one unit each: that many
    confirmed (units reserved), the rest rejected out_of_stock; then one confirmed order is
    cancelled. Returns the orders created."""
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        stock = await client.put(f"/stock/{item}", json={"available": available})
        assert stock.status_code == 200, stock.text
        placed = await asyncio.gather(
            *(client.post("/orders", json={"item": item, "quantity": 1}) for _ in range(orders))
        )
        assert [r.status_code for r in placed] == [201] * orders, placed[0].text
        decided = [await _decided(client, r.json()["id"]) for r in placed]
        statuses = Counter(order["status"] for order in decided)
        assert statuses == {"CONFIRMED": available, "REJECTED": orders - available}, statuses
        confirmed = next(order for order in decided if order["status"] == "CONFIRMED")
        cancelled = await client.post(f"/orders/{confirmed['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    return orders


async def _decided(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        order: dict[str, Any] = (await client.get(f"/orders/{order_id}")).json()
        if order["status"] in DECIDED:
            return order
        await asyncio.sleep(0.2)
    raise AssertionError(f"order {order_id} still undecided after 60s")


async def database_outage(api: str, proxy: DelayProxy, bursts: int = 10) -> list[int]:
    """The api's link to PostgreSQL frozen (`proxy` paused) while writes arrive in bursts of 8,
    100 ms apart, and reads with them. Returns every status code: each must be 503, within the
    request timeout. The first bursts take the group-commit slots and hang; the later ones wait
    in the queue until their deadline (refused `deadline`) or find it full (`queue_full`); the
    reads time out (db_unavailable_total{op="read"})."""
    limits = httpx.Limits(max_connections=bursts * 10)
    proxy.pause()
    try:
        async with httpx.AsyncClient(base_url=api, timeout=30, limits=limits) as client:

            async def burst(index: int) -> list[httpx.Response]:
                await asyncio.sleep(index * 0.1)
                body = {"item": "outage", "quantity": 1}
                return await asyncio.gather(
                    *(client.post("/orders", json=body) for _ in range(8)),
                    client.get(f"/orders/{uuid.uuid4()}"),
                )

            answered = await asyncio.gather(*(burst(i) for i in range(bursts)))
    finally:
        proxy.resume()
    return [response.status_code for group in answered for response in group]


async def written_after_recovery(api: str, timeout_s: float = 30) -> int:
    """Retries one order with the same Idempotency-Key, as a client told 503 should, until it
    is written (the api reconnected); returns 1, the order created."""
    key = f"recovery-{uuid.uuid4()}"
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        while time.monotonic() < deadline:
            response = await client.post(
                "/orders",
                json={"item": "recovered", "quantity": 1},
                headers={"Idempotency-Key": key},
            )
            if response.status_code == 201:
                return 1
            await asyncio.sleep(0.3)
    raise AssertionError(f"the api wrote nothing for {timeout_s}s after the database came back")


async def send_poison_message(settings: Settings) -> None:
    producer = create_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.kafka_order_topic, b"{not an order", key=b"poison-message"
        )
    finally:
        await producer.stop()


async def send_unfamiliar_records(settings: Settings) -> None:
    """An event of a type this worker does not apply (skipped and counted) and a record with
    neither key nor value (dead-lettered trimmed: aiokafka refuses to send one whole)."""
    unknown = [
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", b"order.shipped"),
        ("ce_specversion", b"1.0"),
    ]
    await produce_raw(settings, [(b"unfamiliar-type", b"{}", unknown), (None, None, [])])
