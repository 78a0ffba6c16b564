"""G7 across real processes: api, relay and worker export one trace over OTLP/HTTP."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.processes import Stack
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

SPAN_KIND_SERVER, SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER = 2, 4, 5


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    running = OtlpReceiver().start()
    yield running
    running.stop()


def _by_id(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.span_id: s for s in spans}


def _ancestors(span: ReceivedSpan, index: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    chain = []
    while span.parent_span_id in index:
        span = index[span.parent_span_id]
        chain.append(span)
    return chain


async def test_one_order_is_one_trace_from_http_through_kafka_to_the_worker(
    stack: Stack, receiver: OtlpReceiver
) -> None:
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
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
        service.stop(signal.SIGTERM)  # flushes the batch span processor

    spans = list(receiver.spans)
    index = _by_id(spans)
    server = next(s for s in spans if s.kind == SPAN_KIND_SERVER and s.name == "POST /orders")
    producer = next(s for s in spans if s.kind == SPAN_KIND_PRODUCER)
    consumer = next(s for s in spans if s.kind == SPAN_KIND_CONSUMER)

    assert producer.name.endswith(" publish") and consumer.name.endswith(" process")
    assert server.trace_id == producer.trace_id == consumer.trace_id
    assert server in _ancestors(producer, index)
    assert index[consumer.parent_span_id] == producer
    worker_db = [
        s for s in spans if s.trace_id == consumer.trace_id and consumer in _ancestors(s, index)
    ]
    assert worker_db, "the worker's database work is not inside its consumer span"
    assert {s.service for s in spans} == {"order-service"}
