"""`make bench`: the wrk output parser and the report built from phase results."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from bench import report, wrk
from bench.phases import PhaseResult

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


def _phase(key: str, rate: int, **extra: object) -> PhaseResult:
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
    return PhaseResult(key, f"({key})", measured=measured, **extra)  # type: ignore[arg-type]


def test_ratios_compare_our_accepted_orders_per_second() -> None:
    results = [_phase("ceiling", 5000), _phase("seed", 500), _phase("ours", 3000)]
    assert report.ratios(results) == {"ours / ceiling": 0.6, "ours / seed design": 6.0}
    assert report.ratios(results[:2]) == {"ours / ceiling": None, "ours / seed design": None}


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
    report.write([_phase("ceiling", 5000)], target)
    text = target.read_text()
    assert "old table" not in text
    assert text.endswith(report.KEEP_MARKER + "\n## what each step bought\n- x\n")
    assert "| (ceiling) | 5,000 |" in text
    assert "cores" in report.markdown([], datetime(2026, 1, 2, tzinfo=UTC))
