"""`POSTGRES_DSN`, also with several hosts the libpq way, split into what a connection needs.

`postgresql+asyncpg://u:p@db-a:5432,db-b:5432/orderdb?target_session_attrs=read-write` names a
primary and a standby: every process connects to whichever of them takes writes now, and after
a failover to the new one (DESIGN.md §2). The SQLAlchemy driver tag of the seed's DSN is
accepted and dropped. Nothing here ever renders the password.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

DEFAULT_PORT = 5432


class InvalidDsn(ValueError):
    """POSTGRES_DSN cannot be read; the message names the part and never the password."""


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PostgresDsn:
    hosts: tuple[HostPort, ...]
    userinfo: str  # "user:password", still percent-encoded, as written
    database: str
    params: tuple[tuple[str, str], ...]  # the query string, in order

    @property
    def target_session_attrs(self) -> str | None:
        return dict(self.params).get("target_session_attrs")

    def for_host(self, host: HostPort) -> str:
        """A plain single-host `postgresql://` DSN for asyncpg (every parameter kept)."""
        query = f"?{urlencode(self.params)}" if self.params else ""
        auth = f"{self.userinfo}@" if self.userinfo else ""
        return f"postgresql://{auth}{host}/{self.database}{query}"

    def describe(self) -> str:
        """For messages and logs: every host and the database, no credentials."""
        return f"{','.join(str(h) for h in self.hosts)}/{self.database}"


def parse_dsn(dsn: str) -> PostgresDsn:
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgres", "postgresql"):
        raise InvalidDsn("POSTGRES_DSN must start with postgresql:// (or postgresql+asyncpg://)")
    authority, _, tail = rest.partition("/")
    database, _, query = tail.partition("?")
    userinfo, at, hostlist = authority.rpartition("@")
    if not at:
        userinfo, hostlist = "", authority
    params = tuple(parse_qsl(query, keep_blank_values=True))
    hosts = tuple(_host_port(part) for part in hostlist.split(",")) if hostlist else ()
    if not hosts:
        raise InvalidDsn("POSTGRES_DSN names no host")
    return PostgresDsn(hosts, userinfo, database or "postgres", params)


def _host_port(part: str) -> HostPort:
    part = part.strip()
    if part.startswith("["):  # IPv6 literal: [::1]:5432
        host, _, after = part[1:].partition("]")
        port_text = after.removeprefix(":")
    else:
        host, _, port_text = part.partition(":")
    if not host:
        raise InvalidDsn(f"POSTGRES_DSN has an empty host in {part!r}")
    if not port_text:
        return HostPort(host, DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidDsn(f"POSTGRES_DSN host {host!r} has an invalid port {port_text!r}")
    return HostPort(host, int(port_text))
