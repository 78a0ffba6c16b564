"""docs/observability.md stays in step with the metric registry and the alert rules."""

from __future__ import annotations

import yaml
from prometheus_client.metrics import MetricWrapperBase

from order_service.observability import metrics
from tests.observability.prometheus_server import DEPLOY, REPO

DOC = REPO / "docs" / "observability.md"


def own_metric_names() -> set[str]:
    """Family names (counters without `_total`) of every metric object in metrics.py."""
    return {
        family.name
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
        for family in value.describe()
    }


def test_the_metric_catalogue_lists_every_metric_of_the_service() -> None:
    text = DOC.read_text(encoding="utf-8")
    names = own_metric_names()
    assert {"http_requests", "outbox_backlog", "order_end_to_end_latency_seconds"} <= names
    missing = sorted(n for n in names if f"`{n}`" not in text and f"`{n}_total`" not in text)
    assert not missing, f"not in docs/observability.md: {missing}"


def test_the_alert_list_names_every_alert_and_its_runbook() -> None:
    text = DOC.read_text(encoding="utf-8")
    for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    runbook = rule["annotations"]["runbook_url"].rsplit("/docs/", 1)[1]
                    assert f"`{rule['alert']}`" in text, rule["alert"]
                    assert f"({runbook})" in text, runbook
