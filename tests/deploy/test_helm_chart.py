"""The Helm chart, linted and rendered by the real Helm engine (deploy/helm/check_chart.py)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from order_service.config import Settings
from order_service.messaging.kafka_client import client_options
from tests.deploy.manifests import kind as _kind
from tests.deploy.sources import CHART, REPO, Docs, values_files


def test_every_values_file_lints_renders_and_validates(rendered: dict[str, Docs]) -> None:
    assert sorted(rendered) == sorted(values_files())
    assert all(rendered[name] for name in rendered)


def test_every_container_runs_non_root_on_a_read_only_root_with_no_capabilities(
    rendered: dict[str, Docs],
) -> None:
    for docs in rendered.values():
        for obj in _kind(docs, "Deployment") + _kind(docs, "Job"):
            pod = obj["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            for container in pod["containers"]:
                sc = container["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True
                assert sc["allowPrivilegeEscalation"] is False
                assert sc["capabilities"]["drop"] == ["ALL"]


def test_each_deployment_probes_its_own_health_endpoints_and_spreads_over_zones(
    rendered: dict[str, Docs],
) -> None:
    ports = {"api": 8000, "relay": 8001, "worker": 8002}
    deployments = _kind(rendered["values"], "Deployment")
    assert sorted(d["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments) == [
        "api",
        "relay",
        "worker",
    ]
    for dep in deployments:
        component = dep["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = dep["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"][:1] == [component]
        assert container["args"][-1] == str(ports[component])
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]
        keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
        assert "topology.kubernetes.io/zone" in keys


def test_migration_runs_as_a_pre_install_and_pre_upgrade_hook(rendered: dict[str, Docs]) -> None:
    (job,) = _kind(rendered["values"], "Job")
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert set(hooks) == {"pre-install", "pre-upgrade"}
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_aws_values_use_msk_iam_tls_irsa_and_the_secrets_manager_dsn(
    rendered: dict[str, Docs],
) -> None:
    docs = rendered["values-aws"]
    (config,) = _kind(docs, "ConfigMap")
    assert config["data"]["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["data"]["KAFKA_SASL_MECHANISM"] == "AWS_MSK_IAM"
    assert config["data"]["AWS_REGION"]
    assert config["data"]["ENVIRONMENT"] == "prod"
    assert config["data"]["AUTH_ENABLED"] == "true"
    # Three brokers in three AZs: acks=all reaches two of them, one may be down.
    assert config["data"]["KAFKA_TOPIC_REPLICATION_FACTOR"] == "3"
    assert config["data"]["KAFKA_TOPIC_MIN_INSYNC_REPLICAS"] == "2"
    (account,) = _kind(docs, "ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::"
    )
    (external,) = _kind(docs, "ExternalSecret")
    assert external["spec"]["data"][0]["secretKey"] == "POSTGRES_DSN"
    assert not _kind(docs, "Secret"), "with an ExternalSecret the chart must not ship a DSN"
    (ingress,) = _kind(docs, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "alb"
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/target-type"] == "ip"
    for kind in ("HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"):
        assert _kind(docs, kind), kind
    assert len(_kind(docs, "PodDisruptionBudget")) == 3


def test_msk_scram_values_give_every_process_the_kafka_password_from_its_secret_only(
    rendered: dict[str, Docs],
) -> None:
    """Catches the password missing from a pod (tried: the env entry left out of the shared
    helper; the api's pod then has no KAFKA_SASL_PASSWORD) or shipped in the ConfigMap."""
    for name, docs in rendered.items():
        (config,) = _kind(docs, "ConfigMap")
        assert "KAFKA_SASL_PASSWORD" not in config["data"], name
        for deployment in _kind(docs, "Deployment"):
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            env = {e["name"]: e.get("valueFrom") for e in container.get("env", [])}
            if name != "msk-scram-values":
                assert "KAFKA_SASL_PASSWORD" not in env, (name, deployment["metadata"]["name"])
                continue
            assert env["KAFKA_SASL_PASSWORD"] == {
                "secretKeyRef": {"name": "order-service-kafka", "key": "KAFKA_SASL_PASSWORD"}
            }, deployment["metadata"]["name"]
            fields = {k.lower(): v for k, v in config["data"].items()}
            settings = Settings.model_validate({**fields, "kafka_sasl_password": "from-secret"})
            options = client_options(settings)
            assert (options["security_protocol"], options["sasl_mechanism"]) == (
                "SASL_SSL",
                "SCRAM-SHA-512",
            )


def test_worker_scales_on_consumer_lag_up_to_the_partition_count(rendered: dict[str, Docs]) -> None:
    for name in ("values-aws", "all-features-values"):
        docs = rendered[name]
        (config,) = _kind(docs, "ConfigMap")
        (scaled,) = _kind(docs, "ScaledObject")
        assert scaled["spec"]["maxReplicaCount"] == int(config["data"]["KAFKA_TOPIC_PARTITIONS"])
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["topic"] == config["data"]["KAFKA_ORDER_TOPIC"]
        worker = next(
            d for d in _kind(docs, "Deployment") if d["metadata"]["name"].endswith("-worker")
        )
        assert "replicas" not in worker["spec"], "KEDA owns the worker's replica count"


def test_prometheus_rule_carries_exactly_the_compose_alert_rules(rendered: dict[str, Docs]) -> None:
    (rule,) = _kind(rendered["values-aws"], "PrometheusRule")
    copy = yaml.safe_load((CHART / "files" / "alert-rules.yml").read_text())
    assert rule["spec"]["groups"] == copy["groups"]


def test_chart_rules_copy_equals_the_concatenated_prometheus_rule_files() -> None:
    groups: list[Any] = []
    for path in sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml")):
        groups.extend((yaml.safe_load(path.read_text()) or {}).get("groups") or [])
    copy = yaml.safe_load((CHART / "files" / "alert-rules.yml").read_text())
    assert groups, "deploy/prometheus/rules/*.yml has no rule groups"
    assert copy["groups"] == groups, (
        "deploy/helm/order-service/files/alert-rules.yml is stale; run "
        ".venv-helm/bin/python deploy/helm/check_chart.py --sync-rules"
    )


def test_values_schema_rejects_unknown_keys_and_settings_it_does_not_know() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    for key in ("image", "config", "database", "api", "relay", "worker", "ingress"):
        assert schema["properties"][key]["additionalProperties"] is False, key
    fields = {name.upper() for name in Settings.model_fields}
    assert set(schema["properties"]["config"]["properties"]) <= fields
    for values in [CHART / "values.yaml", CHART / "values-aws.yaml", *CHART.glob("ci/*.yaml")]:
        config = (yaml.safe_load(values.read_text()) or {}).get("config") or {}
        unknown = {k for k in config if k not in fields and not k.startswith("OTEL_")}
        assert not unknown, f"{values.name}: {unknown}"
