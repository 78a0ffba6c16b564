"""The order lifecycle against the real database and broker: stock, reservation, rejection,
cancellation and the status events on `orders.status` (DESIGN.md §3, §4; G4, G9)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

import asyncpg
import httpx
import jsonschema
import orjson
import pytest

from order_service.config import Settings
from order_service.messaging.kafka_client import ensure_topics
from order_service.messaging.relay import run_relay
from order_service.messaging.worker import run_worker
from tests.factories import Background
from tests.kafka_reader import Record, read_all, wait_for_records

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STATUS_SCHEMA = json.loads((ROOT / "schemas" / "order.status.v1.json").read_text())
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def settled(client: httpx.AsyncClient, order_id: str, timeout_s: float = 20) -> dict:
    async with asyncio.timeout(timeout_s):
        while True:
            order = (await client.get(f"/orders/{order_id}")).json()
            if order["status"] != "PENDING":
                return dict(order)
            await asyncio.sleep(0.05)


def events_by_order(records: list[Record]) -> dict[str, list[str]]:
    seen: set[str] = set()
    by_order: dict[str, list[str]] = defaultdict(list)
    for record in records:  # partition by partition, in offset order
        if record.headers["ce_id"] in seen:
            continue
        seen.add(record.headers["ce_id"])
        assert record.key is not None
        by_order[record.key].append(record.headers["ce_type"])
    return dict(by_order)


async def test_one_unit_two_orders_one_confirmed_one_rejected_then_a_cancel_gives_it_back(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    """The issue's "done when", end to end in one process set: stock, two orders, a cancel,
    and three status events — each order's in the order of its transitions."""
    await ensure_topics(settings)
    assert (await client.put("/stock/book", json={"available": 1})).json() == {
        "item": "book",
        "available": 1,
        "reserved": 0,
    }
    async with Background(run_worker, settings), Background(run_relay, settings):
        first = (await client.post("/orders", json={"item": "book", "quantity": 1})).json()
        first = await settled(client, first["id"])
        second = (await client.post("/orders", json={"item": "book", "quantity": 1})).json()
        second = await settled(client, second["id"])
        assert first["status"] == "CONFIRMED" and first["rejection_reason"] is None
        assert second["status"] == "REJECTED" and second["rejection_reason"] == "out_of_stock"
        assert (await client.get("/stock/book")).json() == {
            "item": "book",
            "available": 0,
            "reserved": 1,
        }

        cancelled = await client.post(f"/orders/{first['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
        assert (await client.get("/stock/book")).json()["available"] == 1
        records = await wait_for_records(
            settings.kafka_bootstrap_servers, settings.kafka_status_topic, 3
        )

    assert events_by_order(records) == {
        first["id"]: ["order.confirmed", "order.cancelled"],
        second["id"]: ["order.rejected"],
    }
    partitions = defaultdict(set)
    for record in records:
        partitions[record.key].add(record.partition)
        jsonschema.validate(orjson.loads(record.value), STATUS_SCHEMA)
        assert record.headers["ce_dataschema"] == STATUS_SCHEMA["$id"]
    assert all(len(p) == 1 for p in partitions.values())  # an order's events on one partition
    final = {orjson.loads(r.value)["id"]: orjson.loads(r.value) for r in records}
    assert final[second["id"]]["rejection_reason"] == "out_of_stock"


async def test_an_item_without_stock_is_confirmed_as_the_seed_expects(
    settings: Settings, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await ensure_topics(settings)
    async with Background(run_worker, settings), Background(run_relay, settings):
        placed = (await client.post("/order", json={"item": "pen", "quantity": 2})).json()
        order = await settled(client, placed["order_id"])
    assert order["status"] == "CONFIRMED"
    assert (await client.get("/stock/pen")).status_code == 404
    assert (
        await db.fetchval("SELECT reserved FROM orders WHERE id = $1::uuid", order["id"]) is False
    )


async def test_a_pending_order_cancelled_before_the_worker_sees_it_reserves_nothing(
    settings: Settings, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await ensure_topics(settings)
    await client.put("/stock/lamp", json={"available": 5})
    order = (await client.post("/orders", json={"item": "lamp", "quantity": 2})).json()
    cancel = await client.post(f"/orders/{order['id']}/cancel")
    assert cancel.json()["status"] == "CANCELLED"

    async with Background(run_worker, settings), Background(run_relay, settings):
        async with asyncio.timeout(20):
            while not await db.fetchval("SELECT count(*) FROM inbox"):
                await asyncio.sleep(0.05)
    assert (await client.get(f"/orders/{order['id']}")).json()["status"] == "CANCELLED"
    assert (await client.get("/stock/lamp")).json() == {
        "item": "lamp",
        "available": 5,
        "reserved": 0,
    }
    types = await db.fetch("SELECT headers->>'ce_type' AS t FROM outbox ORDER BY id")
    assert [r["t"] for r in types] == ["order.created", "order.cancelled"]


async def test_cancel_answers_200_again_409_for_rejected_404_for_unknown_and_honours_keys(
    settings: Settings, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await ensure_topics(settings)
    await client.put("/stock/rare", json={"available": 0})
    keep = (await client.post("/orders", json={"item": "plain", "quantity": 1})).json()
    rare = (await client.post("/orders", json={"item": "rare", "quantity": 1})).json()
    async with Background(run_worker, settings), Background(run_relay, settings):
        assert (await settled(client, rare["id"]))["status"] == "REJECTED"
        assert (await settled(client, keep["id"]))["status"] == "CONFIRMED"

    headers = {"Idempotency-Key": "cancel-1"}
    first = await client.post(f"/orders/{keep['id']}/cancel", headers=headers)
    replay = await client.post(f"/orders/{keep['id']}/cancel", headers=headers)
    again = await client.post(f"/orders/{keep['id']}/cancel")
    rejected = await client.post(f"/orders/{rare['id']}/cancel")
    unknown = await client.post("/orders/0193f3a0-0000-7000-8000-000000000000/cancel")

    assert first.status_code == replay.status_code == again.status_code == 200
    assert replay.headers["idempotency-replayed"] == "true" and replay.content == first.content
    assert again.json()["status"] == "CANCELLED" and again.json() == first.json()
    assert rejected.status_code == 409
    assert rejected.headers["content-type"] == "application/problem+json"
    assert unknown.status_code == 404
    # One cancellation, one status event: the repeats changed nothing.
    cancels = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE headers->>'ce_type' = 'order.cancelled'"
    )
    assert cancels == 1
    other_body = await client.post(f"/orders/{rare['id']}/cancel", headers=headers)
    assert other_body.status_code == 422  # the key was used for another order's cancel


async def test_stock_levels_are_validated_and_a_put_keeps_the_reserved_units(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    await ensure_topics(settings)
    for bad in ({"available": -1}, {"available": "many"}, {"available": 1.5}, {}):
        response = await client.put("/stock/desk", json=bad)
        assert response.status_code == 422, bad
        assert response.json()["errors"][0]["field"] == "available"
    await client.put("/stock/desk", json={"available": 3})
    async with Background(run_worker, settings), Background(run_relay, settings):
        order = (await client.post("/orders", json={"item": "desk", "quantity": 2})).json()
        await settled(client, order["id"])
    restocked = await client.put("/stock/desk", json={"available": 10})
    assert restocked.json() == {"item": "desk", "available": 10, "reserved": 2}


async def test_status_events_carry_the_orders_trace_on_without_an_exporter(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    """No OTLP endpoint here: the client's traceparent still reaches both topics (G7)."""
    await ensure_topics(settings)
    async with Background(run_worker, settings), Background(run_relay, settings):
        order = (
            await client.post(
                "/orders",
                json={"item": "traced", "quantity": 1},
                headers={"traceparent": TRACEPARENT},
            )
        ).json()
        await settled(client, order["id"])
        status = await wait_for_records(
            settings.kafka_bootstrap_servers, settings.kafka_status_topic, 1
        )
    created = await asyncio.to_thread(
        read_all, settings.kafka_bootstrap_servers, settings.kafka_order_topic
    )
    trace_id = TRACEPARENT.split("-")[1]
    assert created[0].headers["traceparent"].split("-")[1] == trace_id
    assert status[0].headers["traceparent"].split("-")[1] == trace_id


async def test_a_cancellation_passes_on_a_valid_trace_context_only_without_an_exporter(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Issue 20.4 without an exporter: the cancel's `order.cancelled` row keeps the client's
    valid `traceparent` (a traced gateway's trace goes on, as for placing), and stores none of
    a malformed one nor an oversized `tracestate`.

    Seen failing on landed main, which stored the request's headers as they came: the
    malformed `traceparent` (523 bytes) and the 4,000-byte `tracestate` were in the row."""
    sent = {
        "valid": {"traceparent": TRACEPARENT},
        "malformed": {
            "traceparent": "00-not-a-trace-context-" + "x" * 500,
            "tracestate": "y" * 4000,
        },
    }
    stored: dict[str, dict[str, str]] = {}
    for case, headers in sent.items():
        order = (await client.post("/orders", json={"item": "traced", "quantity": 1})).json()
        assert (await client.post(f"/orders/{order['id']}/cancel", headers=headers)).is_success
        row = await db.fetchval(
            "SELECT headers FROM outbox "
            "WHERE aggregate_id = $1 AND headers->>'ce_type' = 'order.cancelled'",
            order["id"],
        )
        stored[case] = {k: v for k, v in orjson.loads(row).items() if k.startswith("trace")}
    assert stored == {"valid": {"traceparent": TRACEPARENT}, "malformed": {}}
