"""Spans around Kafka messages (G7): the relay's PRODUCER span continues the request's trace and
travels in the message's `traceparent`; the worker's CONSUMER span is that span's child.
Names and attributes follow the OpenTelemetry messaging semantic conventions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from order_service.observability.tracing import tracer, tracing_enabled

TRACE_HEADERS = ("traceparent", "tracestate")


def _parent(headers: Mapping[str, str]) -> Context:
    return propagate.extract({k: v for k, v in headers.items() if k in TRACE_HEADERS})


def start_publish_span(
    topic: str, key: str, event_id: str, headers: Mapping[str, str]
) -> tuple[Span, dict[str, str]]:
    """The span, and the headers to send: the stored ones with the span's own trace context.

    Untraced processes skip the span (its cost shows at load) and pass the stored context on.
    """
    if not tracing_enabled():
        return trace.INVALID_SPAN, dict(headers)
    span = tracer().start_span(
        f"{topic} publish",
        context=_parent(headers),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "messaging.message.id": event_id,
            "messaging.kafka.message.key": key,
        },
    )
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    sent = dict(headers)
    if "traceparent" in carrier:  # absent only when tracing is off and there was no parent
        sent = {k: v for k, v in sent.items() if k not in TRACE_HEADERS}
        sent.update({k: v for k, v in carrier.items() if k in TRACE_HEADERS})
    return span, sent


def end_spans(spans: Sequence[Span], error: BaseException | None = None) -> None:
    for span in spans:
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()


def _headers(record: Any) -> dict[str, str]:
    return {
        k: bytes(v or b"").decode(errors="replace")
        for k, v in record.headers or ()
        if k in TRACE_HEADERS or k == "ce_id"
    }


# The trace context a status event carries on, for the record that caused it.
TraceOf = Callable[[Any], dict[str, str]]


def _passed_on(record: Any) -> dict[str, str]:
    """Untraced: the context that came with the message goes on unchanged (G7)."""
    return {k: v for k, v in _headers(record).items() if k in TRACE_HEADERS}


@contextlib.contextmanager
def process_spans(records: Sequence[Any], group: str) -> Iterator[TraceOf]:
    """One CONSUMER span per message, child of its publish span; the batch's database work runs
    in that span when the batch is one message, else in a span linked to every message's.

    Yields, for each record, the trace headers an event it causes must carry: its CONSUMER
    span's context when traced, else the context the message came with."""
    if not tracing_enabled():
        yield _passed_on
        return
    spans = []
    for record in records:
        headers = _headers(record)
        attributes = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.consumer.group.name": group,
            "messaging.batch.message_count": len(records),
        }
        if "ce_id" in headers:
            attributes["messaging.message.id"] = headers["ce_id"]
        spans.append(
            tracer().start_span(
                f"{record.topic} process",
                context=_parent(headers),
                kind=SpanKind.CONSUMER,
                attributes=attributes,
            )
        )
    current = (
        spans[0]
        if len(spans) == 1
        else tracer().start_span(
            "order.created apply batch",
            links=[Link(s.get_span_context()) for s in spans],
            attributes={"messaging.batch.message_count": len(records)},
        )
    )
    by_record = {id(record): span for record, span in zip(records, spans, strict=True)}

    def trace_of(record: Any) -> dict[str, str]:
        span = by_record.get(id(record))
        if span is None:
            return _passed_on(record)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return {k: v for k, v in carrier.items() if k in TRACE_HEADERS}

    try:
        with trace.use_span(current, end_on_exit=False):
            yield trace_of
    except BaseException as exc:
        end_spans(spans if current in spans else [current, *spans], exc)
        raise
    end_spans(spans if current in spans else [current, *spans])
