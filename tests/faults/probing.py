"""Running tests/faults/probe.py beside a fault, and reading its results into Outcomes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.faults.stream import Outcomes


@dataclass(frozen=True)
class Probed:
    results: list[dict[str, Any]]
    fault_from: float  # seconds from the probe's start
    fault_until: float

    def during(self) -> list[dict[str, Any]]:
        return [r for r in self.results if self.fault_from <= r["sent"] < self.fault_until]

    def into(self, outcomes: Outcomes) -> None:
        """What each request promised, for the books (unknowns are resolved by a retry)."""
        for r in self.results:
            key, status = r["key"], r["status"]
            if 200 <= status < 300:
                outcomes.accepted[key] = r["order_id"]
            elif status == 503 and r["outcome"] == "not_written":
                outcomes.refused[key] = status
            else:  # 503 "unknown", a client timeout or a broken connection: ask again
                outcomes.unknown.add(key)


# The probe is the measuring instrument: on two cores shared with the whole stack, a probe
# that waits for the CPU adds its own wait to every latency it reports. As root (how `make
# test` runs) `nice` raises its priority; elsewhere it warns and runs it at the normal one.
AHEAD_OF_THE_STACK = ["nice", "-n", "-10"]


async def probe_through(
    url: str,
    *,
    rate: float,
    before_s: float,
    fault_s: float,
    after_s: float,
    timeout_s: float,
    fault: Callable[[], None],
    heal: Callable[[], None],
) -> Probed:
    """Probe for before + fault + after seconds; `fault()` after `before_s`, `heal()` after
    `fault_s` more. Returns the results with the fault's window in the probe's clock."""
    process = subprocess.Popen(
        [
            *AHEAD_OF_THE_STACK,
            sys.executable,
            "-m",
            "tests.faults.probe",
            url,
            f"--rate={rate}",
            f"--seconds={before_s + fault_s + after_s}",
            f"--timeout={timeout_s}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        await asyncio.sleep(1.0 + before_s)  # the probe's own start-up, then the calm part
        faulted = time.time()
        fault()
        try:
            await asyncio.sleep(fault_s)
        finally:
            heal()
        healed = time.time()
        out, _ = await asyncio.to_thread(process.communicate, timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    document = json.loads(out)
    began = document["began"]
    return Probed(document["results"], faulted - began, healed - began)
