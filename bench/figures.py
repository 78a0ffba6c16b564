"""The two figures that show how cost grows with the work: latency under rising load and the
backlog drain, as rows for the terminal and for results.md."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from bench.backlog import QUOTED_ROWS, BacklogResult
from bench.infra import BROKER_LABELS
from bench.sweep import LEVEL_MEASURE_S, SweepResult

PLOT = Path(__file__).with_name("load-latency.svg")
SWEEP_COLUMNS = ("connections", "orders/s", "p50", "p99", "e2e p99", "settled")

# Open Outbox Relay's published drain of a 100M+ event backlog with PostgreSQL 16.4 at its
# default settings, 12 relay workers, 200-byte payloads, on a MacBook Pro M1 (32 GB, NVMe):
# https://open-outbox.dev/benchmarks/ ("Unoptimized Draining"). Other hardware.
PEER_EVENTS_PER_S = 14_500
PEER = "Open Outbox Relay (MacBook Pro M1, PostgreSQL 16.4 defaults, 12 workers)"


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.1f} ms"


def sweep_rows(sweep: SweepResult) -> list[list[str]]:
    return [
        [
            str(level.connections),
            f"{level.measured.ok_per_s:,.0f}",
            _ms(level.measured.p50_s),
            _ms(level.measured.p99_s),
            _ms(level.e2e_p99_s),
            "yes" if level.settled else "NO",
        ]
        for level in sweep.levels
    ]


def sweep_title(sweep: SweepResult) -> str:
    return (
        f"ours under rising load on {BROKER_LABELS[sweep.broker]}, "  # type: ignore[index]
        f"wrk {LEVEL_MEASURE_S:.0f} s per level"
    )


def sweep_table(sweep: SweepResult) -> Table:
    out = Table(title=sweep_title(sweep))
    for name in SWEEP_COLUMNS:
        out.add_column(name, justify="right")
    for row in sweep_rows(sweep):
        out.add_row(*row)
    if sweep.error:
        out.caption = f"sweep failed: {sweep.error}"
    return out


def sweep_markdown(sweep: SweepResult) -> list[str]:
    lines = [
        f"## Latency under rising load ({sweep_title(sweep)})",
        "",
        "| " + " | ".join(SWEEP_COLUMNS) + " |",
        "|" + "---:|" * len(SWEEP_COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in sweep_rows(sweep)]
    if sweep.error:
        lines.append(f"\nThe sweep failed: {sweep.error}")
    lines += ["", f"![p50 and p99 against orders/s]({PLOT.name})"]
    return lines


def _cpu(per_unit: dict[str, float]) -> str:
    ranked = sorted(per_unit.items(), key=lambda kv: -kv[1])
    return (
        f"{sum(per_unit.values()):,.0f} µs ("
        + ", ".join(f"{name} {us:,.0f}" for name, us in ranked)
        + ")"
    )


def backlog_lines(result: BacklogResult, ceiling: float | None) -> list[str]:
    lines = [
        f"backlog of {result.rows:,} orders (1 outbox row each) written in "
        f"{result.insert_s:,.1f} s with the relay stopped"
        + (
            ""
            if result.rows == QUOTED_ROWS
            else f" (a quick run: `make bench BACKLOG={QUOTED_ROWS}` drains the {QUOTED_ROWS:,} "
            "the notes quote)"
        )
    ]
    if result.drain_s is not None and result.drain_rate is not None:
        relays = "one relay" if result.relays == 1 else f"{result.relays} relays"
        lines.append(
            f"drain by {relays}: {result.drain_s:,.1f} s from the start, "
            f"{result.drain_rate:,.0f} events/s acknowledged and marked (first to last); "
            f"CPU per event {_cpu(result.drain_cpu_us)}"
        )
        if ceiling:
            lines.append(
                f"  = {result.drain_rate / ceiling:.2f}x this run's ceiling ({ceiling:,.0f} "
                f"req/s); {PEER}: {PEER_EVENTS_PER_S:,} events/s = "
                f"{PEER_EVENTS_PER_S / ceiling:.2f}x this machine's ceiling — other hardware"
            )
    if result.settle_s is not None and result.settle_rate is not None:
        lines.append(
            f"worker on that backlog: {result.settle_s:,.1f} s from its start, "
            f"{result.settle_rate:,.0f} orders/s CONFIRMED (first to last), each "
            f"order.confirmed published too; CPU per order {_cpu(result.settle_cpu_us)}"
        )
    if result.error:
        lines.append(f"backlog FAILED: {result.error}")
    return lines


def backlog_markdown(result: BacklogResult, ceiling: float | None) -> list[str]:
    return [
        "## Backlog drain",
        "",
        *(f"- {line.strip()}" for line in backlog_lines(result, ceiling)),
    ]
