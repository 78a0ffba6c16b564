from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from order_service.config import Settings
from tests.e2e.processes import Stack, running_stack


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(settings, tmp_path) as running:
        yield running
