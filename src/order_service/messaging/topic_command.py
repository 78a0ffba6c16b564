"""`order-service events`: a topic's events from its beginning, as they happened, as a table or
JSON lines; with `--follow`, then each new one as it arrives until Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Annotated

import typer

from order_service.cli_errors import fail, settings_or_fail
from order_service.config import Settings
from order_service.messaging.kafka_security import KafkaAccessRefused
from order_service.messaging.topic_reader import (
    EventSummary,
    UnknownTopic,
    follow_topic,
    json_line,
    read_topic,
    text_line,
)


def events(
    topic: Annotated[
        str | None, typer.Argument(help="Default: KAFKA_STATUS_TOPIC (orders.status).")
    ] = None,
    key: Annotated[str | None, typer.Option(help="Only this order id's events.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the last N.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Then print new events until Ctrl-C.")
    ] = False,
) -> None:
    """Show a topic's events from its beginning, as they happened (no consumer group)."""
    from aiokafka.errors import KafkaError

    settings = settings_or_fail()
    name = topic or settings.kafka_status_topic
    try:
        if follow:
            render = json_line if as_json else text_line
            asyncio.run(_follow(settings, name, key, limit, lambda e: typer.echo(render(e))))
            return
        found = asyncio.run(read_topic(settings, name, key=key, limit=limit))
    except UnknownTopic as exc:
        fail(f"{exc}; check KAFKA_BOOTSTRAP_SERVERS and the topic's name")
    except KafkaAccessRefused as exc:  # names the TLS or SASL setting to fix
        fail(str(exc))
    except KafkaError as exc:
        fail(f"cannot read {name} from {settings.kafka_bootstrap_servers}: {exc!r}")
    if as_json:
        for event in found:
            typer.echo(json_line(event))
        return
    _print_table(name, found)


async def _follow(
    settings: Settings,
    topic: str,
    key: str | None,
    limit: int | None,
    on_event: Callable[[EventSummary], None],
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await follow_topic(settings, topic, on_event, stop, key=key, limit=limit)


def _print_table(topic: str, found: Sequence[EventSummary]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    title = f"{topic}: {len(found)} event(s), as they happened"
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        min_width=len(title),
    )
    dead_letters = any(e.dead_letter_reason for e in found)
    for column in ("time", "key", "type", "p", "offset", *(["reason"] if dead_letters else [])):
        table.add_column(column, no_wrap=True)
    for e in found:
        cells = [e.clock, e.key or "", e.type or "", str(e.partition), str(e.offset)]
        table.add_row(*cells, *([e.dead_letter_reason or ""] if dead_letters else []))
    Console().print(table)
