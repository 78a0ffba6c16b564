"""What people see: the live progress line on stderr and the final summary tables."""

from __future__ import annotations

from rich.console import Console, Group
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from order_service.loadtest.options import LoadOptions
from order_service.loadtest.recorder import Recorder
from order_service.loadtest.summary import Summary


class LiveProgress:
    """Rate over the last refresh, errors and p99 so far; refreshed by the caller's ticker."""

    def __init__(self, console: Console, options: LoadOptions) -> None:
        self._by_count = options.duration_s is None
        total = float(options.total) if self._by_count and options.total else options.duration_s
        self._progress = Progress(
            TextColumn("[bold]load[/]"),
            BarColumn(),
            TextColumn("{task.fields[line]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID = self._progress.add_task("load", total=total, line="starting")
        self._with_cancels = options.cancel_ratio > 0
        self._last_completed = 0
        self._last_elapsed = 0.0

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def update(
        self, recorder: Recorder, elapsed_s: float, issued: int, final: bool = False
    ) -> None:
        snap = recorder.snapshot()
        window = max(elapsed_s - self._last_elapsed, 1e-6)
        rate = (snap.completed - self._last_completed) / window
        self._last_completed, self._last_elapsed = snap.completed, elapsed_s
        line = (
            f"{snap.completed} done  {rate:,.0f} req/s  "
            f"errors {snap.errors}  p99 {snap.p99_s * 1000:,.1f} ms"
        )
        done = float(issued) if self._by_count else elapsed_s
        if final:
            line = f"{snap.completed} done  errors {snap.errors}  p99 {snap.p99_s * 1000:,.1f} ms"
        if self._with_cancels:
            line += f"  cancels {snap.cancels}"
        self._progress.update(self._task, completed=done, line=line)


def _ms(value_s: float) -> str:
    return f"{value_s * 1000:,.1f} ms"


def summary_tables(summary: Summary) -> Group:
    head = Table(title=f"load test: {summary.target} ({summary.model})", show_header=False)
    head.add_column("metric", style="bold")
    head.add_column("value", justify="right")
    interrupted = "  (interrupted by Ctrl-C)" if summary.interrupted else ""
    head.add_row("duration", f"{summary.elapsed_s:,.2f} s{interrupted}")
    head.add_row("requests completed", f"{summary.completed:,} of {summary.sent:,} sent")
    head.add_row("throughput", f"{summary.throughput_rps:,.1f} req/s")
    head.add_row("accepted orders", f"{summary.accepted:,} ({summary.accepted_per_s:,.1f}/s)")
    lat = summary.latency
    for name, value in (("p50", lat.p50_s), ("p90", lat.p90_s), ("p99", lat.p99_s)):
        head.add_row(f"latency {name}", _ms(value))
    head.add_row("latency max", _ms(lat.max_s))
    counts = Table(title="responses and errors")
    counts.add_column("kind")
    counts.add_column("count", justify="right")
    for code, n in summary.status_codes.items():
        counts.add_row(f"HTTP {code}", f"{n:,}")
    for name, n in summary.outcomes.items():
        counts.add_row(name, f"{n:,}")
    for name, n in summary.errors.items():
        counts.add_row(f"[red]error: {name}[/]" if n else f"error: {name}", f"{n:,}")
    for detail, n in summary.error_details.items():
        counts.add_row(f"  {detail}", f"{n:,}")
    if summary.managed is not None:
        managed = summary.managed
        head.add_row(
            "managed item",
            f"{managed.item} (stock {managed.stock_set:,}, {managed.share:.0%} of new orders)",
        )
    parts: list[Table] = [head, counts]
    if summary.cancels is not None:
        parts.append(_cancel_table(summary))
    if summary.verify is not None:
        parts.append(_verify_table(summary))
    return Group(*parts)


def _cancel_table(summary: Summary) -> Table:
    cancels = summary.cancels
    assert cancels is not None
    table = Table(title=f"cancellations (--cancel-ratio {cancels.ratio:g})")
    table.add_column("kind")
    table.add_column("count", justify="right")
    table.add_row("orders asked to cancel", f"{cancels.orders:,}")
    table.add_row("requests", f"{cancels.sent:,}  p99 {_ms(cancels.latency.p99_s)}")
    for code, n in cancels.status_codes.items():
        table.add_row(f"HTTP {code}", f"{n:,}")
    for name, n in cancels.outcomes.items():
        table.add_row(name, f"{n:,}")
    for name, n in cancels.errors.items():
        table.add_row(f"[red]error: {name}[/]" if n else f"error: {name}", f"{n:,}")
    for detail, n in cancels.error_details.items():
        table.add_row(f"  {detail}", f"{n:,}")
    if cancels.abandoned:
        table.add_row("abandoned (Ctrl-C)", f"{cancels.abandoned:,}")
    return table


def _verify_table(summary: Summary) -> Table:
    result = summary.verify
    assert result is not None
    table = Table(title="delivery check (--verify)", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    verdict = "[green]all settled, every check held[/]" if result.ok else "[red]FAILED[/]"
    table.add_row("verdict", verdict)
    table.add_row("settled", f"{result.settled:,} of {result.expected:,}")
    for state, n in sorted(result.states.items()):
        table.add_row(f"  {state}", f"{n:,}")
    drain = f"{result.drain_s:,.2f} s" if result.drain_s is not None else "not drained"
    table.add_row("drain time", drain)
    if result.resolution is not None and (
        result.resolution.asked or result.resolution.cancels_asked
    ):
        r = result.resolution
        table.add_row(
            "lost answers asked again",
            f"{r.asked:,} orders: {r.created:,} exist, {r.not_created:,} do not, "
            f"{r.unresolved:,} unresolved; {r.cancels_asked:,} cancels",
        )
    if result.books is not None:
        books = result.books
        mark = "[green]balanced[/]" if books.ok else "[red]OFF[/]"
        table.add_row(
            f"books of {books.item}",
            f"{mark}  available {books.available} + confirmed {books.confirmed_units:,} "
            f"(set {books.stock_set:,}), reserved {books.reserved}",
        )
    for problem in result.problems:
        table.add_row("[red]problem[/]", problem)
    if result.failed_ids:
        table.add_row("e.g.", result.failed_ids[0])
    return table
