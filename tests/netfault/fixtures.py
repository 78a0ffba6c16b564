"""Pytest fixtures of the network-fault rig (a plugin: tests/conftest.py loads it).

Every fixture here builds real things on the host and removes them after the test, also
when it failed. A missing tool or capability fails the test with the reason (never a skip).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from order_service.config import Settings
from order_service.persistence.migrate import upgrade_to_head
from tests.conftest import Infra, make_settings
from tests.netfault.failover import FailoverPair, start_failover_pair
from tests.netfault.kafka_cluster import KafkaCluster
from tests.netfault.leftovers import sweep_leftovers
from tests.netfault.namespaces import NetLab
from tests.netfault.proxy import DelayProxy
from tests.netfault.servers import NetBroker, NetPostgres, start_broker, start_postgres
from tests.netfault.tools import RigError, ip_bin, require_root

log = logging.getLogger(__name__)


@contextmanager
def rig_failures() -> Iterator[None]:
    """A RigError becomes a plain test failure with its message (no rig traceback)."""
    try:
        yield
    except RigError as exc:
        pytest.fail(f"network-fault rig: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def netfault_host() -> None:
    """Once per session, before the first rig fixture: root and `ip` present, and every
    leftover of a killed run (namespace, veth, bridge, the servers inside) removed."""
    with rig_failures():
        require_root()
        ip_bin()
        removed = sweep_leftovers()
    if removed:
        log.warning("removed network-fault leftovers of a dead run: %s", ", ".join(removed))


@pytest.fixture
def netlab(netfault_host: None) -> Iterator[NetLab]:
    """A private /24 (10.213.K.0/24, host at .1) on a host bridge. `netlab.namespace()`
    gives a new namespace at .10, .11, ... reachable from the host and from each other."""
    with rig_failures():
        lab = NetLab()
    try:
        yield lab
    finally:
        lab.close()


def _discard(pg: NetPostgres, log_copy: Path) -> None:
    """Kill a throwaway cluster (no shutdown checkpoint to wait for); keep its log."""
    pg.crash()
    if pg.server.log_path.exists():
        shutil.copyfile(pg.server.log_path, log_copy)


@pytest.fixture
def netns_postgres(netlab: NetLab, tmp_path: Path) -> Iterator[NetPostgres]:
    """PostgreSQL 18 alone in a namespace at <address>:5432, `orderdb` migrated to head
    (about 2 s). Fault it with `netns_postgres.namespace.refuse/blackhole(5432)`.
    Its log ends up in tmp_path/postgres.log."""
    with rig_failures():
        pg = start_postgres(netlab, netlab.namespace(), netlab.scratch_dir("pg"))
        try:
            upgrade_to_head(pg.dsn())
            yield pg
        finally:
            _discard(pg, tmp_path / "postgres.log")


@pytest.fixture
def netns_broker(netlab: NetLab, tmp_path: Path) -> Iterator[NetBroker]:
    """An Apache Kafka node alone in a namespace at <address>:9092 (advertised there; ~3 s).
    Its log is tmp_path/kafka.log."""
    with rig_failures():
        broker = start_broker(netlab.namespace(), tmp_path / "kafka.log")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def kafka_cluster(
    netfault_host: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaCluster]:
    """Three Apache Kafka nodes (broker + controller each, one quorum) in three namespaces of
    a lab of their own, for a whole test module: starting them costs tens of seconds. See
    KafkaCluster for the settings that make faults quick. The nodes' logs are in the
    module's tmp dir (kafka-N.log); the JVMs are killed and the lab removed afterwards."""
    with rig_failures():
        lab = NetLab()
    try:
        with rig_failures():
            cluster = KafkaCluster(lab, tmp_path_factory.mktemp("kafka-cluster"))
        try:
            with rig_failures():
                cluster.start_all()
            yield cluster
        finally:
            cluster.stop()
    finally:
        lab.close()


@pytest.fixture
def pg_failover(netlab: NetLab, tmp_path: Path) -> Iterator[FailoverPair]:
    """A primary and its synchronous standby in two namespaces, `orderdb` migrated on the
    primary (about 3 s). See FailoverPair for what holds and how to break it. The logs end
    up in tmp_path/primary.log and tmp_path/standby.log."""
    with rig_failures():
        pair = start_failover_pair(netlab, netlab.scratch_dir("failover"))
        try:
            yield pair
        finally:
            _discard(pair.standby, tmp_path / "standby.log")
            _discard(pair.primary, tmp_path / "primary.log")


@dataclass(frozen=True)
class NetInfra:
    """PostgreSQL and the broker each in its own namespace, and Settings pointing at them
    (a per-test topic and consumer group, as make_settings gives)."""

    postgres: NetPostgres
    broker: NetBroker
    settings: Settings


@pytest.fixture
def net_infra(netns_postgres: NetPostgres, netns_broker: NetBroker) -> NetInfra:
    infra = Infra(
        "",
        netns_postgres.dsn().rsplit("/", 1)[0],
        netns_broker.bootstrap_servers,
        netns_postgres.server,
        netns_broker.server,
    )
    settings = make_settings(infra, netns_postgres.server.database)
    return NetInfra(netns_postgres, netns_broker, settings)


@pytest.fixture
def delay_proxy() -> Iterator[Callable[..., DelayProxy]]:
    """`delay_proxy(host, port, delay_s=0.0)` starts a DelayProxy on 127.0.0.1 (closed
    after the test); point a DSN or bootstrap servers at `proxy.address`."""
    proxies: list[DelayProxy] = []

    def make(host: str, port: int, delay_s: float = 0.0) -> DelayProxy:
        proxy = DelayProxy(host, port, delay_s=delay_s).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
