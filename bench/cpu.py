"""Where an order's CPU goes: process CPU time (user + system, children included) of api, relay,
worker, PostgreSQL and the broker over one wrk run, divided by the orders accepted in it.

    .venv/bin/python -m bench.cpu [--seconds 10] [--env NAME=VALUE ...] [--sql STATEMENT ...]

On two cores the stack's throughput is bounded by the sum: about 2 s of CPU per second shared by
every process, wrk included. Compare sums between runs of this script, not single figures.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import httpx

from bench import wrk
from bench.delivery import wait_drained
from bench.infra import BROKERS, infrastructure
from bench.phases import WARMUP_S
from bench.postgres_cpu import cpu_by_client
from bench.processes import cpu_snapshot
from bench.stack import Context, our_stack


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


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--broker", choices=BROKERS, default="kafka")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the stack")
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
    extra = dict(item.split("=", 1) for item in args.env)
    work_dir = Path(tempfile.mkdtemp(prefix="order-cpu-"))
    with infrastructure(work_dir, args.broker) as infra:
        ctx = Context(infra)
        with our_stack(ctx, **extra) as stack:
            for statement in args.sql:
                asyncio.run(_execute(stack.dsn, statement))
            wrk.run(stack.url, WARMUP_S, f"{ctx.run_id}-warm")
            samplers = _py_spy(stack.pids, args.seconds, args.profile) if args.profile else []
            services = {name: stack.pids[name] for name in ("api", "relay", "worker")}
            before = cpu_snapshot(stack.pids)
            pg_before = cpu_by_client(stack.pids["postgres"], services)
            db_before = asyncio.run(_database_counters(stack.dsn))
            measured = wrk.run(stack.url, args.seconds, f"{ctx.run_id}-cpu")
            after = cpu_snapshot(stack.pids)
            pg_after = cpu_by_client(stack.pids["postgres"], services)
            db_after = asyncio.run(_database_counters(stack.dsn))
            for sampler in samplers:
                sampler.wait(timeout=30)
            batches = _mean_batches(stack.metrics)
            asyncio.run(wait_drained(stack.dsn, since_monotonic=0.0, timeout_s=60.0))
    shutil.rmtree(work_dir, ignore_errors=True)
    orders = max(1, measured.ok_responses)
    per_order = {name: (after[name] - before[name]) / orders * 1e6 for name in stack.pids}
    print(
        f"{measured.ok_per_s:,.0f} orders/s, p99 {measured.p99_s * 1000:.1f} ms; "
        f"CPU per order {sum(per_order.values()):.0f} µs: "
        + ", ".join(
            f"{name} {us:.0f}" for name, us in sorted(per_order.items(), key=lambda x: -x[1])
        )
    )
    served = {k: (pg_after[k] - pg_before.get(k, 0.0)) / orders * 1e6 for k in pg_after}
    print(
        "PostgreSQL serving: "
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(served.items(), key=lambda x: -x[1]))
    )
    db = {k: (db_after[k] - db_before[k]) / orders for k in db_before}
    print("per order: " + ", ".join(f"{k} {v:.2f}" for k, v in db.items()))
    print("mean batch sizes: " + ", ".join(f"{k} {v:.1f}" for k, v in batches.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
