"""Every dashboard panel against a real Prometheus that scraped the running api, relay and worker.

The stack: the session's PostgreSQL and Tansu broker, `order-service api|relay|worker` as
subprocesses, Debian's postgres-exporter, and Prometheus scraping all four every second with the
repository's rule files loaded. After ~200 orders (plus replays, conflicts, validation failures
and one poison message) every panel query runs over the test's time range: none may be rejected,
and every panel over our own or PostgreSQL metrics must return data. kafka-exporter is not
installable here, so its panels are only checked for acceptance.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from order_service.config import Settings
from order_service.devstack.ports import free_port
from order_service.messaging.kafka_client import create_producer, ensure_topics
from tests.conftest import Infra, create_database, drop_database, make_settings
from tests.observability.dashboards import PanelQuery, panel_queries
from tests.observability.prometheus_server import (
    DEPLOY,
    REPO,
    Prometheus,
    QueryRejected,
    running_prometheus,
    tool,
)
from tests.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.e2e

CLI = REPO / ".venv" / "bin" / "order-service"
ORDERS = 200
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval for a 1 s scrape interval


@dataclass(frozen=True)
class LiveStack:
    prometheus: Prometheus
    start: float
    end: float


class Process:
    """A child process with its log in a file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            args, env=env, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_http(self, url: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.log()}"
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not serving {url} after {timeout_s}s:\n{self.log()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def service_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


async def traffic_wave(api: str, orders: int) -> int:
    """Orders through both endpoints, replays, conflicts, reads and validation failures.

    Returns the number of orders created (each must reach the worker)."""
    limit = asyncio.Semaphore(16)
    keyed = min(10, orders)
    seeds = orders // 20 + 1
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:

        async def post(path: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
            headers = {"Idempotency-Key": key} if key else {}
            async with limit:
                return await client.post(path, json=body, headers=headers)

        keys = [f"obs-{uuid.uuid4()}" for _ in range(keyed)]
        bodies = [{"item": f"book-{i}", "quantity": i % 5 + 1} for i in range(orders)]
        created = await asyncio.gather(
            *(post("/orders", b, keys[i] if i < keyed else None) for i, b in enumerate(bodies))
        )
        assert [r.status_code for r in created] == [201] * orders, created[0].text
        seed = await asyncio.gather(
            *(post("/order", {"item": "pen", "quantity": 1}) for _ in range(seeds))
        )
        assert {r.status_code for r in seed} == {200}
        replays = await asyncio.gather(*(post("/orders", bodies[i], keys[i]) for i in range(keyed)))
        assert {r.status_code for r in replays} == {201}
        conflicts = await asyncio.gather(
            *(post("/orders", {"item": "other", "quantity": 9}, keys[i]) for i in range(2))
        )
        assert {r.status_code for r in conflicts} == {422}
        invalid = await asyncio.gather(
            *(post("/orders", {"item": "book", "quantity": 0}) for _ in range(2)),
            *(post("/orders", {"item": "  ", "quantity": 1}) for _ in range(2)),
        )
        assert {r.status_code for r in invalid} == {422}
        for response in created[:5]:
            got = await client.get(f"/orders/{response.json()['id']}")
            assert got.status_code == 200
    return orders + seeds


async def send_poison_message(settings: Settings) -> None:
    producer = create_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.kafka_order_topic, b"{not an order", key=b"poison-message"
        )
    finally:
        await producer.stop()


def wait_for(prom: Prometheus, expr: str, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if prom.query(expr):
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: `{expr}` still empty after {timeout_s}s")


def scrape_job(name: str, port: int) -> dict[str, Any]:
    return {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}


@pytest.fixture(scope="module")
def live(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    assert CLI.exists(), f"{CLI} missing: run `make install`"
    workdir = tmp_path_factory.mktemp("live-stack")
    database = asyncio.run(create_database(infra, "t_obs"))
    settings = make_settings(infra, database, worker_max_attempts=2, log_level="WARNING")
    asyncio.run(ensure_topics(settings))
    # Traces are exported (to a real OTLP receiver), so the histograms carry exemplars.
    receiver = OtlpReceiver().start()
    env = {
        **service_env(settings),
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }
    ports = {"api": free_port(), "relay": free_port(), "worker": free_port()}
    exporter_port = free_port()
    processes: list[Process] = []
    try:
        for name, port in ports.items():
            args = [str(CLI), name, "--host", "127.0.0.1", "--port", str(port)]
            processes.append(Process(name, args, env, workdir))
        exporter_env = {
            **os.environ,
            "DATA_SOURCE_NAME": f"{infra.admin_dsn}?sslmode=disable",
        }
        exporter_args = [
            tool("prometheus-postgres-exporter"),
            f"--web.listen-address=127.0.0.1:{exporter_port}",
        ]
        processes.append(Process("postgres-exporter", exporter_args, exporter_env, workdir))
        for process, port in zip(processes, [*ports.values(), exporter_port], strict=True):
            path = "/metrics" if process.name == "postgres-exporter" else "/healthz"
            process.wait_http(f"http://127.0.0.1:{port}{path}")

        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in sorted((DEPLOY / "prometheus/rules").glob("*.yml"))],
            "scrape_configs": [
                scrape_job("order-service-api", ports["api"]),
                scrape_job("order-service-relay", ports["relay"]),
                scrape_job("order-service-worker", ports["worker"]),
                scrape_job("postgres-exporter", exporter_port),
            ],
        }
        with running_prometheus(workdir / "prometheus", config) as prom:
            start = time.time()
            wait_for(
                prom, 'min(up{job=~"order-service-.*|postgres-exporter"}) == 1', 30, "targets up"
            )
            api = f"http://127.0.0.1:{ports['api']}"
            # Labelled series appear at their first event, and rate() needs an earlier sample:
            # a small warm-up wave (and a first poison message) creates every series before
            # the main waves increase them.
            total = asyncio.run(traffic_wave(api, 5))
            asyncio.run(send_poison_message(settings))
            wait_for(prom, "sum(worker_events_dead_lettered_total) >= 1", 120, "first DLQ")
            for _ in range(3):
                total += asyncio.run(traffic_wave(api, ORDERS // 3))
                time.sleep(2)
            asyncio.run(send_poison_message(settings))
            wait_for(prom, f"sum(worker_events_processed_total) >= {total}", 120, "all confirmed")
            wait_for(prom, "sum(worker_events_dead_lettered_total) >= 2", 120, "second DLQ")
            time.sleep(3)  # a few more scrapes and rule evaluations after the last event
            yield LiveStack(prom, start, time.time())
    finally:
        for process in reversed(processes):
            process.stop()
        receiver.stop()
        asyncio.run(drop_database(infra, database))


def queries() -> list[PanelQuery]:
    return panel_queries(rate_interval=RATE_INTERVAL, range_="5m")


def has_finite_value(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(v)) for series in result for _, v in series["values"])


def test_every_scrape_target_is_up(live: LiveStack) -> None:
    health = live.prometheus.targets_up()
    assert health == {
        "order-service-api": "up",
        "order-service-relay": "up",
        "order-service-worker": "up",
        "postgres-exporter": "up",
    }


def test_no_panel_query_is_rejected_by_prometheus(live: LiveStack) -> None:
    rejected = []
    for query in queries():
        try:
            live.prometheus.query_range(query.expr, live.start, live.end)
        except QueryRejected as exc:
            rejected.append(f"{query}: {exc}")
    assert not rejected, "\n".join(rejected)


def test_every_panel_over_our_metrics_returns_data(live: LiveStack) -> None:
    empty = []
    for query in queries():
        if query.over_kafka_exporter_metrics:
            continue  # kafka-exporter cannot run here
        result = live.prometheus.query_range(query.expr, live.start, live.end)
        if not has_finite_value(result):
            empty.append(f"{query}: {query.expr}")
    known = ", ".join(n for n in live.prometheus.metric_names() if not n.startswith("pg_"))
    assert not empty, "panels without data:\n" + "\n".join(empty) + f"\nscraped: {known}"


def test_latency_histograms_carry_trace_id_exemplars(live: LiveStack) -> None:
    data = live.prometheus.exemplars("http_request_duration_seconds_bucket", live.start, live.end)
    trace_ids = [e["labels"].get("trace_id") for series in data for e in series["exemplars"]]
    assert trace_ids, "no exemplars on http_request_duration_seconds"
    assert all(t and len(t) == 32 for t in trace_ids)


def test_previews_drawn_from_live_data_show_every_panel_over_our_metrics(
    live: LiveStack, tmp_path: Path
) -> None:
    from tests.observability.dashboards import KAFKA_EXPORTER_METRIC, load_dashboards, panels
    from tests.observability.test_dashboard_previews import load_preview, panel_groups, polylines

    window = ["--start", repr(live.start), "--end", repr(live.end)]
    args = ["--prometheus", live.prometheus.url, *window, "--rate-interval", RATE_INTERVAL]
    assert load_preview().main([*args, "--out", str(tmp_path)]) == 0
    written = sorted(tmp_path.glob("*.svg"))
    boards = load_dashboards()
    assert sorted(p.name for p in written) == sorted(n.replace(".json", ".svg") for n in boards)
    blank = []
    for name, board in sorted(boards.items()):
        svg = (tmp_path / name.replace(".json", ".svg")).read_text(encoding="utf-8")
        assert len(svg.encode()) < 300_000, f"{name}: preview too large to commit"
        groups = panel_groups(svg)
        for panel in panels(board):
            group = groups[f"panel-{panel['id']}"]
            exprs = [t["expr"] for t in panel.get("targets", [])]
            if not exprs or all(KAFKA_EXPORTER_METRIC.search(e) for e in exprs):
                continue  # rows, and kafka-exporter panels (it cannot run here)
            values = [t for t in group.iter() if "value" in t.get("class", "").split()]
            if not polylines(group) and not values:
                blank.append(f"{name} / {panel['title']}")
    assert not blank, "previews without data:\n" + "\n".join(blank)
    # ORDER_SERVICE_WRITE_PREVIEWS=docs/dashboards regenerates the committed previews.
    if target := os.environ.get("ORDER_SERVICE_WRITE_PREVIEWS"):
        (REPO / target).mkdir(parents=True, exist_ok=True)
        for path in written:
            (REPO / target / path.name).write_bytes(path.read_bytes())
