"""The HTTP API against a real PostgreSQL: contract, validation, atomic write (G1), pagination."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import orjson
from prometheus_client import REGISTRY

from order_service.persistence.outbox_message import lane_of

SEED_BODY = {"item": "book", "quantity": 2}


async def test_seed_post_order_answers_the_seeds_message_and_stores_the_order(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post("/order", json=SEED_BODY)

    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Order placed successfully"
    order_id = uuid.UUID(body["order_id"])
    row = await db.fetchrow("SELECT item, quantity, status FROM orders WHERE id = $1", order_id)
    assert dict(row) == {"item": "book", "quantity": 2, "status": "PENDING"}


async def test_post_orders_is_201_with_location_and_the_full_order(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/orders", json={"item": "pen", "quantity": 3})

    assert response.status_code == 201
    order = response.json()
    assert response.headers["location"] == f"/orders/{order['id']}"
    assert order["item"] == "pen" and order["quantity"] == 3 and order["status"] == "PENDING"
    assert order["created_at"] == order["updated_at"]
    assert uuid.UUID(order["id"]).version == 7


async def writing_transactions(db: asyncpg.Connection, order_id: uuid.UUID) -> dict[str, str]:
    """The transaction (`xmin`) that wrote each of an order's rows, by table."""
    row = await db.fetchrow(
        "SELECT (SELECT xmin::text FROM orders WHERE id = $1) AS orders, "
        "(SELECT string_agg(xmin::text, ',') FROM outbox WHERE aggregate_id = $1) AS outbox, "
        "(SELECT string_agg(xmin::text, ',') FROM idempotency_keys WHERE order_id = $1) "
        "AS idempotency_keys",
        order_id,
    )
    assert row is not None
    return dict(row)


async def test_an_accepted_order_has_its_outbox_event_in_the_same_commit(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """G1: the order row, its outbox row and its idempotency record were written by one
    transaction — the same `xmin` on all three (two commits would leave two ids).

    Seen failing on a broken variant of `persistence.order_batch.insert_batch` (restored
    afterwards): the outbox rows written by a second statement after the first committed —
    the outbox row's `xmin` was the next transaction's.
    """
    response = await client.post("/orders", json=SEED_BODY, headers={"Idempotency-Key": "one"})
    order = response.json()
    order_id = uuid.UUID(order["id"])

    written_by = await writing_transactions(db, order_id)
    assert written_by["orders"] is not None
    assert written_by == dict.fromkeys(written_by, written_by["orders"]), written_by

    event = await db.fetchrow("SELECT * FROM outbox WHERE aggregate_id = $1", order_id)
    assert event is not None
    assert event["published_at"] is None
    assert event["message_key"] == order["id"]
    assert event["lane"] == lane_of(order["id"])
    headers = (
        orjson.loads(event["headers"]) if isinstance(event["headers"], str) else event["headers"]
    )
    assert headers["ce_type"] == "order.created"
    assert headers["ce_id"] == str(event["event_id"])
    # Stored compact: the relay adds what every event has alike (tests/unit/test_event_envelope)
    assert "ce_specversion" not in headers and "ce_subject" not in headers
    payload = orjson.loads(event["payload"])
    assert payload["id"] == order["id"] and payload["quantity"] == 2


async def test_get_order_returns_it_and_an_unknown_id_is_404_problem(
    client: httpx.AsyncClient,
) -> None:
    created = (await client.post("/orders", json=SEED_BODY)).json()

    found = await client.get(f"/orders/{created['id']}")
    missing = await client.get(f"/orders/{uuid.uuid4()}")

    assert found.status_code == 200 and found.json() == created
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404


async def test_listing_pages_newest_first_with_a_cursor_and_filters_by_status(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    ids = [
        (await client.post("/orders", json={"item": f"i{n}", "quantity": 1})).json()["id"]
        for n in range(5)
    ]
    await db.execute("UPDATE orders SET status = 'CONFIRMED' WHERE id = $1", uuid.UUID(ids[0]))

    first = (await client.get("/orders", params={"limit": 2})).json()
    second = (
        await client.get("/orders", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    third = (
        await client.get("/orders", params={"limit": 2, "cursor": second["next_cursor"]})
    ).json()
    confirmed = (await client.get("/orders", params={"status": "CONFIRMED"})).json()

    seen = [o["id"] for page in (first, second, third) for o in page["items"]]
    assert seen == list(reversed(ids))
    assert third["next_cursor"] is None
    assert [o["id"] for o in confirmed["items"]] == [ids[0]]


async def test_a_malformed_cursor_is_422_naming_the_cursor(client: httpx.AsyncClient) -> None:
    response = await client.get("/orders", params={"cursor": "not*a*cursor"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "cursor"


async def test_invalid_bodies_are_422_problem_json_naming_the_field_and_store_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    cases = {
        "quantity": {"item": "book", "quantity": 0},
        "item": {"item": "   ", "quantity": 1},
    }
    too_long = {"item": "x" * 201, "quantity": 1}
    too_many = {"item": "book", "quantity": 10_001}
    as_string = {"item": "book", "quantity": "2"}
    for field, body in [
        *cases.items(),
        ("item", too_long),
        ("quantity", too_many),
        ("quantity", as_string),
    ]:
        response = await client.post("/orders", json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 422
        assert [e["field"] for e in problem["errors"]] == [field], problem
    assert await db.fetchval("SELECT count(*) FROM orders") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_unknown_fields_and_broken_json_are_422(client: httpx.AsyncClient) -> None:
    extra = await client.post("/orders", json={"item": "a", "quantity": 1, "price": 3})
    broken = await client.post(
        "/orders", content=b'{"item": "a", "quan', headers={"content-type": "application/json"}
    )

    assert extra.status_code == 422 and extra.json()["errors"][0]["field"] == "price"
    assert broken.status_code == 422 and broken.json()["errors"][0]["field"] == "body"


async def test_a_body_over_64_kib_is_413_problem_json(client: httpx.AsyncClient) -> None:
    big = b'{"item": "' + b"x" * (65 * 1024) + b'", "quantity": 1}'

    response = await client.post(
        "/orders", content=big, headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_chunked_body_over_64_kib_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(70):
            yield b"x" * 1024

    response = await client.post(
        "/orders", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413


def write_batches() -> tuple[float, float, float]:
    """`orders_write_batch_size`: (transactions, orders in them, transactions of one order)."""
    value = REGISTRY.get_sample_value
    return (
        value("orders_write_batch_size_count") or 0.0,
        value("orders_write_batch_size_sum") or 0.0,
        value("orders_write_batch_size_bucket", {"le": "1.0"}) or 0.0,
    )


async def test_concurrent_orders_are_all_committed_once_through_group_commit(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """200 concurrent POSTs: 200 orders, each with exactly one outbox row (raw rows), written
    by fewer transactions than orders — the writer's `orders_write_batch_size` says so, and so
    does PostgreSQL: orders share an `xmin`, and each order's outbox row has its order's.

    Seen failing with the group commit off (`WRITE_BATCH_MAX=1`): 200 transactions of one
    order each.
    """
    transactions, written, singles = write_batches()
    responses = await asyncio.gather(
        *(
            client.post("/orders", json={"item": f"item-{n}", "quantity": 1 + n % 7})
            for n in range(200)
        )
    )

    assert {r.status_code for r in responses} == {201}
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 200
    assert await db.fetchval("SELECT count(*) FROM orders") == 200
    assert await db.fetchval("SELECT count(*) FROM outbox") == 200
    assert await db.fetchval("SELECT count(DISTINCT aggregate_id) FROM outbox") == 200
    after = write_batches()
    batches, orders_in_batches = after[0] - transactions, after[1] - written
    assert orders_in_batches == 200
    assert batches < 200 and after[2] - singles < batches, (batches, after[2] - singles)
    shared = await db.fetchval("SELECT count(DISTINCT xmin::text) FROM orders")
    assert shared == batches
    apart = await db.fetchval(
        "SELECT count(*) FROM orders o JOIN outbox e ON e.aggregate_id = o.id "
        "WHERE o.xmin::text <> e.xmin::text"
    )
    assert apart == 0


async def test_health_endpoints_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    assert (await client.get("/db_health")).status_code == 200


async def test_metrics_expose_the_seeds_http_metrics_by_route_template(
    client: httpx.AsyncClient,
) -> None:
    created = (await client.post("/orders", json=SEED_BODY)).json()
    await client.get(f"/orders/{created['id']}")

    text = (await client.get("/metrics")).text

    assert 'http_requests_total{method="POST",route="/orders",status="201"}' in text
    assert (
        'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/orders/{order_id}"}'
        in text
    )
    assert "http_requests_in_progress" in text
    assert created["id"] not in text


async def test_openapi_documents_the_order_endpoints(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()

    assert {"/order", "/orders", "/orders/{order_id}"} <= set(spec["paths"])
    post = spec["paths"]["/orders"]["post"]
    assert "201" in post["responses"] and "422" in post["responses"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
