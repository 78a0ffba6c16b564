"""A PostgreSQL primary and a synchronous standby, each in its own namespace of one lab."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from order_service.devstack.postgres import PASSWORD, SUPERUSER, SYSTEM_USER
from order_service.persistence.migrate import upgrade_to_head
from tests.netfault.namespaces import NetLab
from tests.netfault.servers import NetPostgres, pg_bin, start_postgres
from tests.netfault.tools import RigError


@dataclass
class FailoverPair:
    """`primary` (namespace A) streams to `standby` (namespace B), synchronously.

    Guarantees once built: `orderdb` on the primary is migrated to head; the standby is
    streaming and is the primary's synchronous standby (`synchronous_standby_names = '*'`)
    with `synchronous_commit = remote_apply`, so a commit the primary acknowledged is
    already visible on the standby, and a commit waits while the standby is frozen or cut
    off. Both run with max_connections=200. The promoted standby has no standby of its own:
    its commits do not wait.
    """

    primary: NetPostgres
    standby: NetPostgres

    def multi_host_dsn(self, database: str = "orderdb", driver: str = "postgresql+asyncpg") -> str:
        """libpq multi-host DSN: primary first, then standby, read-write sessions only."""
        hosts = (
            f"{self.primary.address}:{self.primary.port},{self.standby.address}:{self.standby.port}"
        )
        return f"{driver}://postgres:{PASSWORD}@{hosts}/{database}?target_session_attrs=read-write"

    def blackhole_primary(self) -> None:
        """Drop all traffic to and from the primary's port: clients and replication hang."""
        self.primary.namespace.blackhole(self.primary.port)

    def crash_primary(self) -> None:
        """SIGKILL the primary's postmaster and backends; its address then refuses at once."""
        self.primary.crash()

    def promote_standby(self, timeout_s: float = 30.0) -> float:
        """Promote the standby; returns once it accepts writes (seconds taken)."""
        started = time.monotonic()
        self.standby.server.signal(signal.SIGCONT)
        self.standby.namespace.heal()
        if self.standby.psql(f"SELECT pg_promote(true, {int(timeout_s)})") != "t":
            raise RigError(f"the standby was not promoted within {timeout_s:.0f}s")
        while self.standby.psql("SELECT pg_is_in_recovery()") != "f":
            if time.monotonic() - started > timeout_s:
                raise RigError("the promoted standby is still in recovery")
            time.sleep(0.05)
        self.standby.psql("SELECT txid_current()")  # assigns an xid: fails unless writable
        return time.monotonic() - started

    def heal(self) -> None:
        """Remove every network fault from both namespaces."""
        self.primary.namespace.heal()
        self.standby.namespace.heal()

    def replication(self) -> list[str]:
        """The primary's view of its standbys: `application_name|state|sync_state` lines."""
        rows = self.primary.psql(
            "SELECT application_name, state, sync_state FROM pg_stat_replication"
        )
        return rows.splitlines()

    def stop(self) -> None:
        self.standby.stop()
        self.primary.stop()


def start_failover_pair(lab: NetLab, base_dir: Path, timeout_s: float = 30.0) -> FailoverPair:
    """Build the pair (about 3 s here): initdb + migrate the primary, pg_basebackup -R,
    start the standby, wait until it streams, then make it synchronous."""
    primary = start_postgres(lab, lab.namespace(), base_dir / "primary")
    try:
        upgrade_to_head(primary.dsn())
        standby_namespace = lab.namespace()
        _base_backup(primary, base_dir / "standby", name=standby_namespace.name)
        standby = start_postgres(lab, standby_namespace, base_dir / "standby")
    except BaseException:
        primary.stop()
        raise
    pair = FailoverPair(primary, standby)
    try:
        _wait_for(pair, "streaming|async", timeout_s)
        primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        primary.psql("ALTER SYSTEM SET synchronous_commit = 'remote_apply'")
        primary.psql("SELECT pg_reload_conf()")
        _wait_for(pair, "streaming|sync", timeout_s)
    except BaseException:
        pair.stop()
        raise
    return pair


def _base_backup(primary: NetPostgres, base_dir: Path, name: str) -> None:
    """pg_basebackup -R from the host over the bridge, as the cluster's system user."""
    base_dir.mkdir(parents=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam(SYSTEM_USER)
        os.chown(base_dir, user.pw_uid, user.pw_gid)
    conninfo = (
        f"host={primary.address} port={primary.port} user={SUPERUSER} "
        f"password={PASSWORD} application_name={name}"
    )
    result = subprocess.run(
        [
            pg_bin("pg_basebackup"),
            "-d",
            conninfo,
            "-D",
            str(base_dir / "data"),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ],
        user=SYSTEM_USER if os.geteuid() == 0 else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RigError(f"pg_basebackup from {primary.address} failed: {result.stderr.strip()}")


def _wait_for(pair: FailoverPair, state: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(row.endswith(state) for row in pair.replication()):
            return
        time.sleep(0.05)
    raise RigError(
        f"the standby did not reach {state!r} within {timeout_s:.0f}s: {pair.replication()}"
    )
