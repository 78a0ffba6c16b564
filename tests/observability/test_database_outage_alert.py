"""A database outage as the monitoring sees it: the api counts `db_unavailable_total`, and the
`OrderApiDatabaseUnavailable` rule, loaded into a real Prometheus scraping that api, turns
pending — before the outage its expression is empty.

The api runs as a process (`order-service api`) against a PostgreSQL of its own that the test
stops; clients keep ordering and reading as they would.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from order_service.devstack.ports import free_port
from order_service.devstack.postgres import EmbeddedPostgres
from tests.conftest import Infra, make_settings
from tests.observability.prometheus_server import DEPLOY, running_prometheus
from tests.observability.promql import rules
from tests.observability.stack import Process, scrape_job, service_env, wait_for

pytestmark = pytest.mark.e2e

ALERT = "OrderApiDatabaseUnavailable"
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
BODY = {"item": "book", "quantity": 1}


def db_unavailable(api: str) -> dict[str, float]:
    """`db_unavailable_total` by `op`, as the api exposes it now."""
    text = httpx.get(f"{api}/metrics", timeout=5).text
    return {
        sample.labels["op"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "db_unavailable"
        for sample in family.samples
        if sample.name == "db_unavailable_total"
    }


def test_a_stopped_database_is_counted_and_turns_the_alert_pending(
    own_postgres: EmbeddedPostgres, infra: Infra, tmp_path: Path
) -> None:
    """Catches the outage going unseen by the alert: the counter no longer incremented where
    the api maps an unreachable database to 503 (tried: the increments in
    `database_errors_as_unavailable` and in the group-commit writer removed), or the rule over
    a name or label the api does not expose (tried: `db_unavailable_total{op="query"}`)."""
    (alert,) = [rule for rule in rules(RULE_FILES) if rule.get("alert") == ALERT]
    settings = make_settings(infra, "orderdb", postgres_dsn=own_postgres.dsn(), log_level="WARNING")
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    process = Process.service("api", port, service_env(settings), tmp_path)
    try:
        process.wait_http(f"{api}/healthz")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULE_FILES],
            "scrape_configs": [scrape_job("order-service-api", port)],
        }
        with running_prometheus(tmp_path / "prometheus", config) as prom:
            assert httpx.post(f"{api}/orders", json=BODY, timeout=10).status_code == 201
            wait_for(prom, 'up{job="order-service-api"} == 1', 30, "api scraped")
            time.sleep(3)  # scrapes and evaluations of a healthy api
            assert db_unavailable(api) == {}
            assert prom.query(alert["expr"]) == []

            own_postgres.stop()
            answers: list[int] = []
            deadline = time.monotonic() + 30
            # Clients keep coming (and the kubelet keeps probing) until the rule sees it.
            while not prom.query(f'ALERTS{{alertname="{ALERT}",alertstate="pending"}}'):
                assert time.monotonic() < deadline, f"{ALERT} not pending: {Counter(answers)}"
                answers.append(httpx.post(f"{api}/orders", json=BODY, timeout=10).status_code)
                answers.append(httpx.get(f"{api}/orders/{uuid.uuid4()}", timeout=10).status_code)
                httpx.get(f"{api}/readyz", timeout=10)
                time.sleep(0.3)

            assert set(answers) == {503}
            counted = db_unavailable(api)
            assert counted.get("write", 0) > 0 and counted.get("read", 0) > 0, counted
            (seen,) = prom.query(alert["expr"])
            assert float(seen["value"][1]) > 0
            up = prom.query('dependency_up{job="order-service-api",dependency="postgres"}')
            assert [float(s["value"][1]) for s in up] == [0.0]
    finally:
        process.stop()
