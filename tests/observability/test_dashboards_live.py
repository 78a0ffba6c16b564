"""Every dashboard panel and alert rule against a real Prometheus that scraped the running stack.

The stack: the session's PostgreSQL and Apache Kafka, `order-service api|relay|worker` as
subprocesses (the api reaching PostgreSQL through a proxy the test can freeze, the worker in
the `order-processor` group), their spans exported to the OpenTelemetry Collector and on to
Jaeger, Debian's postgres-exporter, kafka-exporter, a prober calling each `/readyz` like a
kubelet, and Prometheus scraping all of them every second with the repository's rule files
loaded. The traffic: ~200 orders (plus
replays, conflicts, validation failures, two poison messages, an event of an unknown type and
a record with neither key nor value), stock-managed items whose orders are confirmed and
rejected and one of them cancelled per wave, and a few seconds with
the api's database link frozen (503s, refused writes, failed reads). Then: every metric a
panel or a rule names is exposed by the stack; every panel query runs over the test's time
range, none is rejected, and every panel over our own or PostgreSQL metrics returns data of
its own (an `or vector(0)` fallback does not count), the exporters' included; the seed's
metric tables hold real values.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from order_service.config import Settings
from order_service.devstack.ports import free_port
from order_service.messaging.kafka_client import ensure_topics
from tests.conftest import Infra, create_database, drop_database, make_settings
from tests.netfault.proxy import DelayProxy
from tests.observability.backends import Jaeger, running_tracing
from tests.observability.dashboards import PanelQuery, panel_queries
from tests.observability.prometheus_server import (
    DEPLOY,
    REPO,
    Prometheus,
    QueryRejected,
    running_prometheus,
    tool,
)
from tests.observability.promql import metric_names, rules, without_fallbacks
from tests.observability.stack import (
    Process,
    ReadinessProber,
    scrape_job,
    service_env,
    wait_for,
)
from tests.observability.traffic import (
    database_outage,
    lifecycle_wave,
    send_poison_message,
    send_unfamiliar_records,
    traffic_wave,
    written_after_recovery,
)

pytestmark = pytest.mark.e2e

ORDERS = 200
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval for a 1 s scrape interval
RULE_FILES = sorted((DEPLOY / "prometheus/rules").glob("*.yml"))
# Above any queue the traffic waves build (16 concurrent requests), below the outage's bursts.
WRITE_QUEUE_MAX = 24
OWN_JOBS = ("order-service-api", "order-service-relay", "order-service-worker")
EXPORTER_JOBS = ("postgres-exporter", "kafka-exporter")
RECORDED = {rule["record"] for rule in rules(RULE_FILES) if "record" in rule}
# Counters whose code paths need a broker fault (a failed publish, a wedged producer, a DLQ
# that refuses even a trimmed copy), a redelivery (an event seen twice) or rows past their
# retention (hours at the least): the fault, process and housekeeping suites drive those.
NOT_EXERCISED = {
    "outbox_publish_failures_total",
    "worker_events_duplicate_total",
    "relay_producer_recreated_total",
    "worker_dead_letters_dropped_total",
    "housekeeping_deleted_rows_total",
}
# Broker errors need a broker fault too (tests/cluster/ drives them), but a healthy start can
# see one: a produce to a topic created a moment ago may be answered NOT_LEADER_OR_FOLLOWER.
MAY_BE_EXERCISED = {"kafka_client_errors_total"}


@dataclass(frozen=True)
class LiveStack:
    prometheus: Prometheus
    jaeger: Jaeger
    settings: Settings
    orders: int  # placed through the api: one event each on the order topic
    start: float
    end: float


@pytest.fixture(scope="module")
def live(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    workdir = tmp_path_factory.mktemp("live-stack")
    database = asyncio.run(create_database(infra, "t_obs"))
    settings = make_settings(
        infra,
        database,
        worker_max_attempts=2,
        log_level="WARNING",
        kafka_consumer_group="order-processor",  # the group the seed's lag alert names
    )
    asyncio.run(ensure_topics(settings))
    # Only the api goes through the proxy: freezing it is an outage of the api's database
    # link, while the relay and the worker keep working.
    postgres = urlsplit(settings.postgres_dsn).netloc.rsplit("@", 1)[1]
    host, _, port = postgres.rpartition(":")
    proxy = DelayProxy(host, int(port)).start()
    api_settings = settings.model_copy(
        update={
            "postgres_dsn": settings.postgres_dsn.replace(f"@{postgres}/", f"@{proxy.address}/"),
            "write_queue_max": WRITE_QUEUE_MAX,
        }
    )
    ports = {"api": free_port(), "relay": free_port(), "worker": free_port()}
    exporters = {"kafka-exporter": free_port(), "postgres-exporter": free_port()}
    processes: list[Process] = []
    with ExitStack() as cleanup:
        cleanup.callback(lambda: asyncio.run(drop_database(infra, database)))
        cleanup.callback(proxy.close)
        # Traces are exported (Collector, then Jaeger), so the histograms carry exemplars.
        tracing = cleanup.enter_context(running_tracing(workdir / "tracing", service_env(settings)))
        cleanup.callback(lambda: [process.stop() for process in reversed(processes)])
        for name, service_port in ports.items():
            env = {**service_env(api_settings if name == "api" else settings), **tracing.otel_env()}
            processes.append(Process.service(name, service_port, env, workdir))
        processes.append(
            Process.service(
                "kafka-exporter", exporters["kafka-exporter"], service_env(settings), workdir
            )
        )
        exporter_env = {
            **service_env(settings),
            "DATA_SOURCE_NAME": f"{infra.admin_dsn}?sslmode=disable",
        }
        exporter_args = [
            tool("prometheus-postgres-exporter"),
            f"--web.listen-address=127.0.0.1:{exporters['postgres-exporter']}",
        ]
        processes.append(Process("postgres-exporter", exporter_args, exporter_env, workdir))
        for process, listen in zip(processes, [*ports.values(), *exporters.values()], strict=True):
            path = "/metrics" if process.name.endswith("-exporter") else "/healthz"
            process.wait_http(f"http://127.0.0.1:{listen}{path}")

        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULE_FILES],
            "scrape_configs": [
                scrape_job(f"order-service-{name}", listen) for name, listen in ports.items()
            ]
            + [scrape_job(name, listen) for name, listen in exporters.items()],
        }
        probes = [f"http://127.0.0.1:{p}/readyz" for p in ports.values()]
        with running_prometheus(workdir / "prometheus", config) as prom, ReadinessProber(probes):
            start = time.time()
            wait_for(prom, "min(up) == 1", 30, "targets up")
            api = f"http://127.0.0.1:{ports['api']}"
            # Labelled series appear at their first event, and rate() needs an earlier sample:
            # a small warm-up wave (and a first poison message) creates every series before
            # the main waves increase them.
            total = asyncio.run(traffic_wave(api, 5))
            total += asyncio.run(lifecycle_wave(api, "obs-stock-0"))
            asyncio.run(send_poison_message(settings))
            asyncio.run(send_unfamiliar_records(settings))
            wait_for(prom, "sum(worker_events_dead_lettered_total) >= 1", 120, "first DLQ")
            for wave in range(1, 4):
                total += asyncio.run(traffic_wave(api, ORDERS // 3))
                total += asyncio.run(lifecycle_wave(api, f"obs-stock-{wave}"))
                if wave == 1:
                    answers = asyncio.run(database_outage(api, proxy))
                    assert set(answers) == {503}, answers
                    total += asyncio.run(written_after_recovery(api))
                time.sleep(2)
            asyncio.run(send_poison_message(settings))
            wait_for(prom, f"sum(worker_events_processed_total) >= {total}", 120, "all processed")
            wait_for(prom, "sum(worker_events_dead_lettered_total) >= 2", 120, "second DLQ")
            wait_for(prom, "sum(orders_write_refused_total) > 0", 30, "writes refused")
            wait_for(prom, "sum(db_unavailable_total) > 0", 30, "database unavailable")
            # kafka-exporter sees the group caught up: every event committed past.
            lag = 'sum(kafka_consumergroup_lag{consumergroup="order-processor"})'
            wait_for(prom, f"{lag} == 0", 60, "order-processor caught up")
            time.sleep(3)  # a few more scrapes and rule evaluations after the last event
            yield LiveStack(prom, tracing.jaeger, settings, total, start, time.time())


def queries() -> list[PanelQuery]:
    return panel_queries(rate_interval=RATE_INTERVAL, range_="5m")


def has_finite_value(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(v)) for series in result for _, v in series["values"])


def named_metrics() -> set[str]:
    """The metrics the rules and the panels select, recorded series resolved to none (their
    own expressions are in the rules)."""
    exprs = [rule["expr"] for rule in rules(RULE_FILES)] + [q.expr for q in queries()]
    named = set().union(*(metric_names(expr) for expr in exprs))
    unknown = {n for n in named if ":" in n} - RECORDED
    assert not unknown, f"recorded series that no rule records: {sorted(unknown)}"
    return named - RECORDED


def exposed_metric_names(prom: Prometheus) -> set[str]:
    """Names of the series scraped from the stack's targets (recorded series carry no job)."""
    jobs = "|".join((*OWN_JOBS, *EXPORTER_JOBS))
    return {s["metric"]["__name__"] for s in prom.query(f'group by (__name__) ({{job=~"{jobs}"}})')}


def test_every_scrape_target_is_up(live: LiveStack) -> None:
    health = live.prometheus.targets_up()
    assert health == {
        "order-service-api": "up",
        "order-service-relay": "up",
        "order-service-worker": "up",
        "postgres-exporter": "up",
        "kafka-exporter": "up",
    }


def test_every_metric_named_in_a_rule_or_a_panel_is_exposed_by_the_running_stack(
    live: LiveStack,
) -> None:
    """Catches a rule or panel over a metric no process exposes — misspelt, renamed, or a
    labelled counter the traffic never incremented (tried: a panel over
    `orders_rejected_totals`, and the database-outage phase left out: `db_unavailable_total`
    and `orders_write_refused_total` are reported missing; kafka-exporter left out of the
    scrape: every `kafka_*` name the Kafka board and the lag and DLQ alerts use is reported)."""
    named = named_metrics()
    missing = named - exposed_metric_names(live.prometheus)
    assert not missing, f"named in rules or panels, not exposed by the stack: {sorted(missing)}"


def test_every_counter_named_in_a_rule_or_a_panel_counted_during_the_run(
    live: LiveStack,
) -> None:
    """Unlabelled counters are exposed at 0 by every process of the shared registry, so being
    exposed proves little for them: each must have counted something, i.e. the traffic drove
    the code path (tried: the lifecycle wave without its cancellation fails here on
    `orders_cancelled_total`). NOT_EXERCISED names the ones that need faults this stack
    does not inject."""
    counters = sorted(n for n in named_metrics() if n.endswith("_total"))
    result = live.prometheus.query(
        f'sum by (__name__) ({{__name__=~"{"|".join(counters)}",job=~"{"|".join(OWN_JOBS)}"}})'
    )
    counted = {s["metric"]["__name__"] for s in result if float(s["value"][1]) > 0}
    assert set(counters) - counted - MAY_BE_EXERCISED == NOT_EXERCISED


def test_no_panel_query_is_rejected_by_prometheus(live: LiveStack) -> None:
    rejected = []
    for query in queries():
        try:
            live.prometheus.query_range(query.expr, live.start, live.end)
        except QueryRejected as exc:
            rejected.append(f"{query}: {exc}")
    assert not rejected, "\n".join(rejected)


def test_every_panel_over_our_metrics_returns_data_of_its_own(live: LiveStack) -> None:
    """The query runs without its `or vector(0)` fallbacks: a constant answers whatever was
    scraped, so it proves nothing (tried: the database-outage phase left out — the
    "Operations failed: database unreachable" panel (`or on () vector(0)`) and the 5xx ratio
    panels then answer only their fallback, and are reported without data)."""
    empty = []
    for query in queries():
        own = without_fallbacks(query.expr)
        result = live.prometheus.query_range(own, live.start, live.end)
        if not has_finite_value(result):
            empty.append(f"{query}: {own}")
    known = ", ".join(n for n in live.prometheus.metric_names() if not n.startswith("pg_"))
    assert not empty, "panels without data:\n" + "\n".join(empty) + f"\nscraped: {known}"


def test_latency_histograms_carry_trace_id_exemplars(live: LiveStack) -> None:
    data = live.prometheus.exemplars("http_request_duration_seconds_bucket", live.start, live.end)
    trace_ids = [e["labels"].get("trace_id") for series in data for e in series["exemplars"]]
    assert trace_ids, "no exemplars on http_request_duration_seconds"
    assert all(t and len(t) == 32 for t in trace_ids)


def test_exemplar_trace_ids_are_traces_in_jaeger(live: LiveStack) -> None:
    """An exemplar's trace id opens a trace: the api exported it through the Collector, and
    Jaeger stored it with the request's server span."""
    data = live.prometheus.exemplars(
        'http_request_duration_seconds_bucket{route="/orders",method="POST"}',
        live.start,
        live.end,
    )
    trace_ids = sorted({e["labels"]["trace_id"] for s in data for e in s["exemplars"]})[:3]
    assert trace_ids, "no exemplars on POST /orders"
    for trace_id in trace_ids:
        spans = live.jaeger.trace(trace_id)
        assert any(s.kind == "server" and s.name == "POST /orders" for s in spans), spans


def value(prom: Prometheus, expr: str) -> float:
    result = prom.query(expr)
    assert len(result) == 1, f"{expr}: {result}"
    return float(result[0]["value"][1])


def test_the_seeds_metric_tables_hold_real_values(live: LiveStack) -> None:
    """The seed README's three tables — the api's, postgres-exporter's and kafka-exporter's —
    each metric scraped with a value the run explains (tried: kafka-exporter with the end and
    beginning offsets swapped — the fixture's wait for order-processor's lag to reach 0 then
    times out). A lag above 0 is the lag alert's test (`test_lag_alert_to_slack.py`): scraped
    every second, the worker here is never caught behind."""
    prom, topic = live.prometheus, live.settings.kafka_order_topic
    group = 'consumergroup="order-processor"'
    assert value(prom, 'sum(http_requests_total{method="POST",status=~"20."})') >= live.orders
    assert value(prom, "sum(http_request_duration_seconds_count)") >= live.orders
    assert value(prom, "sum(http_requests_in_progress)") >= 0
    assert value(prom, "min(pg_up)") == 1
    assert value(prom, "max(pg_database_size_bytes)") > 1_000_000
    assert value(prom, 'sum(pg_stat_activity_count{state="active"})') >= 1
    # An event per order (`orders` counts those the traffic must see processed), plus the four
    # records the test produces straight onto the topic (poison, unknown type, empty).
    produced = value(prom, f'sum(kafka_topic_partition_current_offset{{topic="{topic}"}})')
    assert produced >= live.orders + 4
    assert value(prom, f'min(kafka_topic_partition_oldest_offset{{topic="{topic}"}})') == 0
    committed = f'sum(kafka_consumergroup_current_offset{{{group},topic="{topic}"}})'
    assert value(prom, committed) == produced
    assert value(prom, f'sum(kafka_consumergroup_lag{{{group},topic="{topic}"}})') == 0


def test_previews_drawn_from_live_data_show_every_panel_over_our_metrics(
    live: LiveStack, tmp_path: Path
) -> None:
    from tests.observability.dashboards import load_dashboards, panels
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
            if not exprs:
                continue  # rows
            values = [t for t in group.iter() if "value" in t.get("class", "").split()]
            if not polylines(group) and not values:
                blank.append(f"{name} / {panel['title']}")
    assert not blank, "previews without data:\n" + "\n".join(blank)
    # ORDER_SERVICE_WRITE_PREVIEWS=docs/dashboards regenerates the committed previews.
    if target := os.environ.get("ORDER_SERVICE_WRITE_PREVIEWS"):
        (REPO / target).mkdir(parents=True, exist_ok=True)
        for path in written:
            (REPO / target / path.name).write_bytes(path.read_bytes())
