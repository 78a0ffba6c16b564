from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from order_service.loadtest.bodies import Planned, PlannedRequest
from order_service.loadtest.command import exit_code
from order_service.loadtest.options import Endpoint, OptionError, build_options
from order_service.loadtest.outcome import Kind, Outcome
from order_service.loadtest.plot import per_second, render_html, write_plot
from order_service.loadtest.recorder import Recorder
from order_service.loadtest.summary import summarize
from order_service.loadtest.verify import VerifyResult

NEW = PlannedRequest(Planned.NEW, b"{}", "key")


def test_defaults_are_a_closed_model_of_ten_for_thirty_seconds() -> None:
    options = build_options()
    assert (options.concurrency, options.duration_s, options.rate) == (10, 30.0, None)
    assert options.post_url == "http://127.0.0.1:8000/orders"


def test_seed_endpoint_and_token_shape_the_requests() -> None:
    options = build_options(url="http://h:1/", endpoint=Endpoint.ORDER, token="t", total=5)
    assert options.post_url == "http://h:1/order"
    assert options.order_url("x") == "http://h:1/orders/x"
    assert options.headers()["Authorization"] == "Bearer t"
    assert options.duration_s is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rate": 5.0, "concurrency": 2}, "exclude"),
        ({"rate": -1.0}, "--rate"),
        ({"total": 0}, "--total"),
        ({"duration_s": 10_000.0}, "--duration"),
        ({"replay_ratio": 0.7, "invalid_ratio": 0.7}, "exceed"),
        ({"invalid_ratio": 1.5}, "--invalid-ratio"),
        ({"url": "localhost:8000"}, "--url"),
    ],
)
def test_options_that_cannot_run_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        build_options(**values)


def _recorder() -> Recorder:
    recorder = Recorder()
    for i in range(10):
        recorder.record(Outcome(NEW, Kind.ACCEPTED, 201, 0.01 * (i + 1), i * 0.3, f"o{i}"))
    recorder.record(Outcome(NEW, Kind.SERVER_ERROR, 503, 0.5, 1.0))
    recorder.record(Outcome(NEW, Kind.TIMEOUT, None, 2.0, 1.0))
    recorder.record(Outcome(NEW, Kind.DROPPED, None, 0.0, 1.0))
    return recorder


def test_summary_counts_outcomes_statuses_and_errors_by_kind() -> None:
    options = build_options(rate=10.0, duration_s=3.0)
    summary = summarize(options, _recorder(), elapsed_s=3.0, interrupted=False, cancelled=0)
    data = summary.as_dict()
    assert data["status_codes"] == {"201": 10, "503": 1}
    assert data["errors"] == {
        "timeout": 1,
        "connection": 0,
        "4xx": 0,
        "5xx": 1,
        "unexpected": 0,
        "dropped": 1,
    }
    assert data["requests"] == {"sent": 12, "completed": 12, "cancelled": 0}
    assert data["throughput_rps"] == 4.0
    assert data["latency_ms"]["max"] == 2000.0
    assert summary.model == "open, 10 orders/s"
    assert exit_code(summary, options) == 0


def test_exit_code_tells_loss_from_interruption_from_refusal() -> None:
    options = build_options(total=1)
    summary = summarize(options, _recorder(), 1.0, False, 0)
    lost = VerifyResult(10, {"CONFIRMED": 9, "MISSING": 1}, None, False, ["o3"])
    assert exit_code(replace(summary, verify=lost), options) == 1
    assert exit_code(replace(summary, interrupted=True), options) == 130
    assert exit_code(replace(summary, accepted=0), options) == 3


def test_per_second_series_groups_samples_by_the_second_they_were_due() -> None:
    series = per_second([0.1, 0.5, 0.9, 2.2], [0.001, 0.003, 0.002, 0.010])
    assert [(s.second, s.count, s.max_ms) for s in series] == [(0, 3, 3.0), (2, 1, 10.0)]
    assert series[0].p50_ms == 2.0


def test_a_png_request_without_matplotlib_falls_back_to_html(tmp_path: Path) -> None:
    series = per_second([0.0, 1.0], [0.001, 0.002])
    written = write_plot(tmp_path / "plot.png", series, "t")
    if written.suffix == ".html":
        assert "<svg" in written.read_text()
    else:
        assert written.read_bytes().startswith(b"\x89PNG")
    assert "<script" not in render_html(series, "<script>")
