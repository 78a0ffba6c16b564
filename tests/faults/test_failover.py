"""G10: a real PostgreSQL failover under load, followed by every process without a restart.

A primary and its synchronous standby (pg_basebackup -R, synchronous_standby_names = '*',
remote_apply), each in a network namespace of its own. The api, relay and worker are
configured once with a DSN naming both hosts (libpq syntax, target_session_attrs=read-write)
and take a steady stream of orders. Then the primary is blackholed (its connections hang),
crashed, and the standby promoted — what an RDS/Patroni failover looks like from a client.

Afterwards: writes came back within 30 s of the promotion with no process restarted; every
order answered 2xx is on the new primary and settled (synchronous replication: nothing
acknowledged is lost with the old primary); every "unknown" or lost request resolved by a
retry with its key; nothing was dead-lettered; the status events are on the topic.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

import asyncpg

from order_service.config import Settings
from tests.conftest import Infra, make_settings
from tests.e2e.processes import running_stack
from tests.faults.conftest import FAST_FAILURE_ENV
from tests.faults.stream import OrderStream
from tests.faults.verdicts import assert_books_balance, assert_events_on_the_topics, settled_within
from tests.netfault.failover import FailoverPair
from tests.scrape import total

ENV = {**FAST_FAILURE_ENV, "RELAY_PUBLISH_TIMEOUT_S": "2"}
BACK_WITHIN_S = 30.0


def failover_settings(infra: Infra, pair: FailoverPair) -> Settings:
    settings = make_settings(infra, "orderdb")
    return settings.model_copy(update={"postgres_dsn": pair.multi_host_dsn()})


async def test_a_failover_under_load_is_followed_by_api_relay_and_worker_without_a_restart(
    infra: Infra, pg_failover: FailoverPair, tmp_path: Path
) -> None:
    """Breaks caught: a multi-host DSN refused at start (ValueError on the port, the old
    code), a connect that spends its whole timeout on the blackholed first host (asyncpg's
    own multi-host connect: writes never come back), pooled connections to the dead primary
    kept forever, and database errors of the failover dead-lettering healthy events."""
    pair = pg_failover
    settings = failover_settings(infra, pair)
    with running_stack(settings, tmp_path) as stack:
        api = stack.start("api", **ENV)
        relay = stack.start("relay", **ENV)
        worker = stack.start("worker", **ENV)
        async with OrderStream(api.url, rate=40, timeout_s=5.0, connections=300) as stream:
            await asyncio.sleep(3.0)  # steady state: orders flow end to end
            pair.blackhole_primary()
            await asyncio.sleep(2.0)  # clients see the old primary hang
            pair.crash_primary()
            promoted_at = time.monotonic()
            took = await asyncio.to_thread(pair.promote_standby)
            async with asyncio.timeout(BACK_WITHIN_S):
                while not [
                    at
                    for at, _, status in stream.outcomes.latencies
                    if at >= promoted_at and status == 201
                ]:
                    await asyncio.sleep(0.2)
            back = min(
                at + lat
                for at, lat, status in stream.outcomes.latencies
                if at >= promoted_at and status == 201
            )
            await asyncio.sleep(3.0)  # and they keep coming
            await stream.stop()
            await stream.resolve(deadline_s=60)
        assert all(s.process.poll() is None for s in (api, relay, worker)), "a process died"
        db = await asyncpg.connect(pair.standby.dsn(driver="postgresql"))
        try:
            settled = await settled_within(db, stream.outcomes, timeout_s=90)
            await assert_books_balance(db, stream.outcomes)
            await assert_events_on_the_topics(
                db,
                settings.kafka_bootstrap_servers,
                settings.kafka_order_topic,
                settings.kafka_status_topic,
            )
        finally:
            await db.close()
        dead = total(worker.url, "worker_events_dead_lettered_total")
        assert dead == 0, f"{dead} events dead-lettered during the failover"
        for service in (api, relay, worker):
            with urllib.request.urlopen(f"{service.url}/readyz", timeout=2) as response:
                assert response.status == 200, service.name
    outcomes = stream.outcomes
    print(
        f"\n[failover] promotion took {took:.1f}s; first 201 {back - promoted_at:.1f}s after "
        f"it; {len(outcomes.accepted)} accepted, {outcomes.outcome_unknown} answered unknown, "
        f"{len(outcomes.refused)} refused; all settled {settled:.1f}s after the stream stopped"
    )
