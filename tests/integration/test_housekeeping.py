"""Housekeeping keeps up: expired rows go in bounded batches within the statement timeout, the
inbox is pruned too, and what has not expired stays (issue: housekeeping that keeps up)."""

from __future__ import annotations

import asyncpg
import pytest

from order_service.config import Settings
from order_service.messaging.housekeeping import Housekeeping
from order_service.persistence.database import create_pool
from tests.conftest import Infra, make_settings

pytestmark = pytest.mark.integration

EXPIRED = 300_000


async def insert_expired_outbox(db: asyncpg.Connection, rows: int) -> None:
    """`rows` outbox rows published 25 hours ago (past the default 24 h retention)."""
    await db.execute(f"""
        INSERT INTO outbox (event_id, aggregate_id, topic, message_key, payload, headers, lane,
                            created_at, published_at)
        SELECT gen_random_uuid(), gen_random_uuid(), 't', 'k', '\\x00', '{{}}', 0,
               now() - interval '30 hours', now() - interval '25 hours'
        FROM generate_series(1, {rows});
    """)


async def insert_expired(db: asyncpg.Connection) -> None:
    await insert_expired_outbox(db, EXPIRED)
    await db.execute(f"""
        INSERT INTO idempotency_keys (principal, idem_key, request_hash, order_id, status_code,
                                      response_body, created_at)
        SELECT 'p', 'k' || g, 'h', gen_random_uuid(), 201, '\\x00', now() - interval '25 hours'
        FROM generate_series(1, {EXPIRED}) AS g;
        INSERT INTO inbox (event_id, order_id, processed_at)
        SELECT gen_random_uuid(), gen_random_uuid(), now() - interval '400 hours'
        FROM generate_series(1, {EXPIRED});
        INSERT INTO outbox (event_id, aggregate_id, topic, message_key, payload, headers, lane,
                            published_at)
        VALUES (gen_random_uuid(), gen_random_uuid(), 't', 'recent', '\\x00', '{{}}', 0, now()),
               (gen_random_uuid(), gen_random_uuid(), 't', 'pending', '\\x00', '{{}}', 0, NULL);
        INSERT INTO idempotency_keys (principal, idem_key, request_hash, order_id, status_code,
                                      response_body)
        VALUES ('p', 'fresh', 'h', gen_random_uuid(), 201, '\\x00');
        INSERT INTO inbox (event_id, order_id) VALUES (gen_random_uuid(), gen_random_uuid());
    """)


async def assert_only_the_unexpired_rows_are_left(db: asyncpg.Connection) -> None:
    left = await db.fetchrow(
        "SELECT (SELECT array_agg(message_key ORDER BY message_key) FROM outbox) AS outbox,"
        " (SELECT array_agg(idem_key) FROM idempotency_keys) AS keys,"
        " (SELECT count(*) FROM inbox) AS inbox"
    )
    assert dict(left) == {"outbox": ["pending", "recent"], "keys": ["fresh"], "inbox": 1}


async def test_a_few_hundred_thousand_expired_rows_go_in_one_pass_under_the_default_timeout(
    infra: Infra, database: str, db: asyncpg.Connection
) -> None:
    default_timeout = Settings(_env_file=None).db_statement_timeout_ms  # type: ignore[call-arg]
    settings = make_settings(infra, database, db_statement_timeout_ms=default_timeout)
    await insert_expired(db)
    pool = await create_pool(settings)
    try:
        deleted = await Housekeeping(settings, pool).delete_expired()
    finally:
        await pool.close()

    assert deleted == {"outbox": EXPIRED, "idempotency_keys": EXPIRED, "inbox": EXPIRED}
    await assert_only_the_unexpired_rows_are_left(db)


async def test_batches_fit_a_statement_timeout_that_one_unbounded_delete_exceeds(
    infra: Infra, database: str, db: asyncpg.Connection
) -> None:
    """Why batches: here one DELETE of 300,000 rows takes 0.1-0.25 s (fsync off), so under the
    5 s default it only times out on far larger backlogs (a day of 5,000 orders/s is 400 million
    rows). Scaled down: 1,000,000 expired rows and a 150 ms statement timeout. The old
    housekeeping's unbounded DELETE is cancelled (and would be again every minute while the
    backlog grows); batches of 2,000, a few milliseconds each, clear everything."""
    tight_ms = 150
    rows = 1_000_000
    settings = make_settings(
        infra, database, db_statement_timeout_ms=tight_ms, relay_publish_timeout_s=0.5
    )
    await insert_expired_outbox(db, rows)
    unbounded = "DELETE FROM outbox WHERE published_at < now() - interval '24 hours'"
    async with db.transaction():
        await db.execute(f"SET LOCAL statement_timeout = {tight_ms}")
        with pytest.raises(asyncpg.QueryCanceledError):
            await db.execute(unbounded)
    pool = await create_pool(settings)
    try:
        deleted = await Housekeeping(settings, pool, batch=2000, budget_s=120).delete_expired()
    finally:
        await pool.close()
    assert deleted == {"outbox": rows, "idempotency_keys": 0, "inbox": 0}
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_pass_stops_at_its_budget_and_the_next_one_goes_on(
    settings: Settings, db: asyncpg.Connection
) -> None:
    await db.execute("""
        INSERT INTO inbox (event_id, order_id, processed_at)
        SELECT gen_random_uuid(), gen_random_uuid(), now() - interval '400 hours'
        FROM generate_series(1, 3000);
    """)
    pool = await create_pool(settings)
    try:
        keeper = Housekeeping(settings, pool, batch=1000, budget_s=0.0)
        first = await keeper.delete_expired()  # budget spent at once: nothing this pass
        second = await Housekeeping(settings, pool, batch=1000).delete_expired()
    finally:
        await pool.close()
    assert first["inbox"] == 0
    assert second["inbox"] == 3000


async def test_an_unpublished_event_older_than_every_retention_survives_every_pass(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """G3 through housekeeping: an event the broker never acknowledged is never deleted,
    however old (a broker outage longer than the retention loses nothing). Catches the outbox
    clean-up choosing rows by `coalesce(published_at, created_at) < now() - …` (or any age
    that is not the publication's) — seen failing on that variant: the unpublished row went
    in the first pass with its published neighbour."""
    longest = max(
        settings.outbox_retention_hours,
        settings.idempotency_ttl_hours,
        settings.inbox_retention_hours,
    )
    await db.execute(
        """
        INSERT INTO outbox (event_id, aggregate_id, topic, message_key, payload, headers, lane,
                            created_at, published_at)
        VALUES (gen_random_uuid(), gen_random_uuid(), 't', 'never-published', '\\x00', '{}', 0,
                now() - make_interval(hours => $1), NULL),
               (gen_random_uuid(), gen_random_uuid(), 't', 'published', '\\x00', '{}', 0,
                now() - make_interval(hours => $1), now() - make_interval(hours => $1))
        """,
        longest * 10,
    )
    pool = await create_pool(settings)
    try:
        passes = [await Housekeeping(settings, pool).delete_expired() for _ in range(3)]
    finally:
        await pool.close()
    assert [p["outbox"] for p in passes] == [1, 0, 0]  # the passes ran, and deleted
    left = await db.fetch("SELECT message_key, published_at FROM outbox")
    assert [(r["message_key"], r["published_at"]) for r in left] == [("never-published", None)]
