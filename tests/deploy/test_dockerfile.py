"""The production image, checked at the instruction level (no Docker engine here to build it)."""

from __future__ import annotations

import json
import re

from tests.deploy.dockerfile import REPO
from tests.deploy.dockerfile import instructions as _instructions
from tests.deploy.dockerfile import stages as _stages


def test_image_is_built_in_several_stages_from_pinned_bases() -> None:
    froms = [rest for word, rest in _instructions() if word == "FROM"]
    assert len(froms) >= 3
    args = dict(
        rest.split("=", 1) for word, rest in _instructions() if word == "ARG" and "=" in rest
    )
    for base in froms:
        image = base.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert ":" in image, image
        assert not image.endswith(":latest"), image


def test_dependencies_come_from_the_lock_file_without_dev_tools() -> None:
    build = " ".join(rest for word, rest in _instructions() if word in ("COPY", "RUN"))
    assert "uv.lock" in build
    syncs = [rest for word, rest in _instructions() if word == "RUN" and "uv sync" in rest]
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync
        assert "--no-dev" in sync
        assert "--extra aws" in sync


def test_final_stage_runs_as_a_non_root_user_with_no_build_tools() -> None:
    final = _stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    runs = " ".join(rest for word, rest in final if word == "RUN")
    for tool in ("gcc", "build-essential", "uv ", "pip install", "apt-get install"):
        assert tool not in runs, tool
    copies = " ".join(rest for word, rest in final if word == "COPY")
    assert "/opt/venv" in copies
    assert "--from=uv" not in copies


def test_final_stage_has_a_healthcheck_and_order_service_as_entrypoint() -> None:
    final = dict(_stages()[-1])
    assert "urllib" in final["HEALTHCHECK"]
    assert "/healthz" in final["HEALTHCHECK"]
    assert json.loads(final["ENTRYPOINT"]) == ["order-service"]
    assert json.loads(final["CMD"])[0] == "api"


def test_build_context_leaves_out_local_state() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".env", "tests"):
        assert entry in ignored, entry
