"""The bench's output: a rich table on the terminal and `bench/results.md`."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

from bench import wrk
from bench.phases import MEASURE_S, WARMUP_S, PhaseResult

RESULTS = Path(__file__).with_name("results.md")
# Everything below this line in results.md survives a re-run: notes on what each step bought.
KEEP_MARKER = "<!-- notes below this line are kept when `make bench` rewrites the file -->"

COLUMNS = (
    "phase", "orders/s", "p50", "p99", "errors", "e2e p99", "drain", "peak RSS (MB)",
)  # fmt: skip


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    ram_gib = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores, {ram_gib:.1f} GiB RAM, {cpu_model()}, {platform.platform()}"


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.1f} ms"


LEGEND = (
    "(a) ceiling: FastAPI that only validates the body and answers 201",
    "(b) seed design: SQLModel INSERT + COMMIT, then aiokafka send_and_wait, per request",
    "(c) ours: `order-service api` + `relay` + `worker` (transactional outbox)",
)


def _row(result: PhaseResult, sep: str = "\n") -> list[str]:
    rss = sep.join(f"{name} {mb:,.0f}" for name, mb in result.rss_mb.items()) or "—"
    m = result.measured
    if m is None:
        return [result.label, "failed", "—", "—", "—", "—", "—", rss]
    drain = "—" if result.rows is None else (
        f"{result.drain_s:,.2f} s" if result.drain_s is not None else "NOT DRAINED"
    )  # fmt: skip
    return [
        result.label, f"{m.ok_per_s:,.0f}", _ms(m.p50_s), _ms(m.p99_s), f"{m.errors:,}",
        _ms(result.e2e_p99_s), drain, rss,
    ]  # fmt: skip


def ratios(results: Sequence[PhaseResult]) -> dict[str, float | None]:
    rate = {r.key: r.measured.ok_per_s if r.measured else None for r in results}
    ours = rate.get("ours")

    def over(base: str) -> float | None:
        denominator = rate.get(base)
        return ours / denominator if ours is not None and denominator else None

    return {"ours / ceiling": over("ceiling"), "ours / seed design": over("seed")}


def verdicts(results: Sequence[PhaseResult]) -> list[str]:
    lines = []
    for r in results:
        if r.error:
            text = [line.strip() for line in r.error.splitlines() if line.strip()]
            cause = f" … {text[-1]}" if len(text) > 1 else ""
            lines.append(f"{r.label}: could not run: {text[0]}{cause}")
        elif not r.delivery_ok:
            lines.append(
                f"{r.label}: NOT every accepted order confirmed: {r.accepted_total:,} accepted, "
                f"{r.rows:,} stored, {r.confirmed:,} confirmed"
            )
        elif r.rows is not None:
            lines.append(
                f"{r.label}: all {r.rows:,} stored orders confirmed "
                f"(>= {r.accepted_total:,} acknowledged); e2e p50 {_ms(r.e2e_p50_s)}"
            )
    return lines


def table(results: Sequence[PhaseResult]) -> Table:
    out = Table(title=f"make bench: wrk, {wrk.CONNECTIONS} connections, {MEASURE_S:.0f} s")
    for name in COLUMNS:
        out.add_column(name, justify="left" if name == "phase" else "right")
    for result in results:
        out.add_row(*_row(result))
    return out


def show(console: Console, results: Sequence[PhaseResult]) -> None:
    console.print(table(results))
    for text in LEGEND:
        console.print(text)
    for name, value in ratios(results).items():
        console.print(f"{name}: " + ("—" if value is None else f"{value:.2f}x"))
    for line in verdicts(results):
        console.print(line)


def markdown(results: Sequence[PhaseResult], when: datetime | None = None) -> str:
    when = when or datetime.now(UTC)
    lines = [
        "# Benchmark results",
        "",
        f"- date: {when:%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}",
        f"- driver: wrk, {wrk.THREADS} threads, {wrk.CONNECTIONS} connections, "
        f"{WARMUP_S:.0f} s warm-up then {MEASURE_S:.0f} s measured per phase; one JSON order "
        "per request, each with its own item",
        "- PostgreSQL 18 (embedded, fsync on) and Tansu (memory storage) on the same machine",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_row(r, "<br>")) + " |" for r in results]
    lines += ["", *(f"- {text}" for text in LEGEND)]
    lines += ["", "orders/s counts 2xx responses only. e2e = accepted → CONFIRMED (database "
              "timestamps); drain = end of load → every order CONFIRMED; RSS of PostgreSQL sums "
              "its backends (shared memory counted more than once).", ""]  # fmt: skip
    for name, value in ratios(results).items():
        lines.append(f"- **{name}**: " + ("—" if value is None else f"{value:.2f}x"))
    lines += [f"- {line}" for line in verdicts(results)]
    return "\n".join(lines) + "\n"


def write(results: Sequence[PhaseResult], path: Path = RESULTS) -> Path:
    kept = ""
    if path.exists():
        _, marker, tail = path.read_text().partition(KEEP_MARKER)
        kept = tail if marker else ""
    path.write_text(markdown(results) + "\n" + KEEP_MARKER + (kept or "\n"))
    return path
