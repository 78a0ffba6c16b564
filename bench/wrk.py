"""Run wrk with the POST script and parse its `--latency` report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("post_orders.lua")
CONNECTIONS = 64
THREADS = 2

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


class WrkError(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    requests_per_s: float
    p50_s: float
    p75_s: float
    p90_s: float
    p99_s: float
    max_s: float
    non_2xx: int
    socket_errors: dict[str, int]

    @property
    def ok_responses(self) -> int:
        """2xx/3xx responses: for the order endpoints, accepted orders."""
        return self.requests - self.non_2xx

    @property
    def ok_per_s(self) -> float:
        return self.ok_responses / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def to_seconds(value: str, unit: str) -> float:
    return float(value) * _UNITS_S[unit]


def _percentile(text: str, pct: str) -> float:
    match = re.search(rf"^\s*{pct}%\s+{_DURATION}\s*$", text, re.MULTILINE)
    if match is None:
        raise WrkError(f"no {pct}% line in wrk output (was --latency passed?)")
    return to_seconds(match.group(1), match.group(2))


def parse(text: str) -> WrkResult:
    totals = re.search(r"^\s*(\d+) requests in " + _DURATION, text, re.MULTILINE)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    latency = re.search(
        r"^\s*Latency\s+" + _DURATION + r"\s+" + _DURATION + r"\s+" + _DURATION, text, re.MULTILINE
    )
    if totals is None or rate is None or latency is None:
        raise WrkError(f"unrecognised wrk output:\n{text.strip()[:2000]}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    socket_errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    if sockets is not None:
        socket_errors = dict(zip(socket_errors, map(int, sockets.groups()), strict=True))
    return WrkResult(
        requests=int(totals.group(1)),
        duration_s=to_seconds(totals.group(2), totals.group(3)),
        requests_per_s=float(rate.group(1)),
        p50_s=_percentile(text, "50"),
        p75_s=_percentile(text, "75"),
        p90_s=_percentile(text, "90"),
        p99_s=_percentile(text, "99"),
        max_s=to_seconds(latency.group(5), latency.group(6)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def command(url: str, duration_s: float, run_id: str, connections: int = CONNECTIONS) -> list[str]:
    return [
        "wrk",
        f"-t{min(THREADS, connections)}",  # wrk refuses more threads than connections
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(SCRIPT),
        url,
        "--",
        run_id,
    ]


def run(url: str, duration_s: float, run_id: str, connections: int = CONNECTIONS) -> WrkResult:
    result = subprocess.run(
        command(url, duration_s, run_id, connections),
        capture_output=True,
        text=True,
        check=False,
        timeout=duration_s + 30,
    )
    if result.returncode != 0:
        raise WrkError(f"wrk failed ({result.returncode}): {result.stderr.strip()[:500]}")
    return parse(result.stdout)
