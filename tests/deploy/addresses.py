"""Host/port pairs out of the settings that name them: DSNs (libpq multi-host form too),
Kafka bootstrap lists and URLs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "http": 80, "https": 443}


@dataclass(frozen=True)
class Dsn:
    hosts: list[tuple[str, int]]
    user: str
    password: str
    database: str


def _host_port(text: str, default: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    return host, int(port) if port else default


def parse_dsn(dsn: str) -> Dsn:
    """`postgresql[+driver]://user:pw@host-a:5432,host-b:5432/db?...` (libpq's host list)."""
    scheme, rest = dsn.split("://", 1)
    credentials, _, location = rest.rpartition("@")
    user, _, password = credentials.partition(":")
    netloc, _, tail = location.partition("/")
    default = DEFAULT_PORTS[scheme.split("+")[0]]
    hosts = [_host_port(h, default) for h in netloc.split(",")]
    return Dsn(hosts, unquote(user), unquote(password), tail.split("?")[0])


def bootstrap(servers: str) -> list[tuple[str, int]]:
    return [_host_port(s.strip(), 9092) for s in servers.split(",") if s.strip()]


def url(text: str) -> tuple[str, int]:
    parts = urlsplit(text)
    assert parts.hostname, text
    return parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]
