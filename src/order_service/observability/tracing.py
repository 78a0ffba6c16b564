"""OpenTelemetry set-up from the standard OTEL_* variables; no endpoint, no export."""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from order_service.config import Settings

TRACER_NAME = "order_service"
_provider: TracerProvider | None = None


def _exporter() -> SpanExporter | None:
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint or os.environ.get("OTEL_TRACES_EXPORTER", "otlp") == "none":
        return None
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


def configure_tracing(settings: Settings, process: str) -> TracerProvider | None:
    """Install the global tracer provider once per process (idempotent).

    Without an exporter the SDK is not installed at all: spans stay non-recording no-ops, so
    an untraced deployment pays nothing for them on the hot path.
    """
    global _provider
    if _provider is not None:
        return _provider
    exporter = _exporter()
    if exporter is None:
        return None
    resource = Resource.create(
        {SERVICE_NAME: settings.service_name, "service.instance.role": process}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    instrument_libraries()
    _provider = provider
    return provider


def instrument_libraries() -> None:
    """Client spans for every asyncpg query (only worth their cost when traces are exported)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def tracing_enabled() -> bool:
    """An SDK provider is installed (by configure_tracing, or by a test)."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def shutdown_tracing() -> None:
    if _provider is not None:
        _provider.shutdown()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)
