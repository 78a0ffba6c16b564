"""The PromQL reading the live checks rely on (tests/observability/promql.py), and what it finds
in the committed rules and dashboards checked against the metric registry, without a stack."""

from __future__ import annotations

import pytest

from tests.observability.dashboards import panel_queries
from tests.observability.prometheus_server import DEPLOY
from tests.observability.promql import metric_names, rules, without_fallbacks
from tests.observability.test_docs import own_metric_names

RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
# Series the exporters and Prometheus itself provide; the live test checks them for real.
EXTERNAL_PREFIXES = ("pg_", "kafka_")
SYNTHETIC = {"up"}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            "histogram_quantile(0.99, sum by (le, route) (rate("
            'http_request_duration_seconds_bucket{route!~"/metrics|/healthz|/readyz"}[5m])))',
            {"http_request_duration_seconds_bucket"},
        ),
        (
            'absent(kafka_consumergroup_lag{consumergroup="order-processor"})\nand on ()\n'
            '(sum(up{job="kafka-exporter"}) > 0)',
            {"kafka_consumergroup_lag", "up"},
        ),
        (
            "slo:http_errors_per_request:ratio_rate1h > (14.4 * 0.001)",
            {"slo:http_errors_per_request:ratio_rate1h"},
        ),
        (
            "sum by (reason) (rate(orders_write_refused_total[5m])) / on () group_left ()"
            " (sum(rate(orders_created_total[5m])) or vector(0)) > bool 0.01",
            {"orders_write_refused_total", "orders_created_total"},
        ),
        ('max(pg_up offset 5m) * 1e3 == 0 or absent(pg_up{instance="a{b}"})', {"pg_up"}),
        ("vector(1)", set()),
        ('label_replace(foo, "dst", "$1", "src", "(.*)")', {"foo"}),
    ],
)
def test_metric_names_are_the_selected_series_not_functions_labels_or_numbers(
    expr: str, names: set[str]
) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize(
    ("expr", "stripped"),
    [
        (
            "sum by (op) (rate(db_unavailable_total[10s])) or on () vector(0)",
            "sum by (op) (rate(db_unavailable_total[10s]))",
        ),
        (
            '(sum(rate(http_requests_total{status=~"5.."}[5m])) or vector(0))'
            " / sum(rate(http_requests_total[5m]))",
            '(sum(rate(http_requests_total{status=~"5.."}[5m])))'
            " / sum(rate(http_requests_total[5m]))",
        ),
        ("(a or\n  on() vector( 1 )) + (b  or vector(0.5))", "(a) + (b)"),
        ("sum by (job) (a) or on (job) vector(0)", "sum by (job) (a)"),
        ("a or b", "a or b"),
    ],
)
def test_fallbacks_are_removed_and_nothing_else(expr: str, stripped: str) -> None:
    assert without_fallbacks(expr) == stripped


def test_every_own_metric_named_in_a_rule_or_panel_is_defined_in_the_registry() -> None:
    """Catches a misspelt or renamed metric in a rule or a panel (tried: a panel over
    `orders_rejected_totals`) before any stack runs; test_dashboards_live.py then requires
    each name to be exposed by the running processes."""
    exprs = [rule["expr"] for rule in rules(RULE_FILES)] + [q.expr for q in panel_queries()]
    recorded = {rule["record"] for rule in rules(RULE_FILES) if "record" in rule}
    families = own_metric_names()
    suffixes = ("", "_total", "_bucket", "_sum", "_count", "_created")
    unknown = set()
    for expr in exprs:
        for name in metric_names(expr) - recorded - SYNTHETIC:
            if name.startswith(EXTERNAL_PREFIXES):
                continue
            if not any(name.removesuffix(s) in families for s in suffixes if name.endswith(s)):
                unknown.add(name)
    assert not unknown, f"not defined in observability/metrics.py: {sorted(unknown)}"
