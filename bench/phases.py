"""The lifecycle phases: each starts its servers, warms up, measures with wrk, and stops them.

The ceiling runs once; the seed's design and ours run once per broker, so each broker's
ratios come from one run of `make bench`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench import wrk
from bench.delivery import db_now, end_to_end, wait_drained
from bench.infra import BrokerKind
from bench.processes import Child, RssSampler, uvicorn_argv
from bench.stack import Context, our_stack
from order_service.devstack.ports import free_port

WARMUP_S = 3.0
MEASURE_S = 15.0
DRAIN_TIMEOUT_S = 60.0
SEED_PARTITIONS = 3  # as ours (KAFKA_TOPIC_PARTITIONS' default)


@dataclass
class PhaseResult:
    key: str  # ceiling | seed | ours
    label: str
    broker: BrokerKind | None = None  # None: the ceiling, which uses no broker
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


@contextmanager
def running(children: list[Child]) -> Iterator[list[Child]]:
    try:
        for child in children:
            child.start()
        yield children
    finally:
        for child in reversed(children):
            child.stop()


def warm(result: PhaseResult, url: str, ctx: Context) -> None:
    warm = wrk.run(url, WARMUP_S, f"{ctx.run_id}-{result.key}-{result.broker}-warm")
    result.accepted_total += warm.ok_responses


def _measure(result: PhaseResult, url: str, ctx: Context, pids: dict[str, int]) -> None:
    with RssSampler(pids) as sampler:
        result.measured = wrk.run(url, MEASURE_S, f"{ctx.run_id}-{result.key}-{result.broker}")
    result.rss_mb = sampler.peak_mb()
    result.accepted_total += result.measured.ok_responses


def _drive(result: PhaseResult, url: str, ctx: Context, pids: dict[str, int]) -> None:
    warm(result, url, ctx)
    _measure(result, url, ctx, pids)


BROKER_WARMUP_S = 15.0


def warm_broker(ctx: Context) -> None:
    """Our stack under wrk for a while, the result dropped: Apache Kafka's JVM compiles its hot
    paths during its first minute of load (C2 compiler threads take a core's share), which a
    broker in service has long done; the same for Tansu, so both are measured alike."""
    with our_stack(ctx, name="warmup") as stack:
        wrk.run(stack.url, BROKER_WARMUP_S, f"{ctx.run_id}-broker-warmup")


def ceiling(ctx: Context) -> PhaseResult:
    result = PhaseResult("ceiling", LABELS["ceiling"])
    port = free_port()
    argv = uvicorn_argv("bench.ceiling_app:app", port)
    app = Child("ceiling-app", argv, {}, ctx.log_path("ceiling"))
    with running([app]):
        app.wait_listening(port)
        _drive(result, f"http://127.0.0.1:{port}/orders", ctx, {"ceiling-app": app.pid})
    return result


def seed(ctx: Context) -> PhaseResult:
    result = PhaseResult("seed", LABELS["seed"], ctx.infra.kind)
    port = free_port()
    topic = f"seed.orders.{ctx.run_id}"
    ctx.infra.create_topic(topic, SEED_PARTITIONS)
    env = {
        "BENCH_SEED_DSN": ctx.infra.create_database(f"seed_{ctx.run_id}_{ctx.infra.kind}"),
        "BENCH_SEED_BOOTSTRAP": ctx.infra.bootstrap_servers,
        "BENCH_SEED_TOPIC": topic,
    }
    app = Child("seed-app", uvicorn_argv("bench.seed_app:app", port), env, ctx.log_path("seed"))
    with running([app]):
        app.wait_listening(port)
        pids = {"seed-app": app.pid, **ctx.infra.pids()}
        _drive(result, f"http://127.0.0.1:{port}/order", ctx, pids)
    return result


def ours(ctx: Context) -> PhaseResult:
    result = PhaseResult("ours", LABELS["ours"], ctx.infra.kind)
    with our_stack(ctx) as stack:
        warm(result, stack.url, ctx)
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


Phase = Callable[[Context], PhaseResult]
BROKER_PHASES: tuple[Phase, ...] = (seed, ours)
LABELS = {"ceiling": "(a) ceiling", "seed": "(b) seed design", "ours": "(c) ours"}
