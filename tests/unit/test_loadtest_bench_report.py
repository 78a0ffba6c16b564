"""`make bench`: the wrk output parser and the report built from phase results."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from bench import figures, load_plot, report, wrk
from bench.backlog import BacklogResult
from bench.phases import PhaseResult
from bench.sweep import Level, SweepResult

WRK_OUTPUT = """\
Running 15s test @ http://127.0.0.1:8000/orders
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    14.05ms    3.20ms    1.02s    80.00%
    Req/Sec     2.29k   200.00     2.80k    70.00%
  Latency Distribution
     50%  612.00us
     75%   15.00ms
     90%   17.50ms
     99%    1.50s
  68512 requests in 15.00s, 12.34MB read
  Socket errors: connect 0, read 2, write 0, timeout 5
  Non-2xx or 3xx responses: 12
Requests/sec:   4567.12
Transfer/sec:      1.23MB
"""


def test_wrk_latency_report_is_parsed_with_its_units() -> None:
    result = wrk.parse(WRK_OUTPUT)
    assert result.requests == 68512
    assert result.duration_s == 15.0
    assert result.requests_per_s == 4567.12
    assert result.p50_s == pytest.approx(612e-6)
    assert result.p90_s == pytest.approx(0.0175)
    assert result.p99_s == pytest.approx(1.5)
    assert result.max_s == pytest.approx(1.02)
    assert result.non_2xx == 12
    assert result.socket_errors == {"connect": 0, "read": 2, "write": 0, "timeout": 5}
    assert result.ok_responses == 68500
    assert result.errors == 19


def test_a_clean_wrk_run_has_no_errors() -> None:
    clean = WRK_OUTPUT.replace("  Socket errors: connect 0, read 2, write 0, timeout 5\n", "")
    result = wrk.parse(clean.replace("  Non-2xx or 3xx responses: 12\n", ""))
    assert result.errors == 0
    assert result.ok_per_s == pytest.approx(68512 / 15)


def test_output_without_the_latency_distribution_is_refused() -> None:
    without = WRK_OUTPUT.replace("     99%    1.50s\n", "")
    with pytest.raises(wrk.WrkError, match="99%"):
        wrk.parse(without)
    with pytest.raises(wrk.WrkError, match="unrecognised"):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused")


def test_wrk_is_driven_at_64_connections_with_the_post_script() -> None:
    argv = wrk.command("http://h:1/orders", 15.0, "run1")
    assert "-c64" in argv
    assert "--latency" in argv
    assert argv[-3:] == ["http://h:1/orders", "--", "run1"]
    assert Path(argv[argv.index("-s") + 1]).read_text().count('wrk.method = "POST"') == 1


def _phase(key: str, rate: int, broker: str | None = "kafka", **extra: object) -> PhaseResult:
    measured = wrk.WrkResult(
        requests=rate,
        duration_s=1.0,
        requests_per_s=float(rate),
        p50_s=0.005,
        p75_s=0.006,
        p90_s=0.008,
        p99_s=0.02,
        max_s=0.05,
        non_2xx=0,
        socket_errors={},
    )
    where = None if key == "ceiling" else broker
    return PhaseResult(key, f"({key})", where, measured=measured, **extra)  # type: ignore[arg-type]


def test_ratios_compare_our_accepted_orders_per_second_per_broker() -> None:
    results = [
        _phase("ceiling", 5000),
        _phase("seed", 500),
        _phase("ours", 3000),
        _phase("seed", 400, "tansu"),
        _phase("ours", 4000, "tansu"),
    ]
    assert report.ratios(results, "kafka") == {"ours / ceiling": 0.6, "ours / seed design": 6.0}
    assert report.ratios(results, "tansu") == {"ours / ceiling": 0.8, "ours / seed design": 10.0}
    assert report.ratios(results[:2], "kafka") == {
        "ours / ceiling": None,
        "ours / seed design": None,
    }


def test_the_goal_is_judged_per_broker_on_every_part() -> None:
    settled = {"rows": 10, "confirmed": 10, "accepted_total": 10, "e2e_p99_s": 0.2}
    results = [
        _phase("ceiling", 5000),
        _phase("seed", 300),
        _phase("ours", 3000, **settled),  # 0.6x and 10x: met
        _phase("seed", 400, "tansu"),
        _phase("ours", 2500, "tansu", **settled),  # 0.5x and 6.25x: not met
    ]
    assert all(ok for _, ok in report.goal(results, "kafka"))
    missed = [name for name, ok in report.goal(results, "tansu") if not ok]
    assert missed == ["ours / ceiling ≥ 0.6", "ours / seed ≥ 8"]
    lines = report.summary_lines(results)
    assert (
        lines[0].startswith("Apache Kafka 4.1.1: ours / ceiling 0.60x") and "goal met" in lines[0]
    )
    assert "goal not met: ours / ceiling ≥ 0.6; ours / seed ≥ 8" in lines[1]


def test_an_unconfirmed_order_fails_the_phase() -> None:
    ours = _phase("ours", 3000, rows=3100, confirmed=3099, accepted_total=3100)
    assert not ours.ok
    assert "NOT every accepted order confirmed" in report.verdicts([ours])[0]
    fewer_rows_than_acknowledged = _phase(
        "ours", 3000, rows=3000, confirmed=3000, accepted_total=3001
    )
    assert not fewer_rows_than_acknowledged.ok
    drained = _phase("ours", 3000, rows=3001, confirmed=3001, accepted_total=3001, drain_s=0.4)
    assert drained.ok


def test_results_markdown_keeps_notes_below_the_marker(tmp_path: Path) -> None:
    target = tmp_path / "results.md"
    target.write_text("old table\n" + report.KEEP_MARKER + "\n## what each step bought\n- x\n")
    report.write(report.Run([_phase("ceiling", 5000)]), target)
    text = target.read_text()
    assert "old table" not in text
    assert text.endswith(report.KEEP_MARKER + "\n## what each step bought\n- x\n")
    assert "| (ceiling) | — | 5,000 |" in text
    assert "cores" in report.markdown(report.Run(), datetime(2026, 1, 2, tzinfo=UTC))


def test_wrk_never_runs_more_threads_than_connections() -> None:
    assert wrk.command("http://h:1/orders", 10.0, "r", connections=1)[1:3] == ["-t1", "-c1"]
    assert wrk.command("http://h:1/orders", 10.0, "r", connections=256)[1:3] == ["-t2", "-c256"]


def _level(connections: int, rate: float, p99_s: float) -> Level:
    measured = wrk.WrkResult(int(rate * 10), 10.0, rate, 0.004, 0.005, 0.006, p99_s, p99_s, 0, {})
    return Level(connections, measured, e2e_p99_s=0.1, settled=True)


def test_the_load_plot_has_one_labelled_point_per_level_and_series() -> None:
    levels = [_level(1, 300, 0.01), _level(16, 2000, 0.02), _level(64, 3000, 0.05)]
    svg = load_plot.render_svg(levels, "t")
    assert svg.count("<circle") == 2 * len(levels)
    assert all(f">{n} conn.</text>" in svg for n in (1, 16, 64))
    rows = figures.sweep_rows(SweepResult("kafka", levels))
    assert [row[:2] for row in rows] == [["1", "300"], ["16", "2,000"], ["64", "3,000"]]


def test_the_backlog_drain_is_compared_with_the_peer_as_ratios_to_this_runs_ceiling() -> None:
    drained = BacklogResult(
        1_000_000, insert_s=60.0, drain_s=100.0, drain_rate=10_000.0, settle_s=200.0,
        settle_rate=5_000.0, drain_cpu_us={"relay": 30.0}, settle_cpu_us={"worker": 80.0},
    )  # fmt: skip
    lines = figures.backlog_lines(drained, ceiling=5_000.0)
    text = "\n".join(lines)
    assert "10,000 events/s" in text and "= 2.00x this run's ceiling (5,000 req/s)" in text
    assert "14,500 events/s = 2.90x this machine's ceiling — other hardware" in text
    assert "5,000 orders/s CONFIRMED" in text
    assert "quick run" not in lines[0]
    assert "BACKLOG=1000000" in figures.backlog_lines(BacklogResult(10), None)[0]
