"""The three phases: each starts its servers, warms up, measures with wrk, and stops them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench import wrk
from bench.delivery import db_now, end_to_end, wait_drained
from bench.infra import Infra, plain_dsn
from bench.processes import BIN, Child, RssSampler, uvicorn_argv
from order_service.devstack.ports import free_port

WARMUP_S = 3.0
MEASURE_S = 15.0
DRAIN_TIMEOUT_S = 60.0


@dataclass
class PhaseResult:
    key: str
    label: str
    measured: wrk.WrkResult | None = None
    accepted_total: int = 0  # 2xx over warm-up + measurement
    rss_mb: dict[str, float] = field(default_factory=dict)
    e2e_p50_s: float | None = None
    e2e_p99_s: float | None = None
    drain_s: float | None = None
    rows: int | None = None
    confirmed: int | None = None
    error: str | None = None

    @property
    def delivery_ok(self) -> bool:
        """Every accepted order stored and confirmed (only checked where we own the schema)."""
        if self.rows is None:
            return True
        return self.confirmed == self.rows and self.rows >= self.accepted_total

    @property
    def ok(self) -> bool:
        return self.error is None and self.delivery_ok


@dataclass(frozen=True)
class Context:
    infra: Infra
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@contextmanager
def running(children: list[Child]) -> Iterator[list[Child]]:
    try:
        for child in children:
            child.start()
        yield children
    finally:
        for child in reversed(children):
            child.stop()


def _warm(result: PhaseResult, url: str, ctx: Context) -> None:
    warm = wrk.run(url, WARMUP_S, f"{ctx.run_id}-{result.key}-warm")
    result.accepted_total += warm.ok_responses


def _measure(result: PhaseResult, url: str, ctx: Context, pids: dict[str, int]) -> None:
    with RssSampler(pids) as sampler:
        result.measured = wrk.run(url, MEASURE_S, f"{ctx.run_id}-{result.key}")
    result.rss_mb = sampler.peak_mb()
    result.accepted_total += result.measured.ok_responses


def _drive(result: PhaseResult, url: str, ctx: Context, pids: dict[str, int]) -> None:
    _warm(result, url, ctx)
    _measure(result, url, ctx, pids)


def ceiling(ctx: Context) -> PhaseResult:
    result = PhaseResult("ceiling", LABELS["ceiling"])
    port = free_port()
    app = Child(
        "ceiling-app", uvicorn_argv("bench.ceiling_app:app", port), {}, _path(ctx, "ceiling")
    )
    with running([app]):
        app.wait_listening(port)
        _drive(result, f"http://127.0.0.1:{port}/orders", ctx, {"ceiling-app": app.pid})
    return result


def seed(ctx: Context) -> PhaseResult:
    result = PhaseResult("seed", LABELS["seed"])
    port = free_port()
    env = {
        "BENCH_SEED_DSN": ctx.infra.create_database(f"seed_{ctx.run_id}"),
        "BENCH_SEED_BOOTSTRAP": ctx.infra.bootstrap_servers,
        "BENCH_SEED_TOPIC": f"seed.orders.{ctx.run_id}",
    }
    app = Child("seed-app", uvicorn_argv("bench.seed_app:app", port), env, _path(ctx, "seed"))
    with running([app]):
        app.wait_listening(port)
        pids = {"seed-app": app.pid, **ctx.infra.pids()}
        _drive(result, f"http://127.0.0.1:{port}/order", ctx, pids)
    return result


@dataclass(frozen=True)
class OurStack:
    url: str  # POST /orders
    dsn: str  # the plain asyncpg DSN of its database
    pids: dict[str, int]  # api, relay, worker and the infrastructure's processes
    metrics: dict[str, str]  # api, relay, worker -> its /metrics URL


@contextmanager
def our_stack(ctx: Context, **extra_env: str) -> Iterator[OurStack]:
    """A fresh database migrated, then api, relay and worker, each ready."""
    dsn = ctx.infra.create_database(f"ours_{ctx.run_id}")
    env = {
        "POSTGRES_DSN": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": ctx.infra.bootstrap_servers,
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "KAFKA_ORDER_TOPIC": f"orders.created.bench.{ctx.run_id}",
        "KAFKA_STATUS_TOPIC": f"orders.status.bench.{ctx.run_id}",
        "KAFKA_CONSUMER_GROUP": f"order-processor-bench-{ctx.run_id}",
        "LOG_LEVEL": "WARNING",
        "ENVIRONMENT": "dev",
        **extra_env,
    }
    cli = str(BIN / "order-service")
    migrate = Child("migrate", [cli, "migrate"], env, _path(ctx, "migrate"))
    migrate.start()
    migrate.wait_exit(60.0)
    ports = {name: free_port() for name in ("api", "relay", "worker")}
    children = [
        Child(name, [cli, name, "--host", "127.0.0.1", "--port", str(port)], env, _path(ctx, name))
        for name, port in ports.items()
    ]
    with running(children):
        for child in children:
            child.wait_ready(f"http://127.0.0.1:{ports[child.name]}/readyz", timeout_s=60.0)
        pids = {child.name: child.pid for child in children} | ctx.infra.pids()
        metrics = {name: f"http://127.0.0.1:{port}/metrics" for name, port in ports.items()}
        yield OurStack(f"http://127.0.0.1:{ports['api']}/orders", plain_dsn(dsn), pids, metrics)


def ours(ctx: Context) -> PhaseResult:
    result = PhaseResult("ours", LABELS["ours"])
    with our_stack(ctx) as stack:
        _warm(result, stack.url, ctx)
        since = asyncio.run(db_now(stack.dsn))
        _measure(result, stack.url, ctx, stack.pids)
        ended = time.monotonic()
        until = asyncio.run(db_now(stack.dsn))
        drain = asyncio.run(
            wait_drained(stack.dsn, since_monotonic=ended, timeout_s=DRAIN_TIMEOUT_S)
        )
    result.rows, result.confirmed = drain.rows, drain.confirmed
    result.drain_s = drain.waited_s if drain.drained else None
    latency = asyncio.run(end_to_end(stack.dsn, since, until))
    result.e2e_p50_s, result.e2e_p99_s = latency.p50_s, latency.p99_s
    return result


def _path(ctx: Context, name: str) -> Path:
    return ctx.infra.work_dir / f"{name}.log"


PHASES: tuple[Callable[[Context], PhaseResult], ...] = (ceiling, seed, ours)
LABELS = {"ceiling": "(a) ceiling", "seed": "(b) seed design", "ours": "(c) ours"}
