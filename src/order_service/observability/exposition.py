"""`/metrics`: the default registry, or every process's when PROMETHEUS_MULTIPROC_DIR is set.

The encoder follows the scraper's Accept header, so Prometheus asking for OpenMetrics gets the
exemplars (trace ids) attached to the latency histograms.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder


def render_metrics(accept: str | None = None) -> tuple[bytes, str]:
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
