"""`make observe` (`order-service dev --observe`): Prometheus, Alertmanager, postgres-exporter,
kafka-exporter, the OpenTelemetry Collector and Jaeger beside the dev stack and wired to it —
`order-service doctor` passes on all of them, traces included — and nothing of them is left
when the supervisor is SIGKILLed (the hardest ending; `test_make_dev.py` covers the others
for the mechanism they share)."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import pytest

from order_service.devstack.observe import ObservePorts
from order_service.devstack.ports import is_free
from order_service.doctor import Result, Targets, diagnose
from tests.e2e.dev_runs import (
    DevHome,
    kill_stack,
    places_and_confirms_an_order,
    stack_of,
    wait_all_gone,
)

pytestmark = pytest.mark.e2e


def free_offset() -> int:
    """An offset that moves every backend port (4317 … 16686) onto free ones."""
    while True:
        offset = random.randrange(20_000, 45_000)
        if all(is_free("127.0.0.1", p) for p in asdict(ObservePorts().shifted(offset)).values()):
            return offset


@dataclass
class ObserveHome(DevHome):
    offset: int = field(default_factory=free_offset)
    start_timeout_s: float = 180  # six more processes to start, on 2 shared cores

    def __post_init__(self) -> None:
        self.ports.update(asdict(self.observe_ports))  # all must be free again at the end

    @property
    def observe_ports(self) -> ObservePorts:
        return ObservePorts().shifted(self.offset)

    def argv(self) -> list[str]:
        return [*super().argv(), "--observe", "--observe-port-offset", str(self.offset)]

    def targets(self) -> Targets:
        p, url = self.observe_ports, "http://127.0.0.1:{}".format
        relay, worker = url(self.ports["relay"]), url(self.ports["worker"])
        return Targets(
            self.api,
            relay,
            worker,
            prometheus=url(p.prometheus),
            jaeger=url(p.jaeger_query),
            alertmanager=url(p.alertmanager),
        )


@pytest.fixture
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObserveHome]:
    observe_home = ObserveHome(tmp_path_factory.mktemp("make-observe"))
    yield observe_home
    observe_home.stop()


def doctor_passes(targets: Targets, timeout_s: float) -> list[Result]:
    """doctor's table once every row is ok (Prometheus scrapes kafka-exporter every 30 s and
    spans wait up to 5 s in the SDK, then 5 s in the Collector's batch)."""
    deadline = time.monotonic() + timeout_s
    while True:
        results = asyncio.run(diagnose(targets))
        failed = [f"{r.check.name}: {r.detail}" for r in results if not r.ok]
        if not failed:
            return results
        if time.monotonic() > deadline:
            raise AssertionError(f"doctor still failing after {timeout_s}s: {failed}")
        time.sleep(1)


def test_observe_runs_every_backend_wired_to_the_stack_and_a_sigkill_leaves_nothing(
    home: ObserveHome,
) -> None:
    """Seen failing with the backends spawned without their parent-death signal (preexec_fn
    dropped in devstack/children.py): after the SIGKILL, Prometheus, Alertmanager, both
    exporters, the Collector and Jaeger keep running and keep their ports."""
    dev = home.start()
    output = dev.output()
    for shown in ("Prometheus", "Alertmanager", "Jaeger", "Collector", "exporters"):
        assert shown in output, output[-3000:]
    places_and_confirms_an_order(home.api)
    results = doctor_passes(home.targets(), 75)
    names = {r.check.name for r in results}
    assert {"prometheus: every target up", "jaeger: order-service traces arrive"} <= names

    stack = stack_of(dev)
    commands = " ".join(" ".join(p.cmdline()) for p in stack)
    for backend in ("prometheus ", "alertmanager", "postgres-exporter", "kafka-exporter"):
        assert backend in commands, backend
    assert "bin/otelcol" in commands and "bin/jaeger" in commands
    try:
        killed = time.monotonic()
        dev.process.send_signal(signal.SIGKILL)
        dev.process.wait(10)
        took = wait_all_gone(stack, home, since=killed, timeout_s=20)
        print(f"sigkill: every process gone and every port free {took:.1f}s after it")
    finally:
        kill_stack(stack)
