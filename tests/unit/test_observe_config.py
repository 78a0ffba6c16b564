"""What `order-service dev --observe` gives each backend: the repo's configs, made local."""

from __future__ import annotations

from pathlib import Path

import yaml

from order_service.devstack import observe
from order_service.devstack.observe import ObservePorts, StackPorts

STACK = StackPorts("127.0.0.1", 18000, 18001, 18002, "postgresql://u:p@127.0.0.1:5/db", "k:9")


def test_every_scrape_job_of_the_repo_points_at_the_local_stack() -> None:
    ports = ObservePorts().shifted(10)
    config = observe.prometheus_config(STACK, ports)
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert targets == {
        "prometheus": ["127.0.0.1:9100"],
        "order-service-api": ["127.0.0.1:18000"],
        "order-service-relay": ["127.0.0.1:18001"],
        "order-service-worker": ["127.0.0.1:18002"],
        "postgres-exporter": ["127.0.0.1:9197"],
        "kafka-exporter": ["127.0.0.1:9318"],
    }
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["127.0.0.1:9103"]
    assert all(Path(f).is_absolute() for f in config["rule_files"])
    assert sorted(Path(config["rule_files"][0]).parent.glob("*.yml"))


def test_alertmanager_keeps_the_repo_routes_with_a_local_webhook_file(tmp_path: Path) -> None:
    config = observe.alertmanager_config(tmp_path / "url")
    committed = yaml.safe_load(observe.ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    assert config["route"] == committed["route"]
    assert config["receivers"] == committed["receivers"]
    assert config["global"]["slack_api_url_file"] == str(tmp_path / "url")
    assert Path(config["templates"][0]).parent.joinpath("slack.tmpl").exists()


def test_the_collector_runs_the_repo_file_with_only_endpoints_and_the_extension_overridden() -> (
    None
):
    args = observe.collector_args("127.0.0.1", ObservePorts())
    assert args[0] == f"--config={observe.COLLECTOR_CONFIG}"
    assert "--set=exporters::otlp/jaeger::endpoint=127.0.0.1:14317" in args
    assert "--set=receivers::otlp::protocols::http::endpoint=127.0.0.1:4318" in args
    assert "--set=service::extensions=[]" in args
