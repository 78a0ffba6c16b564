from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from order_service.loadtest.bodies import Planned, PlannedRequest
from order_service.loadtest.cancels import CancelKind, CancelOutcome
from order_service.loadtest.checks import check_books
from order_service.loadtest.command import exit_code
from order_service.loadtest.options import Endpoint, OptionError, build_options
from order_service.loadtest.outcome import Kind, Outcome
from order_service.loadtest.plot import per_second, render_html, write_plot
from order_service.loadtest.recorder import Recorder
from order_service.loadtest.stock import ManagedStock
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
        ({"managed_item": "lamp"}, "need --stock"),
        ({"managed_share": 0.5}, "need --stock"),
        ({"stock": -1}, "--stock"),
        ({"stock": 10, "managed_share": 1.5}, "--managed-share"),
        ({"stock": 10, "managed_item": "   "}, "--managed-item"),
        ({"stock": 10, "managed_item": "a/b"}, "--managed-item"),
        ({"cancel_ratio": -0.1}, "--cancel-ratio"),
        ({"cancel_delay_s": 100.0}, "--cancel-delay"),
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


def test_stock_without_an_item_manages_a_fresh_one_for_half_the_orders() -> None:
    """Catches a fixed default item (a second run would inherit the first one's reservations
    and its books could not balance) and the share left unset."""
    first, second = build_options(stock=10), build_options(stock=10)
    assert first.managed_item and first.managed_item.startswith("loadtest-")
    assert first.managed_item != second.managed_item
    assert first.managed_share == 0.5
    named = build_options(stock=0, managed_item="blue lamp", managed_share=0.9)
    assert (named.managed_item, named.managed_share) == ("blue lamp", 0.9)
    assert named.stock_url("blue lamp/x") == "http://127.0.0.1:8000/stock/blue%20lamp%2Fx"
    assert named.cancel_url("o1") == "http://127.0.0.1:8000/orders/o1/cancel"
    assert build_options().managed_item is None


def test_the_json_keeps_its_fields_and_adds_the_lifecycles() -> None:
    """Catches a renamed or dropped field that scripts read, and the new answers (409 in
    flight, 503 not_written / unknown) counted among the errors."""
    recorder = _recorder()
    replay = PlannedRequest(Planned.REPLAY, b"{}", "key", replay_of="o1")
    recorder.record(Outcome(replay, Kind.REPLAY_IN_FLIGHT, 409, 0.01, 1.0, retry_after_s=1.0))
    recorder.record(Outcome(NEW, Kind.NOT_WRITTEN, 503, 0.01, 1.0))
    recorder.record(Outcome(NEW, Kind.OUTCOME_UNKNOWN, 503, 0.01, 1.0, "o77"))
    recorder.record_cancel(CancelOutcome("o1", "c1", CancelKind.CANCELLED, 200, 0.02))
    recorder.record_cancel(CancelOutcome("o2", "c2", CancelKind.NOT_FOUND, 404, 0.02))
    options = build_options(rate=10.0, duration_s=3.0, stock=5, cancel_ratio=0.2)
    managed = ManagedStock(str(options.managed_item), 5, 0.5, 0)
    data = summarize(options, recorder, 3.0, False, 0, managed).as_dict()
    for name in ("target", "model", "elapsed_s", "interrupted", "requests", "throughput_rps",
                 "accepted_per_s", "latency_ms", "outcomes", "errors", "error_details",
                 "status_codes", "verify", "plot"):  # fmt: skip
        assert name in data
    assert data["errors"] == {
        "timeout": 1,
        "connection": 0,
        "4xx": 0,
        "5xx": 1,
        "unexpected": 0,
        "dropped": 1,
    }
    assert data["outcomes"] == {
        "accepted": 10,
        "replayed": 0,
        "rejected_invalid": 0,
        "replay_in_flight": 1,
        "not_written": 1,
        "outcome_unknown": 1,
    }
    assert data["managed_item"] == managed.as_dict()
    cancels = data["cancels"]
    assert isinstance(cancels, dict)
    assert (cancels["sent"], cancels["orders"]) == (2, 2)
    assert cancels["outcomes"]["cancelled"] == 1 and cancels["errors"]["404"] == 1
    # the plain 503, the timeout and the 503 "unknown" naming its order; not "not_written"
    assert [u.order_id for u in recorder.unresolved] == [None, None, "o77"]


def test_verify_fails_on_a_problem_even_when_every_order_settled() -> None:
    """Catches `ok` still meaning "every order CONFIRMED": REJECTED and CANCELLED settle,
    and a failed check (here the books) fails the run however the orders ended."""
    options = build_options(total=1)
    summary = summarize(options, _recorder(), 1.0, False, 0)
    settled = VerifyResult(3, {"CONFIRMED": 1, "REJECTED": 1, "CANCELLED": 1}, 0.5, False)
    assert settled.ok and exit_code(replace(summary, verify=settled), options) == 0
    books = check_books("lamp", 10, 0, (9, 0), [])
    cooked = replace(settled, books=books, problems=list(books.problems))
    assert not cooked.ok and exit_code(replace(summary, verify=cooked), options) == 1
    pending = VerifyResult(2, {"CONFIRMED": 1, "PENDING": 1}, None, True)
    assert not pending.ok and pending.as_dict()["unsettled"] == 1
