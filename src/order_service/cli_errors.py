"""How every command ends on a bad day: one line on stderr, `order-service: ...`, exit 1."""

from __future__ import annotations

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
