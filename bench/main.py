"""Run the three phases in one go and report; exit 1 if a phase failed or lost an order."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rich.console import Console

from bench import report
from bench.infra import infrastructure
from bench.phases import LABELS, PHASES, Context, PhaseResult


def main() -> int:
    console = Console(width=max(Console().width, 110))
    if shutil.which("wrk") is None:
        console.print("[red]wrk not found[/]: run `make system-deps` (Debian package wrk)")
        return 2
    work_dir = Path(tempfile.mkdtemp(prefix="order-bench-"))
    results: list[PhaseResult] = []
    with console.status("starting PostgreSQL and the Kafka broker ..."):
        stack = infrastructure(work_dir)
        infra = stack.__enter__()
    try:
        ctx = Context(infra)
        for phase in PHASES:
            with console.status(f"phase {phase.__name__} ..."):
                results.append(_run(phase, ctx))
            console.print(f"phase {phase.__name__}: " + ("done" if results[-1].ok else "FAILED"))
    finally:
        stack.__exit__(None, None, None)
    report.show(console, results)
    path = report.write(results)
    console.print(f"written to {path}")
    if all(r.ok for r in results):
        shutil.rmtree(work_dir, ignore_errors=True)
        return 0
    console.print(f"[red]bench failed[/]; process logs kept in {work_dir}")
    return 1


def _run(phase: object, ctx: Context) -> PhaseResult:
    assert callable(phase)
    try:
        result: PhaseResult = phase(ctx)
    except Exception as exc:  # one failing phase must not hide the others
        name = getattr(phase, "__name__", "phase")
        return PhaseResult(name, LABELS.get(name, name), error=f"{type(exc).__name__}: {exc}")
    return result
