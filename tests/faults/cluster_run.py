"""The stack the broker faults run against: api, two relays and two workers as OS processes on
the three-node cluster, a steady order stream for each fault, and the checker after it.

One `ClusterRun` lives for the test module (starting three JVMs costs tens of seconds on two
cores); each fault is a `phase`: restore a healthy cluster, stream, apply the fault and heal it
while the stream goes on, stop the stream, resolve every unanswered request by its key, wait
until every partition is fully replicated again, then check by data.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from order_service.config import Settings
from tests.conftest import Infra, make_settings
from tests.e2e.processes import Service, Stack, running_stack, wait_ok
from tests.faults.checker import Checker
from tests.faults.conftest import FAST_FAILURE_ENV
from tests.faults.figures import Figures
from tests.faults.stream import HOT_ITEM, OrderStream, Outcomes
from tests.netfault.kafka_cluster import KafkaCluster, rack_of
from tests.scrape import total

# The production producer (idempotent, acks=all). A publish may take 6 s before the relay
# gives up on it and replaces its producer: longer than a leader's fencing (3 s) and the
# client's metadata refresh, so a moving leader is ridden out by the same producer session.
ENV = {**FAST_FAILURE_ENV, "KAFKA_ENABLE_IDEMPOTENCE": "true", "RELAY_PUBLISH_TIMEOUT_S": "6"}
RATE = 30.0
HOT_STOCK = 150
RELAY_COUNTERS = (
    "outbox_published_total",
    "outbox_publish_failures_total",
    "relay_producer_recreated_total",
)
WORKER_COUNTERS = ("worker_events_duplicate_total", "worker_events_dead_lettered_total")

Fault = Callable[["ClusterRun"], Awaitable[dict[str, object]]]


@dataclass
class ClusterRun:
    cluster: KafkaCluster
    settings: Settings
    stack: Stack
    out_dir: Path
    api: Service
    relays: list[Service]
    workers: list[Service]
    checker: Checker
    outcomes: Outcomes = field(default_factory=Outcomes)
    relays_killed: int = 0
    _phases: int = 0

    @property
    def postgres_port(self) -> int:
        return int(self.settings.asyncpg_dsn.rsplit(":", 1)[1].split("/", 1)[0])

    @property
    def topics(self) -> list[str]:
        s = self.settings
        return [s.kafka_order_topic, s.kafka_status_topic, s.dlq_topic]

    def start_relay(self) -> Service:
        """A new relay, not waited for: it gets ready by itself (`restore` checks)."""
        relay = self.stack.start("relay", wait=False, **ENV)
        self.relays.append(relay)
        return relay

    async def restore(self, timeout_s: float = 120.0) -> None:
        """Whatever an earlier phase left: every node resumed, reachable, running, and every
        partition fully replicated. JVMs are launched from this (the main) thread."""
        self.cluster.heal()
        down = [node.node_id for node in self.cluster.nodes if not node.running]
        for node_id in down:
            self.cluster.launch(node_id)
        await asyncio.to_thread(self.cluster.wait_up, down, timeout_s)
        await asyncio.to_thread(self.cluster.wait_fully_replicated, self.topics, timeout_s)
        await self.services_ready(timeout_s)

    async def services_ready(self, timeout_s: float = 60.0, path: str = "/readyz") -> None:
        for service in (self.api, *self.relays, *self.workers):
            await asyncio.to_thread(wait_ok, f"{service.url}{path}", timeout_s, service.process)

    def counters(self) -> dict[int, Counter[str]]:
        """Each live relay's and worker's counters, by its port (a killed one's are gone)."""
        found: dict[int, Counter[str]] = {}
        for service, names in [
            *((r, RELAY_COUNTERS) for r in self.relays if r.process.poll() is None),
            *((w, WORKER_COUNTERS) for w in self.workers if w.process.poll() is None),
        ]:
            found[service.port] = Counter({n: int(total(service.url, n)) for n in names})
        return found

    async def until(
        self, what: str, condition: Callable[[], bool], timeout_s: float = 30.0
    ) -> float:
        """Seconds until `condition()` holds (asked in a thread, every 0.2 s): the stream goes
        on meanwhile. A condition that raises counts as not yet."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            try:
                if await asyncio.to_thread(condition):
                    return round(time.monotonic() - started, 1)
            except Exception:  # a node restarting, a metadata request timing out: ask again
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"not within {timeout_s:.0f}s: {what}")

    async def phase(
        self, name: str, fault: Fault, *, before_s: float = 2.0, after_s: float = 2.0
    ) -> Figures:
        """Stream, `fault(self)` (which heals what it broke; returns what it measured), stream,
        then the checker. Returns the figures, also printed and kept in checker.json."""
        self._phases += 1
        await self.restore()
        before = self.counters()
        killed_before = self.relays_killed
        stream = OrderStream(
            self.api.url, rate=RATE, hot_share=0.5, cancel_share=0.2, seed=self._phases
        )
        stream.outcomes = self.outcomes
        started = time.monotonic()
        stream.resume()
        try:
            await asyncio.sleep(before_s)
            fault_at = time.monotonic()
            context = await fault(self)
            context["fault_s"] = round(time.monotonic() - fault_at, 1)
            during = stream.outcomes.statuses(fault_at, time.monotonic())
            await asyncio.sleep(after_s)
        finally:
            await stream.stop()
            self.cluster.heal()
        await stream.resolve(deadline_s=60)
        await stream.aclose()
        context["replicated_s"] = round(
            await asyncio.to_thread(self.cluster.wait_fully_replicated, self.topics, 90.0), 1
        )
        await self.services_ready(path="/metrics")  # a new relay serves its counters
        counted: Counter[str] = Counter()
        for port, now in self.counters().items():
            counted.update(now - before.get(port, Counter()))
        context["answers_during_fault"] = dict(during)
        context["relays_killed"] = self.relays_killed - killed_before
        for name_ in (*RELAY_COUNTERS, *WORKER_COUNTERS):
            context[name_.removesuffix("_total")] = counted[name_]
        db = await asyncpg.connect(self.settings.asyncpg_dsn)
        try:
            figures = await self.checker.check(
                name,
                db,
                self.outcomes,
                rack=rack_of((self._phases - 1) % len(self.cluster.nodes) + 1),
                context=context,
            )
        finally:
            await db.close()
        figures.context["phase_s"] = round(time.monotonic() - started, 1)
        self.checker.save()
        print(f"\n{figures.line()}")
        return figures

    def assert_clean(self, figures: Figures) -> None:
        """Every checker rule holds; no duplicate unless a relay died or replaced its producer
        in the phase (a new producer id: a batch the broker kept but the relay never saw
        acknowledged is published again); the api answered 201 throughout the fault."""
        assert not figures.violations(), (figures.violations(), figures.examples)
        context = figures.context
        if not (context["relays_killed"] or context["relay_producer_recreated"]):
            assert figures.duplicates == 0, figures.line()
        answers = context["answers_during_fault"]
        assert isinstance(answers, dict) and set(answers) == {201}, answers

    def kill_relay(self, relay: Service) -> None:
        relay.stop(signal.SIGKILL)
        self.relays.remove(relay)
        self.relays_killed += 1


@contextmanager
def cluster_stack(
    cluster: KafkaCluster, infra: Infra, database: str, out_dir: Path
) -> Iterator[ClusterRun]:
    """api, two relays, two workers on `cluster` with a database of their own; the managed
    item stocked. The service creates its topics itself, at its defaults."""
    settings = make_settings(
        Infra("", infra.dsn_base, cluster.bootstrap_servers, None, None), database
    )
    with running_stack(settings, out_dir) as stack:
        api = stack.start("api", **ENV)
        relays = [stack.start("relay", **ENV) for _ in range(2)]
        workers = [stack.start("worker", **ENV) for _ in range(2)]
        stocked = httpx.put(f"{api.url}/stock/{HOT_ITEM}", json={"available": HOT_STOCK})
        assert stocked.status_code == 200, stocked.text
        topics = (settings.kafka_order_topic, settings.kafka_status_topic)
        checker = Checker(cluster.bootstrap_servers, topics, HOT_STOCK, out_dir)
        yield ClusterRun(cluster, settings, stack, out_dir, api, relays, workers, checker)
