"""From the seed's `POST /order` to CONFIRMED through the real api, relay and worker processes."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import httpx
import orjson

from order_service.config import Settings
from tests.e2e.processes import Stack, settings_env
from tests.kafka_reader import read_all


async def _wait_confirmed(client: httpx.AsyncClient, order_id: str, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        order = (await client.get(f"/orders/{order_id}")).json()
        if order["status"] == "CONFIRMED":
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {order_id} not CONFIRMED within {timeout_s}s: {order}")


async def test_the_seeds_curl_order_is_confirmed_and_its_event_is_on_the_topic(
    stack: Stack, settings: Settings
) -> None:
    api = stack.start("api")
    stack.start("relay")
    stack.start("worker")

    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        placed = await client.post("/order", json={"item": "book", "quantity": 2})
        assert placed.status_code == 200, placed.text
        order_id = placed.json()["order_id"]
        await _wait_confirmed(client, order_id, timeout_s=20)

    records = await asyncio.to_thread(
        read_all, settings.kafka_bootstrap_servers, settings.kafka_order_topic
    )
    assert [r.key for r in records] == [order_id]
    event = records[0]
    assert event.headers["ce_type"] == "order.created"
    assert event.headers["ce_subject"] == order_id
    uuid.UUID(event.headers["ce_id"])
    assert orjson.loads(event.value)["item"] == "book"


async def test_a_warm_stack_confirms_every_order_one_after_another(stack: Stack) -> None:
    """How fast is `make bench`'s to measure; here each order must simply reach CONFIRMED."""
    api = stack.start("api")
    stack.start("relay")
    stack.start("worker")
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        first = (await client.post("/orders", json={"item": "warm-up", "quantity": 1})).json()
        await _wait_confirmed(client, first["id"], timeout_s=20)

        took = []
        for n in range(5):
            order = (await client.post("/orders", json={"item": f"i{n}", "quantity": 1})).json()
            took.append(await _wait_confirmed(client, order["id"], timeout_s=10))

    assert len(took) == 5
    print(f"confirmation latencies (s): {[round(t, 3) for t in took]}")


async def test_every_process_exits_cleanly_on_sigterm(stack: Stack) -> None:
    services = [stack.start(name) for name in ("api", "relay", "worker")]

    codes = [s.stop(signal.SIGTERM, timeout_s=15) for s in services]

    # uvicorn drains, then re-raises SIGTERM so the api's status says how it ended.
    assert codes == [0, 0, 0], [s.output()[-2000:] for s in services]
    assert all("Traceback" not in s.output() for s in services), [s.output() for s in services]


async def test_a_process_whose_database_is_unreachable_exits_with_one_clear_line(
    stack: Stack,
) -> None:
    for name in ("api", "relay", "worker"):
        service = stack.start(
            name,
            wait=False,
            POSTGRES_DSN="postgresql+asyncpg://postgres:postgres@127.0.0.1:1/none",
            STARTUP_TIMEOUT_S="1",
        )
        code = service.process.wait(30)
        lines = [line for line in service.output().splitlines() if line.strip()]
        assert code != 0
        assert any("PostgreSQL" in line or "database" in line.lower() for line in lines[-3:]), lines
        # The last line is the CLI's own, naming what was unreachable; no traceback.
        assert lines[-1].startswith("order-service: PostgreSQL at 127.0.0.1:1"), lines
        assert not any("Traceback" in line or "╭" in line for line in lines), lines


def test_doctor_passes_on_a_running_stack_and_fails_when_a_process_is_down(stack: Stack) -> None:
    import subprocess
    import sys

    api, relay, worker = (stack.start(name) for name in ("api", "relay", "worker"))
    command = [
        sys.executable,
        "-m",
        "order_service",
        "doctor",
        "--api",
        api.url,
        "--relay",
        relay.url,
        "--worker",
        worker.url,
    ]

    # KAFKA_BOOTSTRAP_SERVERS (and the topics) in the environment: the cluster's rows too.
    env = {**settings_env(stack.settings), "COLUMNS": "200"}
    healthy = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    worker.stop()
    broken = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)

    assert healthy.returncode == 0, healthy.stdout
    assert "FAIL" not in healthy.stdout and healthy.stdout.count("ok") >= 12
    assert "primary (read-write)" in healthy.stdout  # the database host and its role
    assert "kafka broker 1" in healthy.stdout and "active controller" in healthy.stdout
    assert f"kafka topic {stack.settings.kafka_order_topic}" in healthy.stdout
    assert "all in sync" in healthy.stdout
    assert broken.returncode == 1
    assert "worker ready" in broken.stdout and "FAIL" in broken.stdout
