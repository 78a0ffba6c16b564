"""`make bench`: every figure in one run, then the report; exit 1 if anything failed or an
order was lost.

PostgreSQL runs throughout; the brokers one after the other, each warmed up by our stack
under load first. With Tansu: the ceiling, the seed's design, ours. With Apache Kafka: the
seed's design, ours, latency under rising load and the backlog drain. The ceiling comes first
so that both brokers' ratios are taken minutes from it, not a quarter of an hour.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.status import Status

from bench import figures, load_plot, report
from bench.backlog import DEFAULT_ROWS, QUOTED_ROWS, BacklogResult, backlog
from bench.infra import BROKER_LABELS, BrokerKind, Infra, broker, postgres
from bench.phases import BROKER_PHASES, LABELS, PhaseResult, ceiling, warm_broker
from bench.stack import Context
from bench.sweep import SweepResult, sweep

T = TypeVar("T")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--backlog",
        type=int,
        default=DEFAULT_ROWS,
        help=f"rows in the backlog drain (default {DEFAULT_ROWS:,}: a quick run; results.md "
        f"quotes {QUOTED_ROWS:,}; 0 skips it)",
    )
    parser.add_argument(
        "--backlog-relays", type=int, default=1, help="relays draining the backlog together"
    )
    parser.add_argument("--no-sweep", action="store_true", help="skip latency under rising load")
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    # Kafka's readiness is polled by metadata requests; the refusals before it listens are
    # expected, and aiokafka would log each one.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    console = Console(width=max(Console().width, 120))
    if shutil.which("wrk") is None:
        console.print("[red]wrk not found[/]: run `make system-deps` (Debian package wrk)")
        return 2
    work_dir = Path(tempfile.mkdtemp(prefix="order-bench-"))
    run = report.Run()
    started = time.monotonic()
    with console.status("starting PostgreSQL ...") as status, postgres(work_dir) as pg:
        plan: list[tuple[BrokerKind, list[Callable[[Context], PhaseResult]]]] = [
            ("tansu", [ceiling, *BROKER_PHASES]),
            ("kafka", [*BROKER_PHASES]),
        ]
        for kind, phases in plan:
            status.update(f"starting {BROKER_LABELS[kind]} ...")
            with broker(kind, work_dir) as server:
                ctx = Context(Infra(pg, server, kind, work_dir))
                status.update(f"warming {BROKER_LABELS[kind]} up ...")
                warm_broker(ctx)
                for phase in phases:
                    status.update(f"{phase.__name__} on {BROKER_LABELS[kind]} ...")
                    run.phases.append(_phase(phase, ctx))
                    _done(console, f"{phase.__name__} on {kind}", run.phases[-1].ok)
                if kind == "kafka":
                    _growth_figures(ctx, args, run, console, status)
    run.seconds = time.monotonic() - started
    report.show(console, run)
    if run.sweep is not None and run.sweep.levels:
        plot = load_plot.write_svg(figures.PLOT, run.sweep.levels, figures.sweep_title(run.sweep))
        console.print(f"plot written to {plot}")
    console.print(f"written to {report.write(run)}")
    if run.ok:
        shutil.rmtree(work_dir, ignore_errors=True)
        return 0
    console.print(f"[red]bench failed[/]; process logs kept in {work_dir}")
    return 1


def _growth_figures(
    ctx: Context, args: argparse.Namespace, run: report.Run, console: Console, status: Status
) -> None:
    """On Apache Kafka: latency under rising load, then the backlog drain."""
    if not args.no_sweep:
        status.update("latency under rising load ...")
        run.sweep = _guarded(lambda: sweep(ctx), lambda e: SweepResult(ctx.infra.kind, [], error=e))
        _done(console, "latency under rising load", run.sweep.ok)
    if args.backlog > 0:
        status.update(f"backlog drain of {args.backlog:,} rows ...")
        run.backlog = _guarded(
            lambda: backlog(ctx, args.backlog, relays=args.backlog_relays),
            lambda e: BacklogResult(args.backlog, relays=args.backlog_relays, error=e),
        )
        _done(console, "backlog drain", run.backlog.ok)


def _done(console: Console, what: str, ok: bool) -> None:
    console.print(f"{what}: " + ("done" if ok else "[red]FAILED[/]"))


def _guarded(measure: Callable[[], T], failed: Callable[[str], T]) -> T:
    """One failing figure must not hide the others."""
    try:
        return measure()
    except Exception as exc:
        return failed(f"{type(exc).__name__}: {exc}")


def _phase(phase: Callable[[Context], PhaseResult], ctx: Context) -> PhaseResult:
    name = phase.__name__
    broker_kind = None if name == "ceiling" else ctx.infra.kind
    return _guarded(
        lambda: phase(ctx),
        lambda e: PhaseResult(name, LABELS.get(name, name), broker_kind, error=e),
    )
