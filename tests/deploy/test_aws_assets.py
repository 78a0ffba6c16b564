"""The AWS side: the ADOT collector config and the step-by-step deployment guide."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import yaml

from order_service.config import Settings

REPO = Path(__file__).resolve().parents[2]
ADOT = REPO / "deploy" / "aws" / "adot-collector-config.yaml"
GUIDE = REPO / "docs" / "deploy-aws.md"


def _adot() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(ADOT.read_text())
    return config


def test_adot_pipelines_use_only_components_the_config_defines() -> None:
    config = _adot()
    for name, pipeline in config["service"]["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                assert component in config[section], f"{name}: {section} {component} undefined"
    for extension in config["service"]["extensions"]:
        assert extension in config["extensions"]


def test_adot_sends_metrics_to_cloudwatch_emf_and_traces_to_xray() -> None:
    pipelines = _adot()["service"]["pipelines"]
    assert pipelines["metrics"]["exporters"] == ["awsemf"]
    assert pipelines["traces"]["exporters"] == ["awsxray"]
    assert "otlp" in pipelines["traces"]["receivers"]
    assert "prometheus" in pipelines["metrics"]["receivers"]
    emf = _adot()["exporters"]["awsemf"]
    assert emf["namespace"] == "OrderService"
    assert emf["metric_declarations"]


def test_adot_scrape_gives_the_same_job_names_as_compose() -> None:
    prom = (REPO / "deploy" / "prometheus" / "prometheus.yml").read_text()
    compose_jobs = set(re.findall(r"job_name: (order-service-\w+)", prom))
    relabel = _adot()["receivers"]["prometheus"]["config"]["scrape_configs"][0]["relabel_configs"]
    job_rule = next(r for r in relabel if r.get("target_label") == "job")
    assert job_rule["replacement"] == "order-service-$1"
    assert compose_jobs == {"order-service-api", "order-service-relay", "order-service-worker"}


def test_guide_covers_every_step_from_an_empty_account() -> None:
    text = GUIDE.read_text()
    for command in (
        "aws ecr create-repository",
        "eksctl create cluster",
        "aws kafka create-cluster-v2",
        "BootstrapBrokerStringSaslIam",
        "aws rds create-db-instance",
        "aws secretsmanager create-secret --name order-service/postgres",
        "eksctl create iamserviceaccount",
        "aws-load-balancer-controller",
        "kedacore/keda",
        "external-secrets/external-secrets",
        "deploy/aws/adot-collector-config.yaml",
        "helm upgrade --install order-service deploy/helm/order-service",
        "-f deploy/helm/order-service/values-aws.yaml",
    ):
        assert command in text, command


def test_guide_iam_policies_are_valid_json_and_grant_msk_iam_access() -> None:
    blocks = re.findall(r"```json\n(.*?)```", GUIDE.read_text(), flags=re.S)
    policies = [json.loads(block) for block in blocks]
    assert policies
    assert all(p["Version"] == "2012-10-17" for p in policies)
    actions = {a for p in policies for s in p["Statement"] for a in s["Action"]}
    for needed in (
        "kafka-cluster:Connect",
        "kafka-cluster:WriteDataIdempotently",
        "kafka-cluster:ReadData",
        "kafka-cluster:AlterGroup",
        "secretsmanager:GetSecretValue",
    ):
        assert needed in actions, needed


def test_guide_uses_the_names_values_aws_expects() -> None:
    values = yaml.safe_load(
        (REPO / "deploy" / "helm" / "order-service" / "values-aws.yaml").read_text()
    )
    text = GUIDE.read_text()
    assert values["externalSecret"]["remoteKey"] in text
    assert values["externalSecret"]["secretStoreRef"]["name"] in text
    assert values["serviceAccount"]["name"] in text
    assert "adot-collector.observability" in values["config"]["OTEL_EXPORTER_OTLP_ENDPOINT"]


def _policy_statements() -> list[dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return [s for block in blocks for s in json.loads(block)["Statement"]]


def test_guide_pod_policy_lets_the_pods_create_and_use_every_topic_the_service_uses() -> None:
    """Catches (found): the topic statement covered `orders.created*` only, so the relay could
    neither create nor publish to `orders.status` under MSK IAM."""
    settings = Settings.model_validate({})
    topics = {settings.kafka_order_topic, settings.kafka_status_topic, settings.dlq_topic}
    needed = {"kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"}
    for topic in sorted(topics):
        arn = f"arn:aws:kafka:eu-west-1:123456789012:topic/orders/abc-1/{topic}"
        granted = {
            action
            for s in _policy_statements()
            if s["Effect"] == "Allow"
            for resource in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
            if fnmatch.fnmatchcase(arn, resource)
            for action in s["Action"]
        }
        assert needed <= granted, f"{topic}: missing {needed - granted}"


def test_guide_enforces_network_policies_and_opens_the_api_to_the_vpc() -> None:
    """Catches (found): the cluster's vpc-cni add-on without enableNetworkPolicy, so EKS
    accepted the chart's NetworkPolicy and never enforced it; and an install that leaves the
    ALB's addresses (the VPC CIDR the guide exports) out of the api's policy."""
    text = GUIDE.read_text()
    (cluster,) = re.findall(r"cat > /tmp/cluster.yaml <<EOF\n(.*?)\nEOF", text, flags=re.S)
    cluster = re.sub(r"\$\{?(\w+)\}?", r"\1", cluster)  # the shell's variables, as placeholders
    addons = {a["name"]: a for a in yaml.safe_load(cluster)["addons"]}
    cni = json.loads(addons["vpc-cni"].get("configurationValues") or "{}")
    assert cni.get("enableNetworkPolicy") == "true"
    assert "export VPC_CIDR=" in text
    assert '--set networkPolicy.apiIngressFromCIDRs[0]="$VPC_CIDR"' in text


def test_guide_states_the_topic_settings_values_aws_sets() -> None:
    """Catches the guide going stale when values-aws changes (tried: KAFKA_TOPIC_PARTITIONS
    "12" in values-aws; the guide's topic table still said 6)."""
    values = yaml.safe_load(
        (REPO / "deploy" / "helm" / "order-service" / "values-aws.yaml").read_text()
    )
    row = next(ln for ln in GUIDE.read_text().splitlines() if ln.startswith("| `orders.created`"))
    config = values["config"]
    for key in (
        "KAFKA_TOPIC_PARTITIONS",
        "KAFKA_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TOPIC_MIN_INSYNC_REPLICAS",
    ):
        assert f"`{key}` (values-aws: {config[key]})" in row, key
