"""The bench's output: rich tables on the terminal and `bench/results.md`."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

from bench import figures, wrk
from bench.backlog import BacklogResult
from bench.infra import BROKER_LABELS, BROKERS
from bench.phases import MEASURE_S, WARMUP_S, PhaseResult
from bench.sweep import SweepResult

RESULTS = Path(__file__).with_name("results.md")
# Everything below this line in results.md survives a re-run: notes on what each step bought.
KEEP_MARKER = "<!-- notes below this line are kept when `make bench` rewrites the file -->"

COLUMNS = (
    "phase", "broker", "orders/s", "p50", "p99", "errors", "e2e p99", "drain", "peak RSS (MB)",
)  # fmt: skip

# The goal for ours, per broker (make bench, one run).
GOAL_CEILING = 0.6
GOAL_SEED = 8.0
GOAL_P99_S = 0.030
GOAL_E2E_P99_S = 0.250


@dataclass
class Run:
    phases: list[PhaseResult] = field(default_factory=list)
    sweep: SweepResult | None = None
    backlog: BacklogResult | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        parts = [*(p.ok for p in self.phases)]
        parts += [self.sweep.ok] if self.sweep else []
        parts += [self.backlog.ok] if self.backlog else []
        return all(parts)

    def ceiling_rate(self) -> float | None:
        return rate_of(self.phases, "ceiling", None)


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


def ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.1f} ms"


LEGEND = (
    "(a) ceiling: FastAPI that only validates the body and answers 201",
    "(b) seed design: SQLModel INSERT + COMMIT, then aiokafka send_and_wait (its defaults: "
    "acks=1, no idempotence), per request",
    "(c) ours: `order-service api` + `relay` + `worker` (transactional outbox; acks=all, "
    "idempotence on Apache Kafka — Tansu refuses it)",
)


def _row(result: PhaseResult, sep: str = "\n") -> list[str]:
    rss = sep.join(f"{name} {mb:,.0f}" for name, mb in result.rss_mb.items()) or "—"
    broker = BROKER_LABELS[result.broker] if result.broker else "—"
    m = result.measured
    if m is None:
        return [result.label, broker, "failed", "—", "—", "—", "—", "—", rss]
    drain = "—" if result.rows is None else (
        f"{result.drain_s:,.2f} s" if result.drain_s is not None else "NOT DRAINED"
    )  # fmt: skip
    return [
        result.label, broker, f"{m.ok_per_s:,.0f}", ms(m.p50_s), ms(m.p99_s), f"{m.errors:,}",
        ms(result.e2e_p99_s), drain, rss,
    ]  # fmt: skip


def rate_of(results: Sequence[PhaseResult], key: str, broker: str | None) -> float | None:
    for r in results:
        if r.key == key and (key == "ceiling" or r.broker == broker) and r.measured:
            return r.measured.ok_per_s
    return None


def ratios(results: Sequence[PhaseResult], broker: str) -> dict[str, float | None]:
    ours = rate_of(results, "ours", broker)

    def over(base: str) -> float | None:
        denominator = rate_of(results, base, broker)
        return ours / denominator if ours is not None and denominator else None

    return {"ours / ceiling": over("ceiling"), "ours / seed design": over("seed")}


def goal(results: Sequence[PhaseResult], broker: str) -> list[tuple[str, bool]]:
    """Each part of the goal with whether this run met it on `broker`."""
    ours = next((r for r in results if r.key == "ours" and r.broker == broker), None)
    if ours is None or ours.measured is None:
        return []
    r = ratios(results, broker)
    ceiling, seed = r["ours / ceiling"], r["ours / seed design"]
    return [
        (f"ours / ceiling ≥ {GOAL_CEILING}", ceiling is not None and ceiling >= GOAL_CEILING),
        (f"ours / seed ≥ {GOAL_SEED:.0f}", seed is not None and seed >= GOAL_SEED),
        (f"p99 ≤ {GOAL_P99_S * 1000:.0f} ms", ours.measured.p99_s <= GOAL_P99_S),
        (
            f"e2e p99 ≤ {GOAL_E2E_P99_S * 1000:.0f} ms",
            ours.e2e_p99_s is not None and ours.e2e_p99_s <= GOAL_E2E_P99_S,
        ),
        ("every order settled", ours.rows is not None and ours.delivery_ok),
    ]


def summary_lines(results: Sequence[PhaseResult]) -> list[str]:
    lines = []
    for broker in BROKERS:
        r = ratios(results, broker)
        if all(v is None for v in r.values()):
            continue
        text = ", ".join(f"{k} {'—' if v is None else f'{v:.2f}x'}" for k, v in r.items())
        met = goal(results, broker)
        missed = [name for name, ok in met if not ok]
        verdict = "goal met" if met and not missed else "goal not met: " + "; ".join(missed)
        lines.append(f"{BROKER_LABELS[broker]}: {text} — {verdict}")
    return lines


def verdicts(results: Sequence[PhaseResult]) -> list[str]:
    lines = []
    for r in results:
        name = f"{r.label} on {BROKER_LABELS[r.broker]}" if r.broker else r.label
        if r.error:
            text = [line.strip() for line in r.error.splitlines() if line.strip()]
            cause = f" … {text[-1]}" if len(text) > 1 else ""
            lines.append(f"{name}: could not run: {text[0]}{cause}")
        elif not r.delivery_ok:
            lines.append(
                f"{name}: NOT every accepted order confirmed: {r.accepted_total:,} accepted, "
                f"{r.rows:,} stored, {r.confirmed:,} confirmed"
            )
        elif r.rows is not None:
            lines.append(
                f"{name}: all {r.rows:,} stored orders confirmed "
                f"(>= {r.accepted_total:,} acknowledged); e2e p50 {ms(r.e2e_p50_s)}"
            )
    return lines


def table(results: Sequence[PhaseResult]) -> Table:
    out = Table(title=f"make bench: wrk, {wrk.CONNECTIONS} connections, {MEASURE_S:.0f} s")
    for name in COLUMNS:
        out.add_column(name, justify="left" if name in ("phase", "broker") else "right")
    for result in results:
        out.add_row(*_row(result))
    return out


def show(console: Console, run: Run) -> None:
    console.print(table(run.phases))
    for text in LEGEND:
        console.print(text)
    for line in summary_lines(run.phases) + verdicts(run.phases):
        console.print(line)
    if run.sweep is not None:
        console.print(figures.sweep_table(run.sweep))
    if run.backlog is not None:
        for line in figures.backlog_lines(run.backlog, run.ceiling_rate()):
            console.print(line)
    console.print(f"make bench took {run.seconds / 60:.1f} min")


def markdown(run: Run, when: datetime | None = None) -> str:
    when = when or datetime.now(UTC)
    lines = [
        "# Benchmark results",
        "",
        f"- date: {when:%Y-%m-%d %H:%M} UTC; `make bench` took {run.seconds / 60:.1f} min",
        f"- machine: {machine()}",
        f"- driver: wrk, {wrk.THREADS} threads, {wrk.CONNECTIONS} connections, "
        f"{WARMUP_S:.0f} s warm-up then {MEASURE_S:.0f} s measured per phase; one JSON order "
        "per request, each with its own item",
        "- PostgreSQL 18 (embedded, fsync on); Apache Kafka 4.1.1 (one KRaft node) and Tansu "
        "(memory storage), one at a time; everything on the same machine",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_row(r, "<br>")) + " |" for r in run.phases]
    lines += ["", *(f"- {text}" for text in LEGEND)]
    lines += ["", "orders/s counts 2xx responses only. e2e = accepted → CONFIRMED (database "
              "timestamps); drain = end of load → every order CONFIRMED; RSS of PostgreSQL sums "
              "its backends (shared memory counted more than once).", ""]  # fmt: skip
    lines += [f"- **{line}**" for line in summary_lines(run.phases)]
    lines += [f"- {line}" for line in verdicts(run.phases)]
    if run.sweep is not None:
        lines += ["", *figures.sweep_markdown(run.sweep)]
    if run.backlog is not None:
        lines += ["", *figures.backlog_markdown(run.backlog, run.ceiling_rate())]
    return "\n".join(lines) + "\n"


def write(run: Run, path: Path = RESULTS) -> Path:
    kept = ""
    if path.exists():
        _, marker, tail = path.read_text().partition(KEEP_MARKER)
        kept = tail if marker else ""
    path.write_text(markdown(run) + "\n" + KEEP_MARKER + (kept or "\n"))
    return path
