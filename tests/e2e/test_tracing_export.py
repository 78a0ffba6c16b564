"""G7 through the real chain: api, relay and worker export OTLP to the OpenTelemetry Collector
(the repo's deploy/otel config), which exports to Jaeger; the trace is read back from Jaeger's
query API, as a person (or `order-service doctor`) would find it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from order_service.config import Settings
from order_service.doctor import Targets, diagnose
from tests.e2e.processes import Stack
from tests.observability.backends import Jaeger, Span, Tracing, running_tracing


@pytest.fixture
def tracing(tmp_path: Path) -> Iterator[Tracing]:
    with running_tracing(tmp_path / "tracing", dict(os.environ)) as running:
        yield running


def ancestors(span: Span, index: dict[str, Span]) -> list[Span]:
    chain = []
    while span.parent_id in index:
        span = index[span.parent_id]
        chain.append(span)
    return chain


def trace_of_order(jaeger: Jaeger, order_id: str, timeout_s: float = 30) -> list[Span]:
    """The trace whose publish spans carry the order's key, once it holds the status event's
    publish too (the Collector batches for up to 5 s: spans arrive in several exports)."""
    deadline = time.monotonic() + timeout_s
    found: list[list[Span]] = []
    while time.monotonic() < deadline:
        tags = f'{{"messaging.kafka.message.key":"{order_id}"}}'
        found = jaeger.traces(service="order-service", tags=tags, lookback="1h")
        if len(found) == 1:
            spans = jaeger.trace(found[0][0].trace_id)
            if sum(s.kind == "producer" for s in spans) == 2 and any(
                s.kind == "consumer" for s in spans
            ):
                return spans
        time.sleep(0.5)
    names = [sorted(f"{s.process}: {s.name}" for s in trace) for trace in found]
    raise AssertionError(f"no single complete trace for {order_id} in Jaeger: {names}")


async def test_one_order_is_one_trace_in_jaeger_from_http_through_kafka_to_the_status_event(
    settings: Settings, stack: Stack, tracing: Tracing
) -> None:
    """Seen failing with the worker's consumer span started without the message's context
    (`context=None` in kafka_tracing.process_spans): the consumer span and the status event
    start a trace of their own, and Jaeger finds two traces for the order."""
    otel = tracing.otel_env()
    api = stack.start("api", **otel)
    relay = stack.start("relay", **otel)
    worker = stack.start("worker", **otel)
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        order_id = (await client.post("/orders", json={"item": "traced", "quantity": 1})).json()[
            "id"
        ]
        deadline = time.monotonic() + 20
        while (await client.get(f"/orders/{order_id}")).json()["status"] != "CONFIRMED":
            assert time.monotonic() < deadline, "order not confirmed"
            await asyncio.sleep(0.05)
    for service in (api, relay, worker):
        service.stop(signal.SIGTERM)  # flushes the batch span processor into the Collector

    spans = await asyncio.to_thread(trace_of_order, tracing.jaeger, order_id)
    index = {s.span_id: s for s in spans}
    created, status = settings.kafka_order_topic, settings.kafka_status_topic
    server = next(s for s in spans if s.kind == "server" and s.name == "POST /orders")
    publish = next(s for s in spans if s.name == f"{created} publish")
    process = next(s for s in spans if s.name == f"{created} process")
    status_publish = next(s for s in spans if s.name == f"{status} publish")

    assert (server.process, publish.process, process.process, status_publish.process) == (
        "api",
        "relay",
        "worker",
        "relay",
    )
    assert (publish.kind, process.kind, status_publish.kind) == ("producer", "consumer", "producer")
    assert server in ancestors(publish, index)  # through the outbox row's traceparent
    assert index[process.parent_id] == publish  # through the Kafka header
    assert index[status_publish.parent_id] == process  # the status event continues the trace
    assert status_publish.tags["messaging.kafka.message.key"] == order_id
    worker_db = [s for s in spans if s.process == "worker" and process in ancestors(s, index)]
    assert worker_db, "the worker's database work is not inside its consumer span"
    detached = [s.name for s in spans if s is not server and s.parent_id not in index]
    assert not detached, f"spans outside the tree under POST /orders: {detached}"

    results = await diagnose(
        Targets(api.url, relay.url, worker.url, jaeger=tracing.jaeger.url), timeout_s=5
    )
    arrived = next(r for r in results if r.check.name == "jaeger: order-service traces arrive")
    assert arrived.ok, arrived.detail


CLIENT_TRACE, CLIENT_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


def _trace_when_complete(jaeger: Jaeger, trace_id: str, timeout_s: float = 30) -> list[Span]:
    """The trace once it holds the api's cancel request span (the Collector batches)."""
    deadline = time.monotonic() + timeout_s
    spans: list[Span] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, KeyError, TypeError):
            spans = jaeger.trace(trace_id)
        if any(s.kind == "server" and "cancel" in s.name for s in spans):
            return spans
        time.sleep(0.5)
    raise AssertionError(f"trace {trace_id} has no cancel request span in Jaeger: {spans}")


async def test_a_cancellation_carries_the_api_spans_trace_context_not_the_clients_headers(
    stack: Stack, tracing: Tracing, settings: Settings
) -> None:
    """Issue 20.4 (G7 at cancellations), with an exporter: each `order.cancelled` outbox row
    carries the trace context of the api's own span in that request's trace, as Jaeger shows
    it — whether the client sent a valid `traceparent` (same trace, the api's span as parent,
    not the client's span), none, or a malformed one with an oversized `tracestate` (neither
    stored).

    Seen failing on the code that stored the request's headers as they came: the client's span
    as the parent (`...-b7ad6b7169203331-01`), no `traceparent` at all for the cancel sent
    without one, and the malformed `traceparent` and 4,000-byte `tracestate` stored as sent."""
    api = stack.start("api", **tracing.otel_env())
    sent = {
        "valid": {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "tracestate": "vendor=1"},
        "none": {},
        "malformed": {
            "traceparent": "00-not-a-trace-context-" + "x" * 500,
            "tracestate": "y" * 4000,
        },
    }
    cancelled: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        for case, headers in sent.items():
            order = (await client.post("/orders", json={"item": "traced", "quantity": 1})).json()
            reply = await client.post(f"/orders/{order['id']}/cancel", headers=headers)
            assert reply.status_code == 200, reply.text
            cancelled[case] = order["id"]
    api.stop(signal.SIGTERM)  # flushes the batch span processor into the Collector

    db = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await db.fetch(
            "SELECT aggregate_id::text AS id, headers FROM outbox "
            "WHERE headers->>'ce_type' = 'order.cancelled'"
        )
    finally:
        await db.close()
    stored = {row["id"]: orjson.loads(row["headers"]) for row in rows}
    for case, order_id in cancelled.items():
        headers = stored[order_id]
        assert "traceparent" in headers, (case, headers)
        _, trace_id, parent_id, _ = headers["traceparent"].split("-")
        spans = await asyncio.to_thread(_trace_when_complete, tracing.jaeger, trace_id)
        index = {s.span_id: s for s in spans}
        server = next(s for s in spans if s.kind == "server" and "cancel" in s.name)
        assert parent_id in index, (case, headers)  # a span the api exported, in that trace
        assert server == index[parent_id] or server in ancestors(index[parent_id], index), case
        assert parent_id != CLIENT_SPAN, case
        assert headers.get("tracestate", "") in ("", "vendor=1"), case
    assert stored[cancelled["valid"]]["traceparent"].split("-")[1] == CLIENT_TRACE
