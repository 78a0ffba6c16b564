"""The capacity model's check (docs/capacity.md): measure what an order costs each process of the
full stack, predict from those costs the throughput of another configuration — the api alone
with PostgreSQL, relay and worker stopped (orders wait in the outbox, as during a broker
outage) — then measure that configuration.

    .venv/bin/python -m bench.capacity [--seconds 10] [--cores 2]

The model: processes share the machine's cores, so throughput is at most
cores / (CPU per order summed over every process, the load generator's included); and a
single-threaded process (api, relay, worker: one Python event loop each) cannot use more than
one core, so throughput is also at most 1 s / its CPU per order. PostgreSQL and the broker run
many threads or processes and have only the first bound.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import Sample, measure, report
from bench.infra import infrastructure
from bench.phases import warm_broker
from bench.stack import Context

SINGLE_THREADED = ("api", "relay", "worker")


@dataclass(frozen=True)
class Prediction:
    orders_per_s: float
    bound: str  # what limits it: "cores" or the single-threaded process that saturates


def predict(per_order_us: Mapping[str, float], cores: float) -> Prediction:
    shared = cores * 1e6 / sum(per_order_us.values())
    best = Prediction(shared, "cores")
    for name in SINGLE_THREADED:
        if per_order_us.get(name):
            alone = 1e6 / per_order_us[name]
            if alone < best.orders_per_s:
                best = Prediction(alone, name)
    return best


def api_alone(full: Sample) -> dict[str, float]:
    """The full stack's costs of what still runs with relay and worker stopped: the api, the
    PostgreSQL backends serving it and PostgreSQL's background work, and wrk."""
    postgres = full.served.get("api", 0.0) + full.served.get("background", 0.0)
    return {"api": full.per_order["api"], "postgres": postgres, "wrk": full.per_order["wrk"]}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cores", type=float, default=float(os.cpu_count() or 1))
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    work_dir = Path(tempfile.mkdtemp(prefix="order-capacity-"))
    with infrastructure(work_dir, "kafka") as infra:
        warm_broker(Context(infra))
        full = measure(Context(infra), {}, [], args.seconds)
        report("full stack: ", full)
        fitted = predict(full.per_order, args.cores)
        print(
            f"model on the full stack's own costs: {fitted.orders_per_s:,.0f} orders/s "
            f"(bound: {fitted.bound}); measured {full.measured.ok_per_s:,.0f}"
        )
        costs = api_alone(full)
        expected = predict(costs, args.cores)
        print(
            "prediction for the api alone (relay and worker stopped): "
            f"{expected.orders_per_s:,.0f} orders/s, bound by {expected.bound} "
            f"(from µs per order: {', '.join(f'{k} {v:.0f}' for k, v in costs.items())})"
        )
        alone = measure(Context(infra), {}, [], args.seconds, services=("api",))
        report("api alone: ", alone)
        measured = alone.measured.ok_per_s
        error = (measured - expected.orders_per_s) / expected.orders_per_s
        print(
            f"check: predicted {expected.orders_per_s:,.0f}, measured {measured:,.0f} orders/s "
            f"({error:+.0%}); bound now: {predict(alone.per_order, args.cores).bound}"
        )
    shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
