"""The AWS side: the ADOT collector config and the step-by-step deployment guide."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

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
