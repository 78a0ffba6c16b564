"""`order-service doctor`: checks every endpoint of a running stack and prints one table.

Replaces the seed's manual verification checklist: each row is one thing a person would have
opened in a browser, with what was expected and what came back. Given the broker
(KAFKA_BOOTSTRAP_SERVERS), it also shows the Kafka cluster: each live broker and which node is
the active controller, nodes the cluster expects that are not live, and the partitions of the
service's topics that are offline, below min.insync.replicas or under-replicated.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import httpx

from order_service.config import Settings
from order_service.messaging.cluster_state import ClusterState, Partition, describe, service_topics
from order_service.persistence.dsn import HostPort, PostgresDsn, parse_dsn


@dataclass(frozen=True)
class Check:
    name: str
    url: str
    expect: str  # a substring the body must contain ("" = any 2xx)


@dataclass(frozen=True)
class Result:
    check: Check
    ok: bool
    detail: str


@dataclass(frozen=True)
class Targets:
    api: str
    relay: str
    worker: str
    prometheus: str | None = None
    grafana: str | None = None
    jaeger: str | None = None
    alertmanager: str | None = None


def checks_for(targets: Targets) -> list[Check]:
    checks = [
        Check("api alive", f"{targets.api}/healthz", '"ok"'),
        Check("api ready (database; broker reported)", f"{targets.api}/readyz", '"ready"'),
        Check("api sees the broker", f"{targets.api}/readyz", '"broker":"ok"'),
        Check("api seed db check", f"{targets.api}/db_health", '"ok"'),
        Check("api metrics", f"{targets.api}/metrics", "http_requests_total"),
        Check("api OpenAPI: orders", f"{targets.api}/openapi.json", '"/orders"'),
        Check("api OpenAPI: cancel", f"{targets.api}/openapi.json", '"/orders/{order_id}/cancel"'),
        Check("api OpenAPI: stock", f"{targets.api}/openapi.json", '"/stock/{item}"'),
        Check("relay ready", f"{targets.relay}/readyz", '"ok"'),
        Check("relay metrics", f"{targets.relay}/metrics", "outbox_backlog"),
        Check("worker ready", f"{targets.worker}/readyz", '"ok"'),
        Check("worker metrics", f"{targets.worker}/metrics", "worker_events_processed_total"),
    ]
    if targets.prometheus:
        checks += [
            Check("prometheus ready", f"{targets.prometheus}/-/ready", ""),
            Check(
                "prometheus: every target up",
                f"{targets.prometheus}/api/v1/query?query=min(up)",
                '"1"]',
            ),
            Check("prometheus: alert rules loaded", f"{targets.prometheus}/api/v1/rules", "alert"),
        ]
    if targets.alertmanager:
        checks.append(Check("alertmanager ready", f"{targets.alertmanager}/-/ready", ""))
    if targets.grafana:
        checks.append(Check("grafana healthy", f"{targets.grafana}/api/health", '"ok"'))
    if targets.jaeger:
        # The query API, not the web UI (which a Jaeger built from its Go module lacks); a
        # service appears in it only once spans of it were stored: traces arrive.
        checks += [
            Check("jaeger reachable", f"{targets.jaeger}/api/services", '"data"'),
            Check(
                "jaeger: order-service traces arrive",
                f"{targets.jaeger}/api/traces?service=order-service&limit=1&lookback=1h",
                '"traceID"',
            ),
        ]
    return checks


async def _run(client: httpx.AsyncClient, check: Check) -> Result:
    try:
        response = await client.get(check.url)
    except httpx.HTTPError as exc:
        return Result(check, False, f"unreachable: {type(exc).__name__}")
    if response.status_code >= 300:
        return Result(check, False, f"HTTP {response.status_code}{_reasons(response)}")
    if check.expect and check.expect not in response.text:
        return Result(check, False, f"HTTP {response.status_code}, missing {check.expect!r}")
    return Result(check, True, f"HTTP {response.status_code}")


def _reasons(response: httpx.Response) -> str:
    """A /readyz 503 says why (`"reasons": {"kafka": "not_enough_replicas"}`)."""
    try:
        reasons = response.json().get("reasons") or {}
    except (ValueError, AttributeError):
        return ""
    return "".join(f", {name}: {why}" for name, why in reasons.items())


async def diagnose(
    targets: Targets,
    timeout_s: float = 3.0,
    postgres_dsn: str | None = None,
    kafka: Settings | None = None,
) -> list[Result]:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        results = list(await asyncio.gather(*(_run(client, c) for c in checks_for(targets))))
    if postgres_dsn:
        results += await database_hosts(postgres_dsn, timeout_s)
    if kafka is not None:
        results += await kafka_cluster(kafka, timeout_s)
    return results


async def kafka_cluster(settings: Settings, timeout_s: float) -> list[Result]:
    where = settings.kafka_bootstrap_servers
    try:
        state = await describe(settings, service_topics(settings), timeout_s)
    except Exception as exc:
        return [Result(Check("kafka cluster", where, ""), False, f"unreachable: {exc!r}"[:200])]
    return cluster_results(state, where)


def cluster_results(state: ClusterState, where: str) -> list[Result]:
    """One row per live broker (the active controller named), one per absent node, one per
    topic: a topic passes only when every partition has a leader and all its replicas in sync."""
    leader = state.quorum.leader_id if state.quorum else None
    rows = [
        Result(
            Check(f"kafka broker {b.node_id}", b.address, ""),
            True,
            "active controller" if b.node_id == leader else "broker",
        )
        for b in state.brokers
    ]
    for node in state.absent_nodes:
        rows.append(Result(Check(f"kafka node {node}", where, ""), False, "not live"))
    if state.quorum is not None and state.quorum.leader_id < 0:
        rows.append(Result(Check("kafka controller", where, ""), False, "no active controller"))
    topics = sorted({p.topic for p in state.partitions})
    for topic in topics:
        partitions = [p for p in state.partitions if p.topic == topic]
        rows.append(Result(Check(f"kafka topic {topic}", where, ""), *_topic_health(partitions)))
    for topic in state.missing_topics:
        rows.append(Result(Check(f"kafka topic {topic}", where, ""), False, "does not exist"))
    return rows


def _topic_health(partitions: list[Partition]) -> tuple[bool, str]:
    def listed(found: list[Partition]) -> str:
        return "; ".join(f"{p.name} isr {list(p.isr)} of {list(p.replicas)}" for p in found)

    offline = [p for p in partitions if p.offline]
    refused = [p for p in partitions if not p.offline and p.below_min_isr]
    lagging = [
        p for p in partitions if not p.offline and not p.below_min_isr and p.under_replicated
    ]
    problems = []
    if offline:
        problems.append(f"offline (no leader): {listed(offline)}")
    if refused:
        needed = refused[0].min_isr or 1
        problems.append(f"below min.insync.replicas {needed}, writes refused: {listed(refused)}")
    if lagging:
        problems.append(f"under-replicated: {listed(lagging)}")
    if problems:
        return False, " | ".join(problems)
    first = partitions[0]
    configured = f" (min.insync.replicas {first.min_isr})" if first.min_isr else ""
    return True, (
        f"{len(partitions)} partition(s), {len(first.replicas)} replicas each, all in sync"
        f"{configured}"
    )


async def database_hosts(postgres_dsn: str, timeout_s: float) -> list[Result]:
    """Each host of POSTGRES_DSN, and whether it takes writes: after a failover the operator
    sees which one is the primary now. Fails when no host takes writes."""
    dsn = parse_dsn(postgres_dsn)
    roles = await asyncio.gather(*(_role(dsn, host, timeout_s) for host in dsn.hosts))
    results = [
        Result(Check(f"postgres {host}", f"postgresql://{host}/{dsn.database}", ""), ok, role)
        for host, (ok, role) in zip(dsn.hosts, roles, strict=True)
    ]
    if not any(role.startswith("primary") for _, role in roles):
        results.append(
            Result(Check("postgres: a host takes writes", dsn.describe(), ""), False, "none")
        )
    return results


async def _role(dsn: PostgresDsn, host: HostPort, timeout_s: float) -> tuple[bool, str]:
    try:
        conn = await asyncpg.connect(dsn.for_host(host).split("?", 1)[0], timeout=timeout_s)
    except Exception as exc:
        return False, f"unreachable: {type(exc).__name__}"
    try:
        standby = await conn.fetchval("SELECT pg_is_in_recovery()", timeout=timeout_s)
        read_only = await conn.fetchval("SHOW default_transaction_read_only", timeout=timeout_s)
    finally:
        await conn.close()
    if standby:
        return True, "standby (read-only)"
    if read_only == "on":
        return True, "read-only primary"
    return True, "primary (read-write)"
