"""Latency under rising load: one stack, wrk at 1, 16, 64 and 256 connections in turn, each
level after the previous one's orders are all settled; orders/s and p50/p99 per level."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench import wrk
from bench.delivery import db_now, end_to_end, wait_drained
from bench.stack import Context, our_stack

LEVELS = (1, 16, 64, 256)
LEVEL_WARMUP_S = 2.0
LEVEL_MEASURE_S = 10.0


@dataclass(frozen=True)
class Level:
    connections: int
    measured: wrk.WrkResult
    e2e_p99_s: float | None
    settled: bool


@dataclass
class SweepResult:
    broker: str
    levels: list[Level]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(level.settled for level in self.levels)


def sweep(ctx: Context, levels: tuple[int, ...] = LEVELS) -> SweepResult:
    result = SweepResult(ctx.infra.kind, [])
    with our_stack(ctx, name="sweep") as stack:
        for connections in levels:
            run = f"{ctx.run_id}-sweep-{connections}"
            wrk.run(stack.url, LEVEL_WARMUP_S, f"{run}-warm", connections)
            since = asyncio.run(db_now(stack.dsn))
            measured = wrk.run(stack.url, LEVEL_MEASURE_S, run, connections)
            until = asyncio.run(db_now(stack.dsn))
            drain = asyncio.run(
                wait_drained(stack.dsn, since_monotonic=time.monotonic(), timeout_s=60.0)
            )
            latency = asyncio.run(end_to_end(stack.dsn, since, until))
            result.levels.append(Level(connections, measured, latency.p99_s, drain.drained))
    return result
