"""`order-service doctor`: checks every endpoint of a running stack and prints one table.

Replaces the seed's manual verification checklist: each row is one thing a person would have
opened in a browser, with what was expected and what came back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import httpx

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
        return Result(check, False, f"HTTP {response.status_code}")
    if check.expect and check.expect not in response.text:
        return Result(check, False, f"HTTP {response.status_code}, missing {check.expect!r}")
    return Result(check, True, f"HTTP {response.status_code}")


async def diagnose(
    targets: Targets, timeout_s: float = 3.0, postgres_dsn: str | None = None
) -> list[Result]:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        results = list(await asyncio.gather(*(_run(client, c) for c in checks_for(targets))))
    if postgres_dsn:
        results += await database_hosts(postgres_dsn, timeout_s)
    return results


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
