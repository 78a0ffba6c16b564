"""docker-compose.yml agrees with itself: the port each app listens on, is probed on and is
scraped on; the addresses and credentials every client uses; the topics the `topics` job makes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from order_service.config import Settings
from tests.deploy.addresses import bootstrap, parse_dsn, url
from tests.deploy.sources import REPO, compose_config, environment, services

# DESIGN.md §1: each process's HTTP listener.
APP_PORTS = {"api": 8000, "relay": 8001, "worker": 8002}
DSN_USERS = ("migrate", "api", "relay", "worker")
GRACE_MARGIN_S = 2
TOPIC_RETENTION_HOURS = 168  # Redpanda's default log_retention_ms (7 days); no topic overrides it


def _flag(args: list[str], name: str) -> str:
    for index, arg in enumerate(args):
        if arg == f"--{name}":
            return args[index + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"--{name} not in {args}")


def _settings(service: dict[str, Any]) -> Settings:
    fields = {k.lower(): v for k, v in environment(service).items()}
    return Settings.model_validate(fields)  # these values alone, not this machine's env


def test_each_app_is_probed_published_and_scraped_on_the_port_it_listens_on(
    resolved: dict[str, Any],
) -> None:
    """Catches (tried): the relay's healthcheck on 8000 (the api's port), the worker's
    `--port 8003` with its healthcheck left on 8002, a Prometheus target `relay:8000`."""
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        for job in prometheus["scrape_configs"]
    }
    exposed = {int(p) for p in re.findall(r"\d+", _dockerfile_expose())}
    for name, port in APP_PORTS.items():
        service = services(resolved)[name]
        listen = int(_flag(service["command"], "port"))
        assert listen == port, f"{name} listens on {listen}, DESIGN.md says {port}"
        probe = " ".join(service["healthcheck"]["test"])
        assert re.findall(r"http://(?:127\.0\.0\.1|localhost):(\d+)(/\w+)", probe) == [
            (str(listen), "/healthz")
        ], f"{name}: {probe}"
        assert {int(p["target"]) for p in service["ports"]} == {listen}, name
        assert targets[f"order-service-{name}"] == [f"{name}:{listen}"], name
        assert listen in exposed, f"Dockerfile EXPOSE lacks {listen}"


def _dockerfile_expose() -> str:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    return " ".join(line.split(None, 1)[1] for line in lines if line.startswith("EXPOSE "))


def test_dsns_name_the_postgres_service_with_its_credentials(resolved: dict[str, Any]) -> None:
    """Catches (tried): POSTGRES_DSN's host `db`, a password other than POSTGRES_PASSWORD, the
    exporter's database `orders`, a port the postgres container does not listen on."""
    all_services = services(resolved)
    postgres = all_services["postgres"]
    env = environment(postgres)
    wanted = (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"])
    listen = {int(p["target"]) for p in postgres["ports"]}
    dsns = {name: environment(all_services[name])["POSTGRES_DSN"] for name in DSN_USERS}
    dsns["postgres-exporter"] = environment(all_services["postgres-exporter"])["DATA_SOURCE_NAME"]
    for name, text in dsns.items():
        dsn = parse_dsn(text)
        for host, port in dsn.hosts:
            assert host == "postgres", f"{name}: {host} is not the postgres service"
            assert port in listen, f"{name}: postgres listens on {listen}, not {port}"
        assert (dsn.user, dsn.password, dsn.database) == wanted, name


def _listeners(redpanda: dict[str, Any], flag: str) -> dict[str, tuple[str, int]]:
    value = _flag(redpanda["command"], flag)
    return {
        name: bootstrap(address)[0]
        for name, address in (entry.split("://", 1) for entry in value.split(","))
    }


def test_kafka_clients_bootstrap_from_an_address_redpanda_advertises_on_the_network(
    resolved: dict[str, Any],
) -> None:
    """Catches (tried): KAFKA_BOOTSTRAP_SERVERS `redpanda:19092` (the host listener, which
    advertises localhost), kafka-exporter `--kafka.server=kafka:9092`, the internal listener
    moved to 9093 while still advertised on 9092."""
    all_services = services(resolved)
    redpanda = all_services["redpanda"]
    advertised = _listeners(redpanda, "advertise-kafka-addr")
    bound = _listeners(redpanda, "kafka-addr")
    inside = {name: hp for name, hp in advertised.items() if hp[0] in all_services}
    assert inside, f"no listener advertises a compose service name: {advertised}"
    for name, (_, port) in inside.items():
        assert bound[name][1] == port, f"listener {name} binds {bound[name]}, advertises {port}"
    clients = {
        name: environment(all_services[name])["KAFKA_BOOTSTRAP_SERVERS"]
        for name in (*APP_PORTS, "topics")
    }
    clients["kafka-exporter"] = _flag(all_services["kafka-exporter"]["command"], "kafka.server")
    for name, servers in clients.items():
        for address in bootstrap(servers):
            assert address in inside.values(), f"{name}: {address} is not advertised in-network"


def test_otlp_endpoint_is_the_collector_service_on_the_receiver_of_its_protocol(
    resolved: dict[str, Any],
) -> None:
    """Catches (tried): OTEL_EXPORTER_OTLP_ENDPOINT on 4317 (the gRPC receiver) while the
    protocol is http/protobuf, and the host `collector`."""
    collector = yaml.safe_load(
        (REPO / "deploy" / "otel" / "otel-collector-config.yaml").read_text()
    )
    receivers = collector["receivers"]["otlp"]["protocols"]
    for name in APP_PORTS:
        env = environment(services(resolved)[name])
        host, port = url(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert host == "otel-collector" and host in services(resolved), name
        kind = (
            "http" if env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") != "grpc" else "grpc"
        )
        assert port == int(receivers[kind]["endpoint"].rsplit(":", 1)[1]), name


def _run_topics_job(config: dict[str, Any], tmp_path: Path) -> dict[str, tuple[int, int, str]]:
    """Runs the job's script with a stand-in `rpk` that finds no topic and records what it is
    asked to create: topic -> (partitions, replication factor, -c configs)."""
    job = services(config)["topics"]
    log = tmp_path / "rpk-calls.jsonl"
    stub = tmp_path / "rpk"
    stub.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "sys.exit(1 if sys.argv[1:3] == ['topic', 'describe'] else 0)\n"
    )
    stub.chmod(0o755)
    script = job["command"][0].replace("$$", "$")  # compose's escape, undone by the engine
    subprocess.run(
        [*job["entrypoint"], script],
        env={**environment(job), "PATH": f"{tmp_path}:/usr/bin:/bin"},
        check=True,
        timeout=30,
    )
    created = {}
    for line in log.read_text().splitlines():
        args = json.loads(line)
        if args[:2] == ["topic", "create"]:
            configs = ",".join(sorted(_values(args, "-c")))
            created[args[2]] = (int(_values(args, "-p")[0]), int(_values(args, "-r")[0]), configs)
    return created


def _values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


@pytest.mark.parametrize(
    "override",
    [
        {},
        {
            "KAFKA_TOPIC_PARTITIONS": "7",
            "KAFKA_ORDER_TOPIC": "o.placed",
            "KAFKA_STATUS_TOPIC": "o.st",
        },
    ],
    ids=["defaults", "overridden"],
)
def test_topics_job_creates_the_topics_the_app_expects(
    override: dict[str, str], resolved: dict[str, Any], tmp_path: Path
) -> None:
    """The order and status topics with KAFKA_TOPIC_PARTITIONS partitions, the DLQ with one,
    all with the app's replication factor and min.insync.replicas. Catches (found): the job
    created `orders.created` with a hard-coded 3 partitions whatever KAFKA_TOPIC_PARTITIONS
    said, and no status topic; (tried) `-r 3` on the one broker, the status line removed."""
    config = compose_config(override) if override else resolved
    app = _settings(services(config)["worker"])
    rf = app.kafka_topic_replication_factor or 1  # unset: min(3, brokers), one broker here
    isr = app.kafka_topic_min_insync_replicas or max(1, min(2, rf - 1))
    isr_config = f"min.insync.replicas={isr}"
    assert _run_topics_job(config, tmp_path) == {
        app.kafka_order_topic: (app.kafka_topic_partitions, rf, isr_config),
        app.kafka_status_topic: (app.kafka_topic_partitions, rf, isr_config),
        app.dlq_topic: (1, rf, isr_config),
    }


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|h|m|s)", duration))


def test_docker_waits_out_the_drain_before_it_kills(resolved: dict[str, Any]) -> None:
    """stop_grace_period >= SHUTDOWN_TIMEOUT_S + margin, else `docker compose stop` SIGKILLs
    mid-drain. Catches (tried): stop_grace_period 10s with the 10 s default drain."""
    for name in APP_PORTS:
        service = services(resolved)[name]
        grace = _seconds(service.get("stop_grace_period", "10s"))
        drain = _settings(service).shutdown_timeout_s
        assert grace >= drain + GRACE_MARGIN_S, f"{name}: {grace}s to stop, {drain}s to drain"


def test_app_environment_loads_as_settings_and_outlives_the_topic_retention(
    resolved: dict[str, Any],
) -> None:
    """Catches (tried): KAFKA_TOPIC_MIN_INSYNC_REPLICAS 2 over a replication factor of 1,
    INBOX_RETENTION_HOURS 100 (event ids forgotten before Redpanda drops the events)."""
    for name in DSN_USERS:
        settings = _settings(services(resolved)[name])
        assert settings.inbox_retention_hours > TOPIC_RETENTION_HOURS, name
        assert settings.kafka_status_topic, name
