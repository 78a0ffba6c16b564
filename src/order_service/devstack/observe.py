"""The seed's observability backends beside `order-service dev --observe`, without Docker.

Prometheus (the repo's scrape config and rules, its targets pointed at this stack's ports),
Alertmanager (the repo's routes and Slack template), postgres-exporter, kafka-exporter, the
OpenTelemetry Collector (the repo's config file, endpoints overridden) and Jaeger (memory
storage, query API). The supervisor starts and stops them as it does its other children.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from order_service.devstack import observe_tools
from order_service.devstack.observe_tools import REPO

DEPLOY = REPO / "deploy"
COLLECTOR_CONFIG = DEPLOY / "otel" / "otel-collector-config.yaml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
NAMES = (
    "jaeger",
    "otel-collector",
    "postgres-exporter",
    "kafka-exporter",
    "alertmanager",
    "prometheus",
)


@dataclass(frozen=True)
class ObservePorts:
    """The seed's ports (Jaeger's own OTLP listeners sit behind the Collector, as in compose)."""

    prometheus: int = 9090
    alertmanager: int = 9093
    postgres_exporter: int = 9187
    kafka_exporter: int = 9308
    otlp_grpc: int = 4317
    otlp_http: int = 4318
    jaeger_query: int = 16686
    jaeger_query_grpc: int = 16685
    jaeger_otlp_grpc: int = 14317
    jaeger_otlp_http: int = 14318

    def shifted(self, offset: int) -> ObservePorts:
        """Every port moved by `offset`, to run beside another stack."""
        return ObservePorts(**{k: v + offset for k, v in asdict(self).items()})


@dataclass(frozen=True)
class StackPorts:
    """What the backends watch: the dev stack's processes."""

    host: str
    api: int
    relay: int
    worker: int
    postgres_dsn: str  # libpq form, postgresql://...
    kafka_bootstrap: str


@dataclass(frozen=True)
class Backend:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready_url: str
    ready_status: int = 200  # what ready_url answers once the backend serves


def prometheus_config(stack: StackPorts, ports: ObservePorts) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with each job's target at this stack's address."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    h = stack.host
    targets = {
        "prometheus": f"{h}:{ports.prometheus}",
        "order-service-api": f"{h}:{stack.api}",
        "order-service-relay": f"{h}:{stack.relay}",
        "order-service-worker": f"{h}:{stack.worker}",
        "postgres-exporter": f"{h}:{ports.postgres_exporter}",
        "kafka-exporter": f"{h}:{ports.kafka_exporter}",
    }
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [targets[job["job_name"]]]
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / f) for f in config["rule_files"]]
    alerting = config["alerting"]["alertmanagers"][0]["static_configs"][0]
    alerting["targets"] = [f"{h}:{ports.alertmanager}"]
    return config


def alertmanager_config(slack_url_file: Path) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml with its template and webhook files made local."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    config["templates"] = [str(ALERTMANAGER_CONFIG.parent / t) for t in config["templates"]]
    config["global"]["slack_api_url_file"] = str(slack_url_file)
    return config


def collector_args(host: str, ports: ObservePorts) -> list[str]:
    """The repo's Collector config itself, with its endpoints overridden on the command line.

    Its `health_check` extension is contrib's, not a core component: the core build runs the
    file with that extension switched off (`service::extensions` empty, the section dropped).
    """
    overrides = {
        "extensions": "null",
        "service::extensions": "[]",
        "receivers::otlp::protocols::grpc::endpoint": f"{host}:{ports.otlp_grpc}",
        "receivers::otlp::protocols::http::endpoint": f"{host}:{ports.otlp_http}",
        "exporters::otlp/jaeger::endpoint": f"{host}:{ports.jaeger_otlp_grpc}",
        # The Collector's own metrics would take :8888; nothing scrapes them here.
        "service::telemetry::metrics::level": "none",
    }
    return [f"--config={COLLECTOR_CONFIG}", *(f"--set={k}={v}" for k, v in overrides.items())]


def jaeger_env(host: str, ports: ObservePorts) -> dict[str, str]:
    return {
        "JAEGER_LISTEN_HOST": host,
        "JAEGER_QUERY_PORT": str(ports.jaeger_query),
        "JAEGER_QUERY_GRPC_PORT": str(ports.jaeger_query_grpc),
        "JAEGER_OTLP_GRPC_PORT": str(ports.jaeger_otlp_grpc),
        "JAEGER_OTLP_HTTP_PORT": str(ports.jaeger_otlp_http),
    }


def tracing_env(host: str, ports: ObservePorts) -> dict[str, str]:
    """What api, relay and worker need to export their spans to the Collector."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{host}:{ports.otlp_http}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }


def backends(
    stack: StackPorts,
    ports: ObservePorts,
    workdir: Path,
    env: dict[str, str],
    python: list[str],
) -> list[Backend]:
    """Every backend, in start order (Jaeger before the Collector exporting to it, Alertmanager
    before Prometheus). `env` is the stack's environment; `python` runs `order-service`."""
    h = stack.host
    workdir.mkdir(parents=True, exist_ok=True)
    write = _writer(workdir)
    slack_file = workdir / "slack_webhook_url"
    # No webhook set: alerts are routed and their delivery fails in alertmanager.log.
    write(slack_file.name, os.environ.get("SLACK_WEBHOOK_URL") or f"http://{h}:9/no-webhook-set")
    prometheus_yml = write("prometheus.yml", yaml.safe_dump(prometheus_config(stack, ports)))
    alertmanager_yml = write("alertmanager.yml", yaml.safe_dump(alertmanager_config(slack_file)))
    tool = observe_tools
    return [
        Backend(
            "jaeger",
            [tool.jaeger(), f"--config={observe_tools.JAEGER_CONFIG}"],
            {**env, **jaeger_env(h, ports)},
            f"http://{h}:{ports.jaeger_query}/api/services",
        ),
        Backend(
            "otel-collector",
            [tool.otelcol(), *collector_args(h, ports)],
            env,
            # The OTLP/HTTP receiver listens: it answers a GET with 405 (it takes POSTs).
            f"http://{h}:{ports.otlp_http}/v1/traces",
            405,
        ),
        Backend(
            "postgres-exporter",
            [
                tool.debian("prometheus-postgres-exporter"),
                f"--web.listen-address={h}:{ports.postgres_exporter}",
            ],
            {**env, "DATA_SOURCE_NAME": _sslmode_disabled(stack.postgres_dsn)},
            f"http://{h}:{ports.postgres_exporter}/metrics",
        ),
        Backend(
            "kafka-exporter",
            [*python, "kafka-exporter", "--host", h, "--port", str(ports.kafka_exporter)],
            {**env, "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap},
            f"http://{h}:{ports.kafka_exporter}/metrics",
        ),
        Backend(
            "alertmanager",
            [
                tool.debian("prometheus-alertmanager"),
                f"--config.file={alertmanager_yml}",
                f"--storage.path={workdir / 'alertmanager'}",
                f"--web.listen-address={h}:{ports.alertmanager}",
                "--cluster.listen-address=",  # one instance: no gossip port
            ],
            env,
            f"http://{h}:{ports.alertmanager}/-/ready",
        ),
        Backend(
            "prometheus",
            [
                tool.debian("prometheus"),
                f"--config.file={prometheus_yml}",
                f"--storage.tsdb.path={workdir / 'prometheus'}",
                f"--web.listen-address={h}:{ports.prometheus}",
                "--enable-feature=exemplar-storage",
            ],
            env,
            f"http://{h}:{ports.prometheus}/-/ready",
        ),
    ]


def _writer(workdir: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = workdir / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def _sslmode_disabled(dsn: str) -> str:
    dsn = dsn.replace("postgresql+asyncpg://", "postgresql://", 1)
    return dsn if "sslmode=" in dsn else f"{dsn}{'&' if '?' in dsn else '?'}sslmode=disable"
