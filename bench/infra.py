"""PostgreSQL (normal durability: fsync on) and the Tansu broker, on free ports, for one run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from order_service.devstack.broker import TansuBroker
from order_service.devstack.ports import free_port
from order_service.devstack.postgres import EmbeddedPostgres


@dataclass(frozen=True)
class Infra:
    postgres: EmbeddedPostgres
    broker: TansuBroker
    work_dir: Path

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers

    def create_database(self, name: str) -> str:
        """A new database; returns its SQLAlchemy (asyncpg) DSN."""
        return self.postgres.create_database(name)

    def pids(self) -> dict[str, int]:
        assert self.postgres.pid is not None
        assert self.broker.pid is not None
        return {"postgres": self.postgres.pid, "tansu": self.broker.pid}


def plain_dsn(dsn: str) -> str:
    """asyncpg wants `postgresql://`; SQLAlchemy's DSN carries `+asyncpg`."""
    return dsn.replace("postgresql+asyncpg://", "postgresql://", 1)


@contextmanager
def infrastructure(work_dir: Path) -> Iterator[Infra]:
    postgres = EmbeddedPostgres(work_dir / "pg", port=free_port(), fast_unsafe=False)
    broker = TansuBroker(port=free_port(), log_path=work_dir / "tansu.log")
    try:
        postgres.start()
        broker.start()
        yield Infra(postgres, broker, work_dir)
    finally:
        broker.stop()
        postgres.destroy()
