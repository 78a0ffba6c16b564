from __future__ import annotations

import random

import pytest

from order_service.loadtest.stats import LatencyHistogram, LatencySummary, percentile


def test_nearest_rank_percentile_of_one_to_a_hundred_is_the_rank_itself() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0) == 1.0


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile([], 99) == 0.0


def test_summary_sorts_its_input_and_reports_mean_and_max() -> None:
    summary = LatencySummary.of([0.3, 0.1, 0.2])
    assert summary.count == 3
    assert summary.p50_s == 0.2
    assert summary.max_s == 0.3
    assert summary.mean_s == pytest.approx(0.2)
    assert summary.as_ms()["p99"] == 300.0


def test_histogram_percentiles_are_within_two_percent_of_the_exact_ones() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(-4, 1) for _ in range(20_000)]
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(value)
    ordered = sorted(values)
    for q in (50, 90, 99):
        exact = percentile(ordered, q)
        assert histogram.percentile(q) == pytest.approx(exact, rel=0.021)
    assert histogram.percentile(100) == ordered[-1]
    assert histogram.count == 20_000


def test_histogram_never_reports_more_than_the_largest_sample() -> None:
    histogram = LatencyHistogram()
    histogram.record(0.0105)
    assert histogram.percentile(99) == 0.0105
    assert LatencyHistogram().percentile(99) == 0.0
