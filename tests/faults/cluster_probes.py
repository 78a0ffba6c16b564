"""What the broker-fault tests ask of the cluster, the relays and PostgreSQL while a fault
runs: the busiest partition and its leader, who is in the ISRs, what the relays were told, and
whether a frozen relay is inside a publish."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time

import asyncpg
import psutil

from order_service.messaging.outbox_store import LANE_LOCK_NAMESPACE
from tests.e2e.processes import Service
from tests.faults.cluster_run import ClusterRun
from tests.netfault import kafka_views as views

# A relay that fetched its claimed rows this long before it was frozen has sent them (the
# sender lingers 2 ms) and may be waiting for the acknowledgement, not yet marking.
SENT_AFTER_S = 0.02


def busiest(run: ClusterRun) -> views.PartitionView:
    """The partition of the order or status topic with the most records."""
    s = run.settings
    sizes = {
        (topic, p): end
        for topic in (s.kafka_order_topic, s.kafka_status_topic)
        for p, end in views.end_offsets(run.cluster.bootstrap_servers, topic).items()
    }
    topic, partition = max(sizes, key=lambda k: sizes[k])
    return run.cluster.partitions(topic)[partition]


def leader_of(run: ClusterRun, view: views.PartitionView) -> int:
    return run.cluster.partitions(view.topic)[view.partition].leader


def out_of_every_isr(run: ClusterRun, node_id: int) -> bool:
    return all(node_id not in v.isr for t in run.topics for v in run.cluster.partitions(t))


def relay_log_mentions(run: ClusterRun, pattern: str) -> int:
    relays = [s for s in run.stack.services if s.name == "relay"]
    return sum(len(re.findall(pattern, relay.output())) for relay in relays)


def frozen_mid_publish(run: ClusterRun, relay: Service) -> bool:
    """Freeze the relay; True if it is inside a publish — it has fetched its claimed rows at
    least SENT_AFTER_S before the freeze and not marked them — else thaw it (False)."""
    relay.process.send_signal(signal.SIGSTOP)
    frozen_at = time.time()
    claimed_at = rows_claimed_at(run, relay.process.pid)
    if claimed_at is not None and frozen_at - claimed_at >= SENT_AFTER_S:
        return True
    relay.process.send_signal(signal.SIGCONT)
    time.sleep(random.uniform(0.0, 0.05))
    return False


def rows_claimed_at(run: ClusterRun, pid: int) -> float | None:
    """When the relay's open claim fetched its rows (epoch seconds), if it is waiting outside
    PostgreSQL since then: idle in transaction after the claim, lane locks held, not marked."""
    ports = [
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == run.postgres_port
    ]

    async def ask() -> float | None:
        conn = await asyncpg.connect(run.settings.asyncpg_dsn)
        try:
            found = await conn.fetchval(
                "SELECT max(EXTRACT(EPOCH FROM a.state_change))::float8 FROM pg_stat_activity a"
                " WHERE a.client_port = ANY($1::int[]) AND a.state = 'idle in transaction'"
                " AND a.query LIKE '%FOR UPDATE SKIP LOCKED%' AND EXISTS (SELECT 1 FROM"
                " pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.classid = $2)",
                ports,
                LANE_LOCK_NAMESPACE,
            )
        finally:
            await conn.close()
        return float(found) if found is not None else None

    return asyncio.run(ask()) if ports else None
