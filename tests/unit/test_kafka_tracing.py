"""G7 across Kafka: request → publish span → process span form one trace, through the headers."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from order_service.messaging import kafka_tracing
from order_service.messaging.envelope import kafka_headers
from tests.factories import consumer_record

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
REQUEST_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(kafka_tracing, "tracer", lambda: provider.get_tracer("test"))
    monkeypatch.setattr(kafka_tracing, "tracing_enabled", lambda: True)
    return exporter


def test_untraced_processes_pass_the_stored_context_on_without_a_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_tracing, "tracing_enabled", lambda: False)
    stored = {"ce_id": "e1", "traceparent": f"00-{TRACE_ID}-{REQUEST_SPAN}-01"}

    span, sent = kafka_tracing.start_publish_span("orders.created", "k", "e1", stored)

    assert not span.is_recording()
    assert sent == stored


def record(headers: dict[str, str]) -> ConsumerRecord:
    return consumer_record(kafka_headers(headers), offset=7)


def test_the_sent_traceparent_is_the_publish_span_a_child_of_the_request(
    spans: InMemorySpanExporter,
) -> None:
    stored = {"ce_id": "e1", "traceparent": f"00-{TRACE_ID}-{REQUEST_SPAN}-01", "tracestate": "a=1"}
    span, sent = kafka_tracing.start_publish_span("orders.created", "k", "e1", stored)
    kafka_tracing.end_spans([span])

    [publish] = spans.get_finished_spans()
    assert publish.name == "orders.created publish"
    assert publish.kind is SpanKind.PRODUCER
    assert publish.parent is not None and format(publish.parent.span_id, "016x") == REQUEST_SPAN
    assert format(publish.context.trace_id, "032x") == TRACE_ID
    assert sent["traceparent"] == f"00-{TRACE_ID}-{publish.context.span_id:016x}-01"
    assert sent["ce_id"] == "e1"
    assert publish.attributes is not None
    assert publish.attributes["messaging.destination.name"] == "orders.created"
    assert publish.attributes["messaging.message.id"] == "e1"


def test_the_process_span_is_a_child_of_the_publish_span(spans: InMemorySpanExporter) -> None:
    stored = {"traceparent": f"00-{TRACE_ID}-{REQUEST_SPAN}-01"}
    span, sent = kafka_tracing.start_publish_span("orders.created", "k", "e1", stored)
    kafka_tracing.end_spans([span])

    with kafka_tracing.process_spans([record(sent)], "order-processor"):
        pass

    publish, process = spans.get_finished_spans()
    assert process.name == "orders.created process"
    assert process.kind is SpanKind.CONSUMER
    assert process.parent is not None and process.parent.span_id == publish.context.span_id
    assert process.context.trace_id == publish.context.trace_id


def test_a_failed_batch_marks_every_process_span_as_an_error(spans: InMemorySpanExporter) -> None:
    with (
        pytest.raises(RuntimeError),
        kafka_tracing.process_spans([record({}), record({})], "order-processor"),
    ):
        raise RuntimeError("boom")
    finished = spans.get_finished_spans()
    assert len(finished) == 3  # two messages and the batch span linked to both
    assert all(not s.status.is_ok for s in finished)
    batch = next(s for s in finished if s.kind is SpanKind.INTERNAL)
    assert len(batch.links) == 2
