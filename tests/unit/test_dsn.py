"""POSTGRES_DSN with one host or several (libpq syntax), read without ever showing a password."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from order_service.config import Settings
from order_service.persistence.dsn import HostPort, InvalidDsn, parse_dsn

MULTI = (
    "postgresql+asyncpg://app:s3cr%40t@db-a:5432,db-b:6432/orderdb"
    "?target_session_attrs=read-write&sslmode=require"
)


def test_a_multi_host_dsn_names_every_host_and_keeps_its_parameters() -> None:
    dsn = parse_dsn(MULTI)

    assert dsn.hosts == (HostPort("db-a", 5432), HostPort("db-b", 6432))
    assert dsn.database == "orderdb"
    assert dsn.target_session_attrs == "read-write"
    assert dsn.for_host(dsn.hosts[1]) == (
        "postgresql://app:s3cr%40t@db-b:6432/orderdb"
        "?target_session_attrs=read-write&sslmode=require"
    )


def test_the_description_never_shows_the_password() -> None:
    assert parse_dsn(MULTI).describe() == "db-a:5432,db-b:6432/orderdb"
    assert "s3cr" not in parse_dsn(MULTI).describe()


@pytest.mark.parametrize(
    ("dsn", "hosts"),
    [
        ("postgresql://u:p@db/orders", [("db", 5432)]),
        ("postgres://db-a,db-b:5433/orders", [("db-a", 5432), ("db-b", 5433)]),
        ("postgresql://u@[::1]:5432,[fe80::1]/orders", [("::1", 5432), ("fe80::1", 5432)]),
    ],
)
def test_ports_default_to_5432_and_ipv6_literals_are_read(
    dsn: str, hosts: list[tuple[str, int]]
) -> None:
    assert [(h.host, h.port) for h in parse_dsn(dsn).hosts] == hosts


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        ("mysql://u:p@db/orders", "must start with postgresql"),
        ("postgresql://u:p@/orders", "names no host"),
        ("postgresql://u:p@db-a,:5432/orders", "empty host"),
        ("postgresql://u:secret@db:54x2/orders", "invalid port"),
    ],
)
def test_an_unreadable_dsn_is_refused_at_start_naming_the_variable(dsn: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, postgres_dsn=dsn)  # type: ignore[call-arg]

    message = str(caught.value)
    assert "postgres_dsn" in message and says in message
    assert "secret" not in message.split("input_value")[0]


def test_invalid_dsn_is_a_value_error() -> None:
    with pytest.raises(InvalidDsn):
        parse_dsn("postgresql://")
