"""Read one process's own /metrics: per-process counts, where an in-process REGISTRY is shared.

Two relays or two workers run as OS processes each have their own registry, so a test can tell
which member did what (published, applied, rebalanced) instead of reading one sum for all.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(
    base_url: str, timeout_s: float = 5.0
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of `base_url`/metrics, keyed by (sample name, labels)."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=timeout_s) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(base_url: str, name: str, **labels: str) -> float:
    """One sample's value, 0 when the process has not created it (a counter never incremented)."""
    return scrape(base_url).get((name, frozenset(labels.items())), 0.0)


def total(base_url: str, name: str) -> float:
    """A metric's samples summed over every label set (0 when none exists yet)."""
    return sum(value for (sample_name, _), value in scrape(base_url).items() if sample_name == name)


def ready_status(base_url: str) -> int:
    """The HTTP status of `base_url`/readyz; 0 when nothing answers (refused, timed out)."""
    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
