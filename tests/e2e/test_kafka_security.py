"""Security as MSK runs it: the real processes and commands over SASL_SSL (SCRAM-SHA-512, a CA
the test makes), and a wrong password or an untrusted certificate as one start-up line.

The service's processes get only the secured listener; the test arranges and reads records
through the same node's PLAINTEXT listener, independently of the settings under test.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from order_service.config import Settings
from order_service.domain.order import Order
from order_service.messaging.kafka_client import ensure_topics
from tests.conftest import Infra, make_settings
from tests.e2e.processes import Stack, running_stack, settings_env
from tests.factories import Raw, insert_order_row, order_created, produce
from tests.kafka_reader import read_all, wait_for_records
from tests.secure_kafka import SecureKafka

# A process that retried a refused login would run this long before giving up.
STARTUP_TIMEOUT_S = 120
COMMANDS = {
    "relay": ["relay", "--port", "0"],
    "worker": ["worker", "--port", "0"],
    "dlq replay": ["dlq", "replay"],
    "events": ["events"],
}


@pytest.fixture
def plain_settings(infra: Infra, database: str, secure_kafka: SecureKafka) -> Settings:
    """The test's own view: its database, and the secured node through its PLAINTEXT listener."""
    return make_settings(infra, database, kafka_bootstrap_servers=secure_kafka.plain_bootstrap)


@pytest.fixture
def secure_stack(plain_settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(plain_settings, tmp_path) as running:
        yield running


def run_command(
    settings: Settings, args: list[str], env: dict[str, str], timeout_s: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "order_service", *args],
        env=settings_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


async def status_of(db: asyncpg.Connection, order_id: object) -> str | None:
    value = await db.fetchval("SELECT status FROM orders WHERE id = $1", order_id)
    return None if value is None else str(value)


async def until_confirmed(db: asyncpg.Connection, order_id: object, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while await status_of(db, order_id) != "CONFIRMED":
            await asyncio.sleep(0.1)


async def test_api_relay_worker_and_every_command_work_over_sasl_ssl_with_scram_and_a_private_ca(
    secure_stack: Stack, plain_settings: Settings, secure_kafka: SecureKafka, db: asyncpg.Connection
) -> None:
    """Catches settings that never reach the clients: KAFKA_SSL_CAFILE left out of the TLS
    context (seen: the relay exits 1, "its TLS certificate is not trusted ... check
    KAFKA_SSL_CAFILE=..."), or the SASL options left out of the clients' (seen: the relay exits
    1, aiokafka's "sasl_plain_username and sasl_plain_password required for PLAIN sasl")."""
    env = secure_kafka.env(
        KAFKA_ENABLE_IDEMPOTENCE="true", STARTUP_TIMEOUT_S=str(STARTUP_TIMEOUT_S)
    )
    api = secure_stack.start("api", **env)
    secure_stack.start("relay", **env)
    worker = secure_stack.start("worker", **env, WORKER_MAX_ATTEMPTS="1")

    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        placed = await client.post("/orders", json={"item": "sealed", "quantity": 2})
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["id"]
        await until_confirmed(db, order_id)

    # What reached the broker, read raw by an independent client on the other listener.
    bootstrap = secure_kafka.plain_bootstrap
    created = await asyncio.to_thread(read_all, bootstrap, plain_settings.kafka_order_topic)
    statuses = await asyncio.to_thread(read_all, bootstrap, plain_settings.kafka_status_topic)
    assert [(r.key, r.headers["ce_type"]) for r in created] == [(order_id, "order.created")]
    assert [(r.key, r.headers["ce_type"]) for r in statuses] == [(order_id, "order.confirmed")]

    shown = run_command(plain_settings, ["events", "--json"], env)
    assert shown.returncode == 0, shown.stderr[-2000:]
    events = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(e["key"], e["type"], e["status"]) for e in events] == [
        (order_id, "order.confirmed", "CONFIRMED")
    ]

    relay_url, worker_url = (s.url for s in secure_stack.services[1:3])
    doctor = run_command(
        plain_settings,
        ["doctor", "--api", api.url, "--relay", relay_url, "--worker", worker_url],
        env,
    )
    assert doctor.returncode == 0, doctor.stdout[-4000:]

    # A dead letter made over SASL_SSL by the worker, replayed over SASL_SSL by the command.
    ghost = Order.place("not stored yet", 1)
    await produce(plain_settings, [Raw.of(order_created(plain_settings, ghost))])
    dead = await wait_for_records(bootstrap, plain_settings.dlq_topic, 1, 30)
    assert [r.headers["dlq.error.type"] for r in dead] == ["unknown_order"]
    await insert_order_row(db, ghost)
    replay = run_command(plain_settings, ["dlq", "replay"], env)
    assert replay.returncode == 0, replay.stderr[-2000:]
    assert f"replayed 1 event(s) from {plain_settings.dlq_topic}" in replay.stdout
    await until_confirmed(db, ghost.id)
    assert worker.process.poll() is None


def refused(
    plain_settings: Settings, secure_kafka: SecureKafka, env: dict[str, str]
) -> dict[str, tuple[float, subprocess.CompletedProcess[str]]]:
    """Each command that reaches Kafka at start-up, run with `env`: (seconds, its result)."""
    results = {}
    for name, args in COMMANDS.items():
        started = time.monotonic()
        result = run_command(plain_settings, args, env, timeout_s=STARTUP_TIMEOUT_S + 30)
        results[name] = (time.monotonic() - started, result)
    return results


def assert_one_line(
    results: dict[str, tuple[float, subprocess.CompletedProcess[str]]], line: str
) -> None:
    for name, (took, result) in results.items():
        said = [ln for ln in result.stderr.splitlines() if ln.startswith("order-service:")]
        assert (result.returncode, said) == (1, [line]), (name, result.stderr[-3000:])
        output = result.stdout + result.stderr
        assert "Traceback" not in output, name
        # Not retried as if the broker were away: no retry logged, and over well before the
        # start-up budget (the time is mostly Python starting on a busy machine).
        assert "startup_dependency_unavailable" not in output, name
        assert took < STARTUP_TIMEOUT_S / 2, f"{name} took {took:.1f}s"


async def test_a_wrong_password_is_one_start_up_line_naming_the_setting_never_the_secret(
    plain_settings: Settings, secure_kafka: SecureKafka
) -> None:
    """Catches a refused login treated as an outage (seen without `refusal_explained`, with
    STARTUP_TIMEOUT_S=60: relay, worker and dlq replay retry, then "Kafka at ... unreachable
    after 60s: KafkaConnectionError: Unable to bootstrap ...") and a password in the message
    (seen when the message carried it: the line no longer matches)."""
    await ensure_topics(plain_settings)
    wrong = secrets.token_urlsafe(12)
    env = secure_kafka.env(KAFKA_SASL_PASSWORD=wrong, STARTUP_TIMEOUT_S=str(STARTUP_TIMEOUT_S))

    results = await asyncio.to_thread(refused, plain_settings, secure_kafka, env)

    assert_one_line(
        results,
        f"order-service: Kafka at {secure_kafka.secure_bootstrap}: the SCRAM-SHA-512 login of "
        f"user '{secure_kafka.username}' was refused; check KAFKA_SASL_USERNAME and "
        "KAFKA_SASL_PASSWORD",
    )
    for name, (_, result) in results.items():
        output = result.stdout + result.stderr
        assert wrong not in output, name
        assert secure_kafka.password not in output, name


@pytest.mark.parametrize("trusted", ["another CA", "the system's CAs"])
async def test_an_untrusted_certificate_is_one_start_up_line_naming_the_setting(
    plain_settings: Settings, secure_kafka: SecureKafka, trusted: str
) -> None:
    """Catches a certificate failure treated as an outage (seen without `refusal_explained`,
    with STARTUP_TIMEOUT_S=60: "Kafka at ... unreachable after 60s: KafkaConnectionError:
    Unable to bootstrap ..." after a minute of retries)."""
    await ensure_topics(plain_settings)
    cafile = str(secure_kafka.other_ca_file) if trusted == "another CA" else ""
    env = secure_kafka.env(KAFKA_SSL_CAFILE=cafile, STARTUP_TIMEOUT_S=str(STARTUP_TIMEOUT_S))
    if not cafile:
        del env["KAFKA_SSL_CAFILE"]

    results = await asyncio.to_thread(refused, plain_settings, secure_kafka, env)

    fix = (
        f"check KAFKA_SSL_CAFILE={cafile}"
        if cafile
        else "set KAFKA_SSL_CAFILE to the CA that signed it (without it, only the system's CAs "
        "are trusted)"
    )
    assert_one_line(
        results,
        f"order-service: Kafka at {secure_kafka.secure_bootstrap}: its TLS certificate is not "
        f"trusted (self-signed certificate in certificate chain); {fix}",
    )
    for name, (_, result) in results.items():
        assert secure_kafka.password not in result.stdout + result.stderr, name
