"""One three-node Apache Kafka cluster (tests/cluster/trio.py) for every test in this package;
each test starts with all three nodes running, whatever the previous one left."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.trio import Trio, make_trio


@pytest.fixture(scope="package")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    cluster = make_trio(tmp_path_factory.mktemp("trio"))
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def cluster(trio: Trio) -> Trio:
    trio.heal()
    return trio
