"""Online migrations (docs/migrations.md): each migration in the repo is applied while orders
are being written and read, and while a long report holds its locks — no request fails and
none takes 1 s or more.

The traffic is the previous release's: the order, outbox and idempotency writes and the reads
of the 0001 schema. Expand/contract means exactly that those keep working, unchanged and
unblocked, while the next release's expansion is applied; the new release starts only after.
The report is what makes a careless migration an outage: an ALTER TABLE waiting for its
ACCESS EXCLUSIVE lock queues every later query behind it — unless lock_timeout stops the wait,
and `migrate` retries.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import asyncpg
import pytest
from alembic.script import ScriptDirectory

from order_service.persistence.migrate import MIGRATIONS_DIR, alembic_config, upgrade_to
from tests.conftest import Infra

pytestmark = pytest.mark.integration

SLOW_S = 1.0
VERSIONS = MIGRATIONS_DIR / "versions"

_WRITE = """
WITH o AS (
  INSERT INTO orders (id, item, quantity, status, created_at, updated_at)
  VALUES ($1, $2, 1, 'PENDING', now(), now()) RETURNING id
), e AS (
  INSERT INTO outbox (event_id, aggregate_id, topic, message_key, payload, headers, lane)
  SELECT $3, id, 'orders.created', id::text, '\\x7b7d', '{}', 0 FROM o RETURNING 1
)
INSERT INTO idempotency_keys (principal, idem_key, request_hash, order_id, status_code,
                              response_body)
SELECT 'previous-release', $2, 'h', id, 201, '\\x7b7d' FROM o
"""


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused/x"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


async def previous_release_traffic(
    dsn: str, stop: asyncio.Event, latencies: list[float], errors: list[str]
) -> None:
    """Writes and reads an order every 20 ms, on a fresh connection pool of its own."""
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4)
    try:
        while not stop.is_set():
            order_id, key = uuid.uuid4(), uuid.uuid4().hex
            started = time.monotonic()
            try:
                async with pool.acquire() as conn:
                    await conn.execute(_WRITE, order_id, key, uuid.uuid4())
                    await conn.fetchrow("SELECT id, status FROM orders WHERE id = $1", order_id)
            except Exception as exc:  # any failure is a finding: the test reports them all
                errors.append(repr(exc))
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.02)
    finally:
        await pool.close()


async def a_long_report(dsn: str, seconds: float) -> None:
    """A transaction that reads `orders` and then stays open, as a slow report would."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.fetchval("SELECT count(*) FROM orders")
            (
                await conn.fetchval("SELECT count(*) FROM stock")
                if await conn.fetchval("SELECT to_regclass('stock') IS NOT NULL")
                else None
            )
            await asyncio.sleep(seconds)
    finally:
        await conn.close()


async def test_every_migration_applies_under_traffic_and_behind_a_long_report(
    infra: Infra,
) -> None:
    """Breaks caught: a migration without lock_timeout (its ALTER waits behind the report and
    every write queues behind it for the report's 2.5 s), an index built without
    CONCURRENTLY on a busy table (writes wait for the build), and a new NOT NULL column
    without a default (the previous release's INSERTs fail)."""
    name = f"mig_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infra.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = infra.dsn(name)
    plain = dsn.replace("postgresql+asyncpg://", "postgresql://")
    steps = revisions()
    await asyncio.to_thread(upgrade_to, dsn, steps[0])

    stop = asyncio.Event()
    latencies: list[float] = []
    errors: list[str] = []
    traffic = asyncio.create_task(previous_release_traffic(plain, stop, latencies, errors))
    applied: list[tuple[str, float]] = []
    try:
        await asyncio.sleep(0.5)
        for revision in steps[1:]:
            report = asyncio.create_task(a_long_report(plain, 2.5))
            await asyncio.sleep(0.2)  # the report holds its locks first
            started = time.monotonic()
            await asyncio.to_thread(upgrade_to, dsn, revision, retry_for_s=30.0)
            applied.append((revision, time.monotonic() - started))
            await report
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await traffic
    conn = await asyncpg.connect(plain)
    try:
        head = await conn.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()
    print(
        f"\n[migrations] {applied}; {len(latencies)} requests, slowest "
        f"{max(latencies):.3f}s, {len(errors)} errors"
    )
    assert head == steps[-1]
    assert not errors, errors[:3]
    assert max(latencies) < SLOW_S
    assert len(latencies) > 100


def test_every_migration_waits_for_locks_briefly_and_builds_indexes_concurrently() -> None:
    """The rule, read from the files (docs/migrations.md): every index on an existing table is
    built CONCURRENTLY outside the transaction; every migration runs under the lock_timeout
    that `migrate` sets (env.py); no column is added NOT NULL without a default."""
    env = (MIGRATIONS_DIR / "env.py").read_text()
    assert '"lock_timeout"' in env
    for path in sorted(VERSIONS.glob("*.py")):
        source = path.read_text()
        if path.name.startswith("0001_"):
            continue  # creates the tables: nothing exists yet to lock or to index
        for call in re.findall(r"op\.create_index\((.*?)\n    \)", source, flags=re.S):
            assert "postgresql_concurrently=True" in call, path.name
            assert "autocommit_block" in source, path.name
        for column in re.findall(r"op\.add_column\((.*?)\)\)", source, flags=re.S):
            assert "nullable=False" not in column or "server_default" in column, path.name
