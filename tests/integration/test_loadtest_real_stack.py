"""`order-service loadtest --verify` against the real api + relay + worker processes, on the
session's PostgreSQL and Apache Kafka: zero loss, and the contract's answers understood."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from bench.processes import BIN, Child
from typer.testing import CliRunner

from order_service.devstack.ports import free_port
from order_service.loadtest.command import loadtest
from tests.conftest import Infra, make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def stack_url(infra: Infra, database: str, tmp_path: Path) -> Iterator[str]:
    settings = make_settings(infra, database)
    env = {
        "POSTGRES_DSN": settings.postgres_dsn,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_ENABLE_IDEMPOTENCE": "true",
        "KAFKA_ORDER_TOPIC": settings.kafka_order_topic,
        "KAFKA_STATUS_TOPIC": settings.kafka_status_topic,
        "KAFKA_CONSUMER_GROUP": settings.kafka_consumer_group,
        "RELAY_POLL_INTERVAL_S": "0.2",
        "LOG_LEVEL": "WARNING",
        "ENVIRONMENT": "test",
    }
    ports = {name: free_port() for name in ("api", "relay", "worker")}
    children = [
        Child(
            name,
            [str(BIN / "order-service"), name, "--host", "127.0.0.1", "--port", str(port)],
            env,
            tmp_path / f"{name}.log",
        )
        for name, port in ports.items()
    ]
    try:
        for child in children:
            child.start()
        for child in children:
            child.wait_ready(f"http://127.0.0.1:{ports[child.name]}/readyz", timeout_s=60)
        yield f"http://127.0.0.1:{ports['api']}"
    finally:
        for child in reversed(children):
            child.stop()


def run_cli(*args: str) -> tuple[int, dict[str, Any]]:
    app = typer.Typer()
    app.command()(loadtest)
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def test_verify_against_the_real_stack_finds_every_order_confirmed(stack_url: str) -> None:
    code, summary = run_cli(
        "--url", stack_url, "--rate", "80", "--duration", "3", "--replay-ratio", "0.1",
        "--invalid-ratio", "0.1", "--seed", "5", "--verify", "--verify-timeout", "60",
    )  # fmt: skip
    assert sum(summary["errors"].values()) == 0, summary
    assert code == 0
    assert summary["outcomes"]["replayed"] > 5
    assert summary["outcomes"]["rejected_invalid"] > 5
    assert summary["verify"]["ok"] is True
    assert summary["verify"]["confirmed"] == summary["outcomes"]["accepted"]
    assert set(summary["status_codes"]) == {"201", "422"}


def test_the_seed_endpoint_of_the_real_stack_is_verified_too(stack_url: str) -> None:
    code, summary = run_cli(
        "--url", stack_url, "--endpoint", "order", "--concurrency", "4", "--total", "40",
        "--verify", "--verify-timeout", "60",
    )  # fmt: skip
    assert code == 0, summary
    assert summary["status_codes"] == {"200": 40}
    assert summary["verify"]["confirmed"] == 40
