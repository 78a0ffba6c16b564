"""`order-service dev` (what `make dev` runs): the whole stack from nothing, then gone on Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from order_service.devstack.ports import free_port, is_free
from tests.e2e.processes import wait_ok


def _dev(tmp_path: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "order_service",
            "dev",
            "--data-dir",
            str(tmp_path / "dev"),
            "--postgres-port",
            str(ports["pg"]),
            "--kafka-port",
            str(ports["kafka"]),
            "--api-port",
            str(ports["api"]),
            "--relay-port",
            str(ports["relay"]),
            "--worker-port",
            str(ports["worker"]),
        ],
        stdout=(tmp_path / "dev.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def test_dev_serves_the_seeds_curl_confirms_the_order_and_frees_every_port_on_ctrl_c(
    tmp_path: Path,
) -> None:
    ports = {name: free_port() for name in ("pg", "kafka", "api", "relay", "worker")}
    dev = _dev(tmp_path, ports)
    try:
        for name in ("api", "relay", "worker"):
            wait_ok(f"http://127.0.0.1:{ports[name]}/readyz", timeout_s=90, process=dev)
        api = f"http://127.0.0.1:{ports['api']}"
        placed = httpx.post(f"{api}/order", json={"item": "book", "quantity": 2}, timeout=10)
        assert placed.status_code == 200
        assert placed.json()["message"] == "Order placed successfully"
        order_id = placed.json()["order_id"]
        deadline = time.monotonic() + 20
        status = ""
        while time.monotonic() < deadline and status != "CONFIRMED":
            status = httpx.get(f"{api}/orders/{order_id}", timeout=5).json()["status"]
            time.sleep(0.1)
        assert status == "CONFIRMED"
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(60)
    log = (tmp_path / "dev.log").read_text(errors="replace")
    assert code == 0, log[-3000:]
    assert "curl -X POST" in log
    assert all(is_free("127.0.0.1", port) for port in ports.values()), log[-2000:]


def test_a_taken_port_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("pg", "kafka", "api", "relay", "worker")}
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["kafka"]))
        squatter.listen()
        dev = _dev(tmp_path, ports)
        code = dev.wait(60)

    output = (tmp_path / "dev.log").read_text().strip().splitlines()
    assert code == 1
    assert output == [
        f"order-service: port 127.0.0.1:{ports['kafka']} for the Kafka broker is already in use;"
        " free it or pick another"
    ]
