"""When requests are due: the open model's arrival times, the closed model's start offsets,
the delay before an accepted order is cancelled, and the budget that bounds every run in
count and time."""

from __future__ import annotations

import math
import random

HARD_MAX_TOTAL = 1_000_000
HARD_MAX_DURATION_S = 3_600.0


def _steady_offset(n: int, rate: float, ramp_up_s: float) -> float:
    """Offset of the n-th arrival when the rate climbs linearly from 0 to `rate` over the ramp.

    During the ramp the cumulative arrivals are rate * t^2 / (2 * ramp), which inverts to
    t = sqrt(2 * ramp * n / rate); afterwards arrivals are evenly spaced at the full rate.
    """
    if ramp_up_s <= 0:
        return n / rate
    during_ramp = rate * ramp_up_s / 2.0
    if n < during_ramp:
        return math.sqrt(2.0 * ramp_up_s * n / rate)
    return ramp_up_s + (n - during_ramp) / rate


def arrival_offset(k: int, rate: float, ramp_up_s: float = 0.0, burst: int = 1) -> float:
    """Seconds after the start at which the k-th request (0-based) is due in the open model.

    `burst` sends requests in groups fired together (the seed fired 10 every 2 s: rate 5,
    burst 10); the average rate stays `rate`.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    burst = max(1, burst)
    return _steady_offset(k // burst, rate / burst, ramp_up_s)


def worker_start_offsets(concurrency: int, ramp_up_s: float = 0.0) -> list[float]:
    """Closed model: worker i joins at i/concurrency of the ramp, so load grows linearly."""
    if ramp_up_s <= 0:
        return [0.0] * concurrency
    return [ramp_up_s * i / concurrency for i in range(concurrency)]


def cancel_delay(rng: random.Random, ratio: float, max_delay_s: float) -> float | None:
    """Whether an order just accepted is cancelled, and after how many seconds (None: kept).

    Uniform over [0, max_delay_s]: short enough to race the worker's decision, so some
    cancels meet a PENDING order, some a CONFIRMED one and some a REJECTED one.
    """
    if ratio <= 0 or rng.random() >= ratio:
        return None
    return rng.uniform(0.0, max_delay_s)


class Budget:
    """The bound on a run: at most `total` requests and at most `duration_s` seconds.

    Both are clamped to hard caps so a typo cannot start an endless run.
    """

    def __init__(self, total: int | None, duration_s: float | None) -> None:
        self.total = min(total, HARD_MAX_TOTAL) if total is not None else HARD_MAX_TOTAL
        self.duration_s = (
            min(duration_s, HARD_MAX_DURATION_S) if duration_s is not None else HARD_MAX_DURATION_S
        )
        self.issued = 0

    def allows(self, offset_s: float) -> bool:
        return self.issued < self.total and offset_s < self.duration_s

    def take(self, offset_s: float) -> bool:
        """Claim one request starting at `offset_s`; False once the budget is spent."""
        if not self.allows(offset_s):
            return False
        self.issued += 1
        return True
