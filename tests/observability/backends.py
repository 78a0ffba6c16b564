"""The observability backends for a test, started the way `order-service dev --observe` starts
them (src/order_service/devstack/observe.py), on free ports: Jaeger and the OpenTelemetry
Collector built by scripts/observe-install.sh, and Jaeger's query API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import httpx

from order_service.devstack import observe, observe_tools
from order_service.devstack.observe import ObservePorts
from order_service.devstack.observe_tools import ToolMissing
from order_service.devstack.ports import free_port
from tests.observability.stack import Process

HOST = "127.0.0.1"


def free_ports() -> ObservePorts:
    return ObservePorts(**{f.name: free_port() for f in fields(ObservePorts)})


def built(find: Any) -> str:
    """A built binary's path; not built is a failure naming the install script, never a skip."""
    try:
        path: str = find()
    except ToolMissing as exc:
        raise AssertionError(str(exc)) from None
    return path


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    name: str
    kind: str  # Jaeger's span.kind tag: server, client, producer, consumer, internal
    process: str  # service.instance.role of the resource: api, relay, worker
    tags: dict[str, Any]


@dataclass(frozen=True)
class Jaeger:
    url: str

    def traces(self, **params: str) -> list[list[Span]]:
        """Traces found by Jaeger's query API (`/api/traces`), each as its spans."""
        response = httpx.get(f"{self.url}/api/traces", params=params, timeout=10)
        response.raise_for_status()
        return [_spans(trace) for trace in response.json()["data"] or []]

    def trace(self, trace_id: str) -> list[Span]:
        response = httpx.get(f"{self.url}/api/traces/{trace_id}", timeout=10)
        response.raise_for_status()
        return _spans(response.json()["data"][0])

    def services(self) -> list[str]:
        found: list[str] = httpx.get(f"{self.url}/api/services", timeout=10).json()["data"] or []
        return found


def _spans(trace: dict[str, Any]) -> list[Span]:
    roles = {
        pid: {t["key"]: t["value"] for t in process["tags"]}.get("service.instance.role", "")
        for pid, process in trace["processes"].items()
    }
    found = []
    for span in trace["spans"]:
        tags = {t["key"]: t["value"] for t in span["tags"]}
        parents = [r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"]
        found.append(
            Span(
                span["traceID"],
                span["spanID"],
                parents[0] if parents else "",
                span["operationName"],
                str(tags.get("span.kind", "internal")),
                roles[span["processID"]],
                tags,
            )
        )
    return found


@dataclass(frozen=True)
class Tracing:
    jaeger: Jaeger
    otlp_http: str  # what OTEL_EXPORTER_OTLP_ENDPOINT names: the Collector
    collector: Process

    def otel_env(self) -> dict[str, str]:
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_http,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }


@contextmanager
def running_tracing(workdir: Path, env: dict[str, str]) -> Iterator[Tracing]:
    """Jaeger (tools/jaeger/config.yaml) behind the Collector running the repo's config file."""
    ports = free_ports()
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        jaeger = Process(
            "jaeger",
            [built(observe_tools.jaeger), f"--config={observe_tools.JAEGER_CONFIG}"],
            {**env, **observe.jaeger_env(HOST, ports)},
            workdir,
        )
        stack.callback(jaeger.stop)
        jaeger.wait_http(f"http://{HOST}:{ports.jaeger_query}/api/services")
        collector = Process(
            "otel-collector",
            [built(observe_tools.otelcol), *observe.collector_args(HOST, ports)],
            env,
            workdir,
        )
        stack.callback(collector.stop)
        wait_listening(collector, f"http://{HOST}:{ports.otlp_http}/v1/traces")
        yield Tracing(
            Jaeger(f"http://{HOST}:{ports.jaeger_query}"),
            f"http://{HOST}:{ports.otlp_http}",
            collector,
        )


def wait_listening(process: Process, url: str, timeout_s: float = 30) -> None:
    """Any HTTP answer (the OTLP receiver answers a GET with 405)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.proc.poll() is None, f"{process.name} exited:\n{process.log()}"
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{process.name} not answering {url} after {timeout_s}s:\n{process.log()}")
