"""`order-service doctor`: checks every endpoint of a running stack and prints one table.

Replaces the seed's manual verification checklist: each row is one thing a person would have
opened in a browser, with what was expected and what came back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx


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
        Check("api ready (database + broker)", f"{targets.api}/readyz", '"ready"'),
        Check("api seed db check", f"{targets.api}/db_health", '"ok"'),
        Check("api metrics", f"{targets.api}/metrics", "http_requests_total"),
        Check("api OpenAPI", f"{targets.api}/openapi.json", '"/orders"'),
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
        checks.append(Check("jaeger reachable", f"{targets.jaeger}/", ""))
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


async def diagnose(targets: Targets, timeout_s: float = 3.0) -> list[Result]:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        return list(await asyncio.gather(*(_run(client, c) for c in checks_for(targets))))
