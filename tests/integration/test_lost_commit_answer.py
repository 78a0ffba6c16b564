"""G1's `unknown`, staged deterministically: PostgreSQL commits the order and the api never
hears so — its connection is reset between the commit and the answer (tests/netfault/
lost_answer.py). The one truthful answer then is 503 `unknown` with the order's id; the
client resolves it with the same Idempotency-Key or a GET.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from order_service.bootstrap import api_app
from order_service.config import Settings
from order_service.persistence.dsn import parse_dsn
from tests.conftest import Infra, make_settings
from tests.netfault.lost_answer import LostAnswerProxy

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(infra: Infra, database: str) -> Iterator[LostAnswerProxy]:
    server = parse_dsn(infra.dsn(database)).hosts[0]
    with LostAnswerProxy(server.host, server.port) as started:
        yield started


@pytest.fixture
def proxied(infra: Infra, database: str, proxy: LostAnswerProxy) -> Settings:
    dsn = infra.dsn(database).replace(infra.dsn_base.rsplit("@", 1)[1], proxy.address, 1)
    assert proxy.address in dsn
    return make_settings(infra, database, postgres_dsn=dsn)


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = api_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as c:
            yield c


async def test_a_commit_whose_answer_is_lost_is_503_unknown_and_the_key_replays_it(
    proxied: Settings, proxy: LostAnswerProxy, db: asyncpg.Connection
) -> None:
    """Catches a lost answer called `not_written` — the lie G1 forbids: seen failing with
    order_writer._send's connection_lost branch calling `self._refuse(live, …)` instead of
    `self._lost(…)` (answer 503 `not_written` while the order sat committed in the database).
    Also catches a retry that makes a second order instead of replaying the first."""
    item = f"lost-answer-{uuid.uuid4().hex[:12]}"
    body = {"item": item, "quantity": 2}
    key = {"Idempotency-Key": f"key-{item}"}
    async for client in _client(proxied):
        warm = await client.post("/orders", json={"item": "warm-up", "quantity": 1})
        assert warm.status_code == 201  # the statement is prepared; the proxy only watches
        proxy.lose_answer_to(item.encode())

        lost = await client.post("/orders", json=body, headers=key)

        assert proxy.lost == 1, "the proxy never saw the statement"
        assert b"I" in proxy.swallowed  # its ReadyForQuery: the transaction was over
        assert lost.status_code == 503, lost.text
        assert lost.headers["content-type"] == "application/problem+json"
        problem = lost.json()
        assert problem["outcome"] == "unknown", problem
        order_id = problem["order_id"]
        # The database holds it, whole: the order, its event and its key, in one commit.
        row = await db.fetchrow(
            "SELECT o.item, o.status, o.xmin::text AS tx,"
            " (SELECT xmin::text FROM outbox WHERE aggregate_id = o.id) AS outbox_tx,"
            " (SELECT xmin::text FROM idempotency_keys WHERE order_id = o.id) AS key_tx"
            " FROM orders o WHERE o.id = $1",
            uuid.UUID(order_id),
        )
        assert row is not None, "the order the api called unknown is not in the database"
        assert (row["item"], row["status"]) == (item, "PENDING")
        assert row["tx"] == row["outbox_tx"] == row["key_tx"]

        replay = await client.post("/orders", json=body, headers=key)
        assert replay.status_code == 201, replay.text
        assert replay.headers["idempotency-replayed"] == "true"
        assert replay.json()["id"] == order_id
        assert (await client.get(f"/orders/{order_id}")).status_code == 200
    count = await db.fetchval("SELECT count(*) FROM orders WHERE item = $1", item)
    assert count == 1
