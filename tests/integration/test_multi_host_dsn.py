"""POSTGRES_DSN naming several hosts (libpq syntax) in every process, `migrate` included
(DESIGN.md §2). The old code stopped every process at start with a ValueError on the port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from order_service.config import Settings
from order_service.devstack.ports import free_port
from tests.e2e.processes import running_stack, settings_env

pytestmark = pytest.mark.integration
PASSWORD = "n0t-th3-pa55w0rd"


def with_a_dead_host_first(settings: Settings) -> str:
    """The test's DSN with a host that refuses every connection named before the real one."""
    scheme, rest = settings.postgres_dsn.split("://", 1)
    auth, hostpart = rest.split("@", 1)
    real, database = hostpart.split("/", 1)
    return (
        f"{scheme}://{auth}@127.0.0.1:{free_port()},{real}/{database}"
        "?target_session_attrs=read-write"
    )


def run_cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "order_service", *args],
        env=settings_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_migrate_api_relay_and_worker_run_with_a_dead_first_host(
    settings: Settings, tmp_path: Path
) -> None:
    multi = settings.model_copy(update={"postgres_dsn": with_a_dead_host_first(settings)})

    migrated = run_cli(multi, "migrate")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    with running_stack(multi, tmp_path) as stack:
        api = stack.start("api")
        stack.start("relay")
        stack.start("worker")
        response = httpx.post(f"{api.url}/orders", json={"item": "book", "quantity": 1})
        assert response.status_code == 201


@pytest.mark.parametrize("command", ["migrate", "api", "relay", "worker"])
def test_when_no_host_answers_one_line_names_each_host_and_never_the_password(
    settings: Settings, command: str
) -> None:
    dead = [free_port(), free_port()]
    dsn = f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:{dead[0]},127.0.0.1:{dead[1]}/db"
    nowhere = settings.model_copy(update={"postgres_dsn": dsn})

    listener = [] if command == "migrate" else ["--port", str(free_port())]
    result = run_cli(nowhere, command, *listener, STARTUP_TIMEOUT_S="1")

    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.startswith("order-service:")]
    assert len(lines) == 1, result.stderr[-2000:]
    assert f"127.0.0.1:{dead[0]}" in lines[0] and f"127.0.0.1:{dead[1]}" in lines[0]
    assert PASSWORD not in result.stderr
    assert "Traceback" not in result.stderr
