"""docker-compose.yml, checked without a Docker engine: Debian's `docker-compose config`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from order_service.config import Settings
from tests.deploy.sources import COMPOSE, REPO, docker_compose
from tests.deploy.sources import services as _services

APP_SERVICES = ("migrate", "api", "relay", "worker")
ONE_SHOT = {"migrate", "topics"}
SEED_PORTS = {8000, 8001, 8002, 5432, 9092, 9090, 9093, 3000, 16686, 9187, 9308}


def test_compose_file_is_valid_for_docker_compose() -> None:
    result = subprocess.run(
        [docker_compose(), "-f", str(COMPOSE), "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_stack_has_every_service_of_the_seed_and_ours(resolved: dict[str, Any]) -> None:
    wanted = {
        "postgres", "redpanda", "topics", "migrate", "api", "relay", "worker", "otel-collector",
        "jaeger", "prometheus", "alertmanager", "grafana", "postgres-exporter", "kafka-exporter",
    }  # fmt: skip
    assert wanted <= set(_services(resolved))


def _bind_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                sources.append(volume["source"])
        elif volume.split(":", 1)[0].startswith(("/", ".")):
            sources.append(volume.split(":", 1)[0])
    return sources


def test_every_bind_mounted_file_or_directory_exists(resolved: dict[str, Any]) -> None:
    mounts = [(name, src) for name, s in _services(resolved).items() for src in _bind_sources(s)]
    assert mounts, "expected the observability configs to be bind-mounted"
    missing = [(name, src) for name, src in mounts if not (REPO / src).exists()]
    assert not missing, f"mounted paths that do not exist: {missing}"


def test_observability_configs_are_mounted_from_deploy(resolved: dict[str, Any]) -> None:
    sources = {
        str(Path(src).resolve().relative_to(REPO))
        for s in _services(resolved).values()
        for src in _bind_sources(s)
    }
    assert {
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/rules",
        "deploy/alertmanager/alertmanager.yml",
        "deploy/grafana/provisioning",
        "deploy/grafana/dashboards",
        "deploy/otel/otel-collector-config.yaml",
    } <= sources


def test_every_image_is_pinned_to_a_version_tag(resolved: dict[str, Any]) -> None:
    for name, service in _services(resolved).items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo, f"{name}: {image} has no tag"
        assert "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image} floats on latest"
        if name not in APP_SERVICES:
            assert re.search(r"\d+\.\d+", tag), f"{name}: {image} is not a version tag"


def test_app_services_get_only_known_settings_or_otel_variables(resolved: dict[str, Any]) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name in APP_SERVICES:
        env = _services(resolved)[name]["environment"]
        names = set(env) if isinstance(env, dict) else {e.split("=", 1)[0] for e in env}
        unknown = {n for n in names if n not in fields and not n.startswith("OTEL_")}
        assert not unknown, f"{name}: {unknown} are not Settings fields"
        assert {"POSTGRES_DSN", "KAFKA_BOOTSTRAP_SERVERS", "SERVICE_NAME"} <= names


def _published(service: dict[str, Any]) -> set[int]:
    ports = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            ports.add(int(port["published"]))
        else:
            ports.add(int(str(port).split(":")[-2].split("/")[0]))
    return ports


def test_seed_ports_are_published(resolved: dict[str, Any]) -> None:
    published = set().union(*(_published(s) for s in _services(resolved).values()))
    assert published >= SEED_PORTS, SEED_PORTS - published


def test_long_running_services_have_healthchecks_and_memory_limits(
    resolved: dict[str, Any],
) -> None:
    for name, service in _services(resolved).items():
        limit = service.get("mem_limit") or service.get("deploy", {}).get("resources", {})
        assert limit, f"{name} has no memory limit"
        if name in ONE_SHOT:
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} has its healthcheck disabled"


def test_app_services_wait_for_healthy_dependencies_and_finished_migrations(
    resolved: dict[str, Any],
) -> None:
    for name in ("api", "relay", "worker"):
        deps = _services(resolved)[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redpanda"]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["topics"]["condition"] == "service_completed_successfully"


def test_state_lives_in_named_volumes(resolved: dict[str, Any]) -> None:
    assert {"postgres-data", "redpanda-data", "prometheus-data", "grafana-data"} <= set(
        resolved["volumes"]
    )


def test_env_example_documents_every_variable_compose_reads() -> None:
    text = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.M))
    referenced = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", COMPOSE.read_text()))
    assert referenced <= documented, referenced - documented
    seed = {
        "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_DSN",
        "POSTGRES_EXPORTER_DSN", "KAFKA_BOOTSTRAP_SERVERS", "SERVICE_NAME",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    }  # fmt: skip
    assert seed <= documented
    compose_only = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_EXPORTER_DSN",
                    "SLACK_WEBHOOK_URL", "ORDER_SERVICE_IMAGE"}  # fmt: skip
    fields = {name.upper() for name in Settings.model_fields}
    unknown = {
        n for n in documented if n not in fields | compose_only and not n.startswith("OTEL_")
    }
    assert not unknown, unknown


def test_commands_the_containers_run_exist_in_the_cli(resolved: dict[str, Any]) -> None:
    from typer.testing import CliRunner

    from order_service.cli import app

    runner = CliRunner()
    for name in APP_SERVICES:
        command = _services(resolved)[name]["command"]
        result = runner.invoke(app, [command[0], "--help"])
        assert result.exit_code == 0, f"{name}: order-service {command[0]}: {result.output}"
        for option in (arg for arg in command if arg.startswith("--")):
            assert option in result.output, f"{name}: {option} is not an option of {command[0]}"
