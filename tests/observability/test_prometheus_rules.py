"""The Prometheus config, the alert and recording rules, and their promtool unit tests."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from tests.observability.prometheus_server import DEPLOY, REPO, tool

PROMETHEUS = DEPLOY / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
RUNBOOKS = REPO / "docs" / "runbooks"
# A dead-man's switch fires by definition whatever the data; its tests assert that instead.
ALWAYS_FIRING = {"Watchdog"}


def promtool(*args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(
        [tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def alert_rules() -> list[dict[str, Any]]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules += [rule for rule in group["rules"] if "alert" in rule]
    return rules


def test_prometheus_config_passes_promtool_from_any_working_directory(tmp_path: Path) -> None:
    output = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"), cwd=tmp_path)
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in output


def test_prometheus_scrapes_the_three_processes_and_both_exporters() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["order-service-api"] == ["api:8000"]
    assert targets["order-service-relay"] == ["relay:8001"]
    assert targets["order-service-worker"] == ["worker:8002"]
    assert targets["postgres-exporter"] == ["postgres-exporter:9187"]
    assert targets["kafka-exporter"] == ["kafka-exporter:9308"]
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]


def test_rule_files_pass_promtool_check() -> None:
    output = promtool("check", "rules", *map(str, RULE_FILES))
    assert output.count("SUCCESS") == len(RULE_FILES)


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    output = promtool("test", "rules", *map(str, TEST_FILES))
    assert output.count("SUCCESS") == len(TEST_FILES), output


def test_every_alert_has_a_firing_and_a_non_firing_unit_test() -> None:
    fired: dict[str, set[str]] = defaultdict(set)
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired[check["alertname"]] |= {
                        alert["exp_labels"]["severity"] for alert in check["exp_alerts"]
                    }
                else:
                    quiet.add(check["alertname"])
    for rule in alert_rules():
        name, severity = rule["alert"], rule["labels"]["severity"]
        assert severity in fired[name], f"no unit test where {name} ({severity}) fires"
        assert name in quiet or name in ALWAYS_FIRING, f"no unit test where {name} stays quiet"


def test_every_alert_has_a_severity_and_annotations_linking_an_existing_runbook() -> None:
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "none"}, name
        annotations = rule["annotations"]
        assert annotations["summary"], name
        assert annotations["description"], name
        runbook = annotations["runbook_url"].rsplit("/docs/runbooks/", 1)[1]
        text = (RUNBOOKS / runbook).read_text(encoding="utf-8")
        assert f"`{name}`" in text, f"{runbook} does not name the alert {name}"


def test_the_dead_mans_switch_has_no_condition() -> None:
    watchdog = [rule for rule in alert_rules() if rule["alert"] == "Watchdog"]
    assert [rule["expr"] for rule in watchdog] == ["vector(1)"]
