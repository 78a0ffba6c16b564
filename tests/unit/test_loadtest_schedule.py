from __future__ import annotations

import random

import pytest

from order_service.loadtest.schedule import (
    HARD_MAX_DURATION_S,
    HARD_MAX_TOTAL,
    Budget,
    arrival_offset,
    cancel_delay,
    worker_start_offsets,
)


def test_without_ramp_up_arrivals_are_evenly_spaced_at_the_rate() -> None:
    assert [arrival_offset(k, rate=4) for k in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_the_seeds_ten_every_two_seconds_is_rate_five_in_bursts_of_ten() -> None:
    offsets = [arrival_offset(k, rate=5, burst=10) for k in range(30)]
    assert offsets[:10] == [0.0] * 10
    assert offsets[10:20] == [2.0] * 10
    assert offsets[20:] == [4.0] * 10


def test_ramp_up_sends_half_the_full_rate_during_the_ramp_then_the_full_rate() -> None:
    rate, ramp = 100.0, 10.0
    during = [k for k in range(2000) if arrival_offset(k, rate, ramp) < ramp]
    assert len(during) == 500  # the area of the triangle: rate * ramp / 2
    gaps = [arrival_offset(k + 1, rate, ramp) - arrival_offset(k, rate, ramp) for k in (10, 100)]
    assert gaps[0] > gaps[1]  # arrivals get denser as the rate climbs
    assert arrival_offset(600, rate, ramp) - arrival_offset(599, rate, ramp) == pytest.approx(0.01)


def test_a_non_positive_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        arrival_offset(0, rate=0)


def test_closed_model_workers_join_evenly_over_the_ramp() -> None:
    assert worker_start_offsets(4, 2.0) == [0.0, 0.5, 1.0, 1.5]
    assert worker_start_offsets(3) == [0.0, 0.0, 0.0]


def test_budget_stops_at_the_total() -> None:
    budget = Budget(total=3, duration_s=None)
    assert [budget.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert budget.issued == 3


def test_budget_stops_at_the_duration() -> None:
    budget = Budget(total=None, duration_s=2.0)
    assert budget.take(1.99)
    assert not budget.take(2.0)


def test_budget_clamps_to_the_hard_caps() -> None:
    budget = Budget(total=10**9, duration_s=10**9)
    assert budget.total == HARD_MAX_TOTAL
    assert budget.duration_s == HARD_MAX_DURATION_S


def test_the_cancel_ratio_is_the_share_of_accepted_orders_cancelled_within_the_delay() -> None:
    """Catches a ratio applied the wrong way round (1 - ratio cancelled) and delays drawn
    outside [0, max], which would stop cancels from racing the worker's decision."""
    rng = random.Random(3)
    delays = [cancel_delay(rng, 0.3, 0.25) for _ in range(10_000)]
    chosen = [d for d in delays if d is not None]
    assert len(chosen) / len(delays) == pytest.approx(0.3, abs=0.02)
    assert all(0.0 <= d <= 0.25 for d in chosen)
    assert max(chosen) > 0.2 and min(chosen) < 0.05  # spread over the window, not one value


def test_no_cancel_ratio_cancels_nothing_and_a_full_one_cancels_everything() -> None:
    """Catches a ratio of 0 that still cancels now and then (a draw of exactly 0.0)."""
    rng = random.Random(5)
    assert all(cancel_delay(rng, 0.0, 1.0) is None for _ in range(1_000))
    assert all(cancel_delay(rng, 1.0, 0.0) == 0.0 for _ in range(1_000))
