"""Which endpoints `order-service doctor` checks."""

from __future__ import annotations

from order_service.doctor import Targets, checks_for

CORE = Targets("http://a", "http://r", "http://w")


def test_the_core_processes_are_always_checked() -> None:
    urls = {c.url for c in checks_for(CORE)}

    assert {"http://a/readyz", "http://r/readyz", "http://w/readyz", "http://a/metrics"} <= urls
    assert not any("9090" in u or "grafana" in u for u in urls)


def test_observability_endpoints_are_checked_when_given() -> None:
    targets = Targets(
        "http://a",
        "http://r",
        "http://w",
        prometheus="http://p:9090",
        grafana="http://g:3000",
        jaeger="http://j:16686",
        alertmanager="http://am:9093",
    )

    names = {c.name for c in checks_for(targets)}

    assert {
        "prometheus: every target up",
        "grafana healthy",
        "jaeger reachable",
        "jaeger: order-service traces arrive",
        "alertmanager ready",
    } <= names
