"""Where an order's CPU goes: process CPU time (user + system, children included) of api, relay,
worker, PostgreSQL and the broker over one wrk run, divided by the orders accepted in it.

    .venv/bin/python -m bench.cpu [--broker kafka|tansu] [--seconds 10] [--env NAME=VALUE ...]
        [--versus NAME=VALUE[,...] ... --rounds N] [--sql STATEMENT ...] [--profile DIR]

On two cores the stack's throughput is bounded by the sum: about 2 s of CPU per second shared by
every process, wrk included. Compare sums between runs of this script, not single figures.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import wrk
from bench.delivery import db_now, end_to_end, wait_drained
from bench.infra import BROKERS, infrastructure
from bench.phases import WARMUP_S, warm_broker
from bench.postgres_cpu import cpu_by_client
from bench.processes import cpu_per_unit, cpu_snapshot
from bench.stack import SERVICES, Context, our_stack


def _py_spy(pids: Mapping[str, int], seconds: float, out: Path) -> list[subprocess.Popen[bytes]]:
    """Collapsed stacks (flamegraph input) per process, `py-spy record --format raw`."""
    out.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    return [
        subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--pid",
                str(pids[name]),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(out / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ("api", "relay", "worker")
    ]


def _mean_batches(metrics: Mapping[str, str]) -> dict[str, float]:
    """Mean of each batch-size histogram since start: how much work one round trip carries."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {
        "api": "orders_write_batch_size",
        "relay": "outbox_publish_batch_size",
        "worker": "worker_batch_size",
    }
    means: dict[str, float] = {}
    for process, name in wanted.items():
        if process not in metrics:
            continue
        text = httpx.get(metrics[process], timeout=5).text
        for family in text_string_to_metric_families(text):
            if family.name != name:
                continue
            values = {s.name: s.value for s in family.samples if not s.labels.get("le")}
            count = values.get(f"{name}_count", 0.0)
            means[name] = values.get(f"{name}_sum", 0.0) / count if count else 0.0
    return means


async def _execute(dsn: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _database_counters(dsn: str) -> dict[str, float]:
    """WAL written and transactions committed so far (the whole cluster's WAL, this database's
    commits)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS wal_bytes, "
            "xact_commit::float8 AS commits "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
        assert row is not None
        return {"wal_bytes": row["wal_bytes"], "commits": row["commits"]}
    finally:
        await conn.close()


@dataclass(frozen=True)
class Sample:
    measured: wrk.WrkResult
    per_order: dict[str, float]  # µs of CPU per accepted order, per process
    served: dict[str, float]  # µs of PostgreSQL's CPU per order, by whom it served
    database: dict[str, float]  # WAL bytes and commits per order
    batches: dict[str, float]
    e2e_p99_s: float | None


def _children_cpu_s() -> float:
    """CPU of this process's reaped children: wrk's, once `wrk.run` has waited for it."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    ctx: Context,
    env: Mapping[str, str],
    sql: list[str],
    seconds: float,
    profile: Path | None = None,
    services: tuple[str, ...] = SERVICES,
) -> Sample:
    """One stack (`services` of it), warmed, then wrk for `seconds`: CPU per accepted order of
    each process, wrk's included (it shares the cores)."""
    with our_stack(ctx, env, services=services) as stack:
        for statement in sql:
            asyncio.run(_execute(stack.dsn, statement))
        wrk.run(stack.url, WARMUP_S, f"{ctx.run_id}-warm")
        samplers = _py_spy(stack.pids, seconds, profile) if profile else []
        clients = {name: stack.pids[name] for name in services}
        before = cpu_snapshot(stack.pids) | {"wrk": _children_cpu_s()}
        pg_before = cpu_by_client(stack.pids["postgres"], clients)
        db_before = asyncio.run(_database_counters(stack.dsn))
        since = asyncio.run(db_now(stack.dsn))
        measured = wrk.run(stack.url, seconds, f"{ctx.run_id}-cpu")
        until = asyncio.run(db_now(stack.dsn))
        after = cpu_snapshot(stack.pids) | {"wrk": _children_cpu_s()}
        pg_after = cpu_by_client(stack.pids["postgres"], clients)
        db_after = asyncio.run(_database_counters(stack.dsn))
        for sampler in samplers:
            sampler.wait(timeout=30)
        batches = _mean_batches(stack.metrics)
        e2e_p99_s = None
        if "worker" in services:
            asyncio.run(wait_drained(stack.dsn, since_monotonic=0.0, timeout_s=60.0))
            e2e_p99_s = asyncio.run(end_to_end(stack.dsn, since, until)).p99_s
    orders = max(1, measured.ok_responses)
    return Sample(
        measured,
        cpu_per_unit(before, after, orders),
        {k: (pg_after[k] - pg_before.get(k, 0.0)) / orders * 1e6 for k in pg_after},
        {k: (db_after[k] - db_before[k]) / orders for k in db_before},
        batches,
        e2e_p99_s,
    )


def _ranked(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in sorted(values.items(), key=lambda x: -x[1]))


def report(label: str, sample: Sample) -> None:
    m = sample.measured
    e2e = "—" if sample.e2e_p99_s is None else f"{sample.e2e_p99_s * 1000:.0f} ms"
    print(
        f"{label}{m.ok_per_s:,.0f} orders/s, p99 {m.p99_s * 1000:.1f} ms, e2e p99 {e2e}; "
        f"CPU per order {sum(sample.per_order.values()):.0f} µs: {_ranked(sample.per_order)}"
    )
    print(f"{' ' * len(label)}PostgreSQL serving: {_ranked(sample.served)}")
    print(
        f"{' ' * len(label)}per order: "
        + ", ".join(f"{k} {v:.2f}" for k, v in sample.database.items())
        + "; mean batch sizes: "
        + ", ".join(f"{k} {v:.1f}" for k, v in sample.batches.items())
    )


def _pairs(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if item)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--broker", choices=BROKERS, default="kafka")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the stack")
    parser.add_argument(
        "--versus",
        action="append",
        default=[],
        metavar="NAME=VALUE[,NAME=VALUE] | sql:STATEMENT",
        help="a variant measured in turn with the base (paired runs on the same PostgreSQL "
        "and broker): settings, or a statement run on its database; repeat for more variants",
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds of base + variants")
    parser.add_argument(
        "--sql",
        action="append",
        default=[],
        help="a statement run on the stack's database before the load (e.g. DROP INDEX ...)",
    )
    parser.add_argument(
        "--profile", type=Path, help="also sample api, relay and worker with py-spy into DIR"
    )
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    base = _pairs(",".join(args.env))
    variants = [("", base, args.sql)]
    if args.versus:
        variants = [("base: ", base, args.sql)]
        for v in args.versus:
            if v.startswith("sql:"):
                variants.append((f"{v}: ", base, [*args.sql, v.removeprefix("sql:")]))
            else:
                variants.append((f"{v}: ", base | _pairs(v), args.sql))
    work_dir = Path(tempfile.mkdtemp(prefix="order-cpu-"))
    with infrastructure(work_dir, args.broker) as infra:
        warm_broker(Context(infra))
        for _ in range(args.rounds):
            for label, env, sql in variants:
                sample = measure(Context(infra), env, sql, args.seconds, args.profile)
                report(label, sample)
                sys.stdout.flush()
    shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
