"""One log format per process: every line the real process prints, uvicorn's own included,
comes out of the same renderer and names its process and service."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from order_service.config import Settings
from order_service.devstack.ports import free_port
from tests.e2e.processes import Stack, settings_env, wait_ok


def _run_api(settings: Settings, workdir: Path, *, log_format: str, workers: int = 1) -> str:
    """Start `order-service api`, place one order, SIGTERM it; everything it printed."""
    port = free_port()
    log = workdir / f"api-{log_format}-{workers}.log"
    command = [sys.executable, "-m", "order_service", "api", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--workers", str(workers)],
        env=settings_env(settings, LOG_FORMAT=log_format, LOG_LEVEL="INFO"),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ok(f"http://127.0.0.1:{port}/readyz", process=process)
        response = httpx.post(
            f"http://127.0.0.1:{port}/orders", json={"item": "book", "quantity": 1}, timeout=10
        )
        assert response.status_code == 201, response.text
        _wait_for_line(log, "Application startup complete.", times=workers)  # every worker
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(30)
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert returncode in (0, -signal.SIGTERM), log.read_text()[-3000:]
    return log.read_text()


def _wait_for_line(log: Path, text: str, times: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while log.read_text(errors="replace").count(text) < times:
        assert time.monotonic() < deadline, f"{text!r} not logged {times} times"
        time.sleep(0.1)


def _json_records(output: str, process: str, service: str) -> list[dict[str, Any]]:
    records = []
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        assert record.get("process") == process, line
        assert record.get("service") == service, line
        records.append(record)
    return records


def _events(records: list[dict[str, Any]]) -> list[str]:
    return [str(record.get("event")) for record in records]


@pytest.mark.parametrize("workers", [1, 2])
def test_every_api_line_is_json_naming_the_api_uvicorns_included(
    settings: Settings, tmp_path: Path, workers: int
) -> None:
    """Catches uvicorn printing with its own default formatter ("INFO:     Uvicorn running
    on …"), and `--workers` processes that never configure structlog."""
    output = _run_api(settings, tmp_path, log_format="json", workers=workers)

    events = _events(_json_records(output, "api", settings.service_name))

    assert any(e.startswith("Uvicorn running on http://127.0.0.1:") for e in events), events
    assert events.count("api_started") == workers, events  # structlog's own, per worker
    assert events.count("Application startup complete.") == workers, events
    assert events.count("Shutting down") == workers, events
    assert events.count("Application shutdown complete.") == workers, events
    assert sum(e.startswith("Finished server process") for e in events) == workers, events


def test_every_relay_line_is_json_naming_the_relay_its_http_listeners_included(
    stack: Stack,
) -> None:
    """Catches stdlib records (here uvicorn's side server refusing a malformed request)
    printed as `uvicorn.error Invalid HTTP request received.` beside the JSON lines."""
    relay = stack.start("relay", LOG_FORMAT="json", LOG_LEVEL="INFO")
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as conn:
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        conn.recv(1024)  # uvicorn answers 400 and closes once it has logged the refusal
    assert relay.stop() == 0

    records = _json_records(relay.output(), "relay", stack.settings.service_name)

    assert "relay_started" in _events(records)
    assert "relay_stopped" in _events(records)
    refusals = [r for r in records if r["event"] == "Invalid HTTP request received."]
    assert [(r["logger"], r["level"]) for r in refusals] == [("uvicorn.error", "warning")]


def test_console_format_lines_carry_the_process_name_and_are_not_json(
    settings: Settings, tmp_path: Path
) -> None:
    """Catches the console renderer applied to structlog's events only, not uvicorn's."""
    output = _run_api(settings, tmp_path, log_format="console")

    lines = [line for line in output.splitlines() if line.strip()]

    assert any("Uvicorn running on" in line for line in lines), output
    assert any("Application shutdown complete." in line for line in lines), output
    for line in lines:
        assert "process=api" in line, line
        assert not line.startswith("{"), line
