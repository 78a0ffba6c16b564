"""Latency statistics: a log-bucketed histogram for the live p99, exact percentiles at the end."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_GROWTH = 1.02  # 2 % wide buckets: plenty for a progress line, O(1) per sample
_LOG_GROWTH = math.log(_GROWTH)
_FLOOR_S = 1e-6


class LatencyHistogram:
    """Recording is O(1) and a percentile walks <1,000 buckets, so the live view never sorts."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0
        self.max_s = 0.0

    def record(self, seconds: float) -> None:
        index = math.ceil(math.log(max(seconds, _FLOOR_S) / _FLOOR_S) / _LOG_GROWTH)
        self._counts[index] = self._counts.get(index, 0) + 1
        self.count += 1
        self.max_s = max(self.max_s, seconds)

    def percentile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-th percentile (never above the true max)."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for index in sorted(self._counts):
            seen += self._counts[index]
            if seen >= rank:
                return min(_FLOOR_S * _GROWTH**index, self.max_s)
        return self.max_s


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class LatencySummary:
    count: int
    mean_s: float
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float

    @classmethod
    def of(cls, values: Sequence[float]) -> LatencySummary:
        ordered = sorted(values)
        if not ordered:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return cls(
            count=len(ordered),
            mean_s=sum(ordered) / len(ordered),
            p50_s=percentile(ordered, 50),
            p90_s=percentile(ordered, 90),
            p99_s=percentile(ordered, 99),
            max_s=ordered[-1],
        )

    def as_ms(self) -> dict[str, float]:
        return {
            name: round(getattr(self, f"{name}_s") * 1000.0, 3)
            for name in ("mean", "p50", "p90", "p99", "max")
        }
