"""`make dev BROKER=kafka`: the same stack on Apache Kafka, with the production producer
settings, whose log outlives the run (unlike Tansu's memory) and which leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson

from tests.e2e.dev_runs import DevHome, places_and_confirms_an_order, stack_of, wait_all_gone


def _events(home: DevHome, order_id: str) -> list[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "order_service", "events", "--key", order_id, "--json"],
        env={
            "PATH": "/usr/bin:/bin",
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{home.ports['kafka']}",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    return [orjson.loads(line)["type"] for line in listed.stdout.splitlines() if line.strip()]


def test_dev_on_apache_kafka_serves_orders_keeps_its_log_across_runs_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """Catches: the dev stack starting Tansu whatever `--broker` says (no `java` process
    under the supervisor), the idempotence switch left off for Apache Kafka, a broker whose
    data is thrown away at the end of a run (the first run's status event would be gone from
    `orders.status` in the second), and a JVM outliving Ctrl-C (its ports stay taken)."""
    home = DevHome(tmp_path, broker="kafka")
    dev = home.start()
    try:
        assert "starting Kafka broker (Apache Kafka)" in dev.output()
        stack = stack_of(dev)
        assert any(p.name() == "java" for p in stack), [p.name() for p in stack]
        relay = next(p for p in stack if "relay" in p.cmdline())
        assert relay.environ().get("KAFKA_ENABLE_IDEMPOTENCE") == "true"
        first = places_and_confirms_an_order(home.api)
        ended = time.monotonic()
        home.stop()
        wait_all_gone(stack, home, since=ended)

        home.start()
        second = places_and_confirms_an_order(home.api)
        assert _events(home, first) == ["order.confirmed"]
        assert _events(home, second) == ["order.confirmed"]
    finally:
        home.stop()
