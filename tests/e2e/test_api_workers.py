"""`order-service api --workers 2`: both processes serve, and /metrics adds up both."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from order_service.config import Settings
from order_service.devstack.ports import free_port
from tests.e2e.processes import settings_env, wait_ok


def test_two_api_workers_share_one_metrics_view(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "api.log"
    api = subprocess.Popen(
        [sys.executable, "-m", "order_service", "api", "--port", str(port), "--workers", "2"],
        env=settings_env(settings),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ok(f"http://127.0.0.1:{port}/readyz", process=api)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for n in range(40):
                # A new connection each time, so both workers take some of them.
                assert (
                    client.post(
                        "/orders",
                        json={"item": f"w{n}", "quantity": 1},
                        headers={"Connection": "close"},
                    ).status_code
                    == 201
                )
            text = client.get("/metrics").text
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(30)
    created = re.search(r'^orders_created_total\{endpoint="orders"\} (\S+)$', text, re.M)
    assert created is not None, log.read_text()[-2000:]
    assert float(created.group(1)) == 40
