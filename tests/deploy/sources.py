"""What the deploy tests read: the chart rendered by the real Helm engine (deploy/helm/
check_chart.py) and the compose file resolved by `docker-compose config` (no engine needed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
HELM_DIR = REPO / "deploy" / "helm"
CHART = HELM_DIR / "order-service"
COMPOSE = REPO / "docker-compose.yml"
VENV = REPO / ".venv-helm"
PYTHON312 = Path(os.environ.get("HELM_CHECK_PYTHON", "/root/.pyenv/versions/3.12.1/bin/python3.12"))
Docs = list[dict[str, Any]]


def _helm_venv() -> Path:
    """helm-sdkpy needs Python >= 3.12 while the project runs on 3.11: a venv of its own."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".requirements-check.txt"
    wanted = (HELM_DIR / "requirements-check.txt").read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    assert PYTHON312.exists(), f"Python 3.12 for helm-sdkpy not found at {PYTHON312}"
    subprocess.run([str(PYTHON312), "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(HELM_DIR / "requirements-check.txt")],
        check=True,
        timeout=600,
    )
    stamp.write_text(wanted)
    return python


def render_chart(out: Path) -> dict[str, Docs]:
    """values-file stem -> the objects `helm install` made from it (hooks included)."""
    result = subprocess.run(
        [str(_helm_venv()), str(HELM_DIR / "check_chart.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HELM_DRIVER": "memory"},
    )
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith(("FAIL", "values", "all-"))]
    assert result.returncode == 0, "\n".join(lines) + result.stderr[-3000:]
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def values_files() -> list[str]:
    return ["values", "values-aws", *sorted(p.stem for p in CHART.glob("ci/*.yaml"))]


def docker_compose() -> str:
    path = shutil.which("docker-compose")
    assert (
        path
    ), "docker-compose is missing: run `make system-deps` (apt-get install docker-compose)"
    return path


def compose_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml as the engine would run it, with `env` set in the environment."""
    result = subprocess.run(
        [docker_compose(), "-f", str(COMPOSE), "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = config["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}
