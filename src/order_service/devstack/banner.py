"""What `order-service dev` prints once the stack is up: every URL, and how to try it."""

from __future__ import annotations

from pathlib import Path

from order_service.devstack.observe import ObservePorts

_NO_OBSERVE = """Traces (Jaeger), Prometheus, Alertmanager and the exporters: `make observe`
(order-service dev --observe) runs them beside the stack."""


def banner(
    h: str,
    ports: tuple[int, int, int],
    dsn: str,
    bootstrap: str,
    observed: tuple[ObservePorts, Path] | None,
) -> str:
    api, relay, worker = ports
    return f"""
[bold green]order-service is up[/]
  API          http://{h}:{api}   (docs: http://{h}:{api}/docs)
  API metrics  http://{h}:{api}/metrics
  relay        http://{h}:{relay}/metrics   /readyz
  worker       http://{h}:{worker}/metrics   /readyz
  PostgreSQL   {dsn}
  Kafka        {bootstrap}   topic orders.created

Try it:
  curl -X POST http://{h}:{api}/order \\
    -H "Content-Type: application/json" \\
    -d '{{"item": "book", "quantity": 2}}'

The lifecycle:
  PUT /stock/{{item}} {{"available": N}}   makes an item stock-managed: its orders are
                                     CONFIRMED while units last, then REJECTED out_of_stock
  POST /orders/{{id}}/cancel           CANCELLED; a confirmed order's units go back
  .venv/bin/order-service events     the status events on orders.status, as they happened
  .venv/bin/order-service doctor     checks the whole stack

{_observability(h, *observed) if observed else _NO_OBSERVE}
Ctrl-C stops everything.
"""


def _observability(h: str, p: ObservePorts, logs: Path) -> str:
    return f"""Observability (logs in {logs}):
  Prometheus    http://{h}:{p.prometheus}   (/targets, /alerts, /graph)
  Alertmanager  http://{h}:{p.alertmanager}   (to Slack when SLACK_WEBHOOK_URL is set)
  Jaeger        http://{h}:{p.jaeger_query}/api/traces?service=order-service   (query API)
  Collector     OTLP http://{h}:{p.otlp_http}, gRPC {h}:{p.otlp_grpc}   (api, relay, worker
                export their spans here; it sends them on to Jaeger)
  exporters     http://{h}:{p.postgres_exporter}/metrics (PostgreSQL)
                http://{h}:{p.kafka_exporter}/metrics (Kafka)
  .venv/bin/order-service doctor --prometheus http://{h}:{p.prometheus} \\
    --alertmanager http://{h}:{p.alertmanager} --jaeger http://{h}:{p.jaeger_query}
"""
