"""Exemplars: a trace id attached to a histogram observation (Grafana links to Jaeger)."""

from __future__ import annotations

from opentelemetry import trace


def traceparent_exemplar(traceparent: str | None) -> dict[str, str] | None:
    """The trace id of a W3C `traceparent` header (version-traceid-spanid-flags)."""
    parts = (traceparent or "").split("-")
    return {"trace_id": parts[1]} if len(parts) == 4 and len(parts[1]) == 32 else None


def current_trace_exemplar() -> dict[str, str] | None:
    ctx = trace.get_current_span().get_span_context()
    return {"trace_id": format(ctx.trace_id, "032x")} if ctx.is_valid else None
