"""Session fixtures: the chart is rendered and the compose file resolved once for every file."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.sources import Docs, compose_config, render_chart


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Docs]:
    return render_chart(tmp_path_factory.mktemp("rendered"))


@pytest.fixture(scope="session")
def resolved() -> dict[str, Any]:
    return compose_config()
