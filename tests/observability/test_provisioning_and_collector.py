"""Grafana provisioning and the OpenTelemetry Collector config (neither binary exists here, so
these check the files against what Grafana and the Collector require)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.observability.prometheus_server import DEPLOY


def load(relative: str) -> Any:
    return yaml.safe_load((DEPLOY / relative).read_text(encoding="utf-8"))


def test_prometheus_datasource_links_exemplar_trace_ids_to_jaeger() -> None:
    sources = {
        s["uid"]: s for s in load("grafana/provisioning/datasources/datasources.yml")["datasources"]
    }
    prometheus, jaeger = sources["prometheus"], sources["jaeger"]
    assert prometheus["type"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    assert prometheus["isDefault"] is True
    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert {"name": "trace_id", "datasourceUid": "jaeger"}.items() <= destinations[0].items()
    assert jaeger["type"] == "jaeger"
    assert jaeger["url"] == "http://jaeger:16686"


def test_dashboard_provider_loads_the_generated_dashboards_folder() -> None:
    provider = load("grafana/provisioning/dashboards/dashboards.yml")["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert provider["allowUiUpdates"] is False


def test_collector_receives_otlp_on_both_ports_and_exports_traces_to_jaeger() -> None:
    config = load("otel/otel-collector-config.yaml")
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    jaeger = config["exporters"]["otlp/jaeger"]
    assert jaeger == {"endpoint": "jaeger:4317", "tls": {"insecure": True}}
    assert "debug" in config["exporters"]
    assert config["extensions"]["health_check"]["endpoint"].endswith(":13133")


def test_collector_pipeline_limits_memory_before_batching_and_uses_declared_components() -> None:
    config = load("otel/otel-collector-config.yaml")
    service = config["service"]
    assert service["extensions"] == ["health_check"]
    traces = service["pipelines"]["traces"]
    assert traces["processors"] == ["memory_limiter", "batch"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(traces[kind]) <= set(config[kind]), kind
    assert set(traces["exporters"]) == {"otlp/jaeger", "debug"}
