"""W3C trace context passed on, with or without an OpenTelemetry SDK (G7).

Without an exporter the SDK is not installed and spans are no-ops, but the context a client
sent (`traceparent`, `tracestate`) must still reach the Kafka event so that a traced gateway's
trace passes through us. The OpenTelemetry API propagates without the SDK: a context extracted
from the request is injected unchanged (the same trace id and parent span id).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import propagate, trace

TRACE_HEADERS = ("traceparent", "tracestate")


def outgoing_trace_headers(incoming: Mapping[str, str] | None = None) -> dict[str, str]:
    """The trace context to store with an event: the current span's when one is recording
    or valid (SDK on), else the one that came in with the request or the message."""
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(carrier)
    elif incoming:
        wanted = {k.lower(): v for k, v in incoming.items() if k.lower() in TRACE_HEADERS}
        if wanted:
            propagate.inject(carrier, context=propagate.extract(wanted))
    return {k: v for k, v in carrier.items() if k in TRACE_HEADERS}
