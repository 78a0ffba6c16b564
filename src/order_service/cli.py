"""`order-service`: one CLI for every process. Thin: parse flags, build settings, run."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer

from order_service.cli_errors import (
    fail,
    fail_without_extra,
    missing_extra,
    needs_extra,
    settings_or_fail,
)
from order_service.config import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
dlq_app = typer.Typer(no_args_is_help=True, help="Dead-letter queue tools.")
app.add_typer(dlq_app, name="dlq")

Host = Annotated[str, typer.Option(help="Interface for the HTTP listener.")]


def _init_observability(settings: Settings, process: str) -> None:
    from order_service.observability.logging import configure_logging
    from order_service.observability.tracing import configure_tracing

    configure_logging(settings, process)
    configure_tracing(settings, process)


def _run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)`; SIGTERM/SIGINT set `stop` and the process drains (G8)."""
    from order_service.domain.errors import ServiceUnavailable
    from order_service.gc_tuning import freeze_startup_objects
    from order_service.observability.tracing import shutdown_tracing

    async def runner() -> None:
        freeze_startup_objects()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        _install_uvloop()
        asyncio.run(runner())
    except ServiceUnavailable as exc:  # a dependency stayed unreachable at start-up
        fail(str(exc))
    finally:
        shutdown_tracing()


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] ships it on Linux
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@app.command()
def api(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the REST API, /metrics and health (FastAPI under uvicorn)."""
    import uvicorn

    from order_service.api.draining import serve
    from order_service.domain.errors import ServiceUnavailable
    from order_service.observability.logging import logging_config
    from order_service.persistence.database import open_pool

    settings = settings_or_fail()
    _init_observability(settings, "api")

    async def preflight() -> None:
        # Fail with one clear line before uvicorn starts, rather than a lifespan traceback.
        pool = await open_pool(settings)
        await pool.close()

    try:
        asyncio.run(preflight())
    except ServiceUnavailable as exc:
        fail(str(exc))
    if workers > 1:
        _share_metrics_between_workers()
    config = uvicorn.Config(
        "order_service.bootstrap:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=logging_config(settings, "api"),  # uvicorn's lines as JSON too, per worker
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        lifespan="on",
    )
    # SIGTERM: /readyz 503 at once, serve SHUTDOWN_DRAIN_S more, then drain (G8).
    serve(config, settings.shutdown_drain_s)


def _share_metrics_between_workers() -> None:
    """Several uvicorn workers: prometheus-client's multiprocess mode, so /metrics (answered by
    any one worker) adds up every worker's counters. Must be set before metrics are created."""
    import os
    import tempfile

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="order-service-metrics-")


@app.command()
def relay(host: Host = "127.0.0.1", port: int = 8001) -> None:
    """Publish outbox rows to Kafka (serves /metrics, /healthz, /readyz)."""
    from order_service.messaging.relay import run_relay

    settings = settings_or_fail()
    _init_observability(settings, "relay")
    _run_until_signal(lambda stop: run_relay(settings, stop=stop, http_host=host, http_port=port))


@app.command()
def worker(host: Host = "127.0.0.1", port: int = 8002) -> None:
    """Consume orders.created; confirm or reject orders (serves /metrics, /healthz, /readyz)."""
    from order_service.messaging.worker import run_worker

    settings = settings_or_fail()
    _init_observability(settings, "worker")
    _run_until_signal(lambda stop: run_worker(settings, stop=stop, http_host=host, http_port=port))


@app.command("kafka-exporter")
def kafka_exporter(host: Host = "127.0.0.1", port: int = 9308) -> None:
    """Serve kafka_exporter's metrics (offsets, consumer-group lag) for KAFKA_BOOTSTRAP_SERVERS."""
    with needs_extra("kafka-exporter", "devstack"):  # a dev and test tool, not in the image
        from order_service.devstack.kafka_exporter import serve
    from order_service.observability.logging import configure_logging

    settings = settings_or_fail()
    configure_logging(settings, "kafka-exporter")
    _run_until_signal(lambda stop: serve(settings, host, port, stop))


@app.command()
def migrate() -> None:
    """Apply the database migrations (Alembic upgrade head), retried until STARTUP_TIMEOUT_S."""
    from order_service.observability.logging import configure_logging, get_logger
    from order_service.persistence.migrate import MigrationFailed, upgrade_with_retries

    settings = settings_or_fail()
    configure_logging(settings, "migrate")
    log = get_logger("order_service.migrate")

    def on_retry(exc: BaseException, delay: float) -> None:
        log.warning("migrate_retrying", error=str(exc), retry_in_s=round(delay, 2))

    try:
        upgrade_with_retries(
            settings.postgres_dsn, deadline_s=settings.startup_timeout_s, on_retry=on_retry
        )
    except MigrationFailed as exc:
        fail(f"{exc}; check POSTGRES_DSN")
    typer.echo("migrations applied (head)")


@dlq_app.command("replay")
def dlq_replay(
    limit: Annotated[int | None, typer.Option(help="Replay at most this many.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Only count what would be replayed.")] = False,
) -> None:
    """Re-publish dead-lettered events to their original topic."""
    from order_service.domain.errors import ServiceUnavailable
    from order_service.messaging.dlq import replay_dlq
    from order_service.messaging.kafka_security import KafkaAccessRefused

    settings = settings_or_fail()
    _init_observability(settings, "dlq-replay")
    try:
        count = asyncio.run(replay_dlq(settings, limit=limit, dry_run=dry_run))
    except (ServiceUnavailable, KafkaAccessRefused) as exc:
        fail(str(exc))
    verb = "would replay" if dry_run else "replayed"
    typer.echo(f"{verb} {count} event(s) from {settings.dlq_topic}")


@app.command()
def dev(
    postgres_port: Annotated[int, typer.Option(envvar="DEV_POSTGRES_PORT")] = 5432,
    kafka_port: Annotated[int, typer.Option(envvar="DEV_KAFKA_PORT")] = 9092,
    api_port: int = 8000,
    relay_port: int = 8001,
    worker_port: int = 8002,
    data_dir: Annotated[str, typer.Option(help="Where PostgreSQL keeps its data.")] = ".dev",
    observe: Annotated[
        bool,
        typer.Option(
            help="Also run Prometheus, Alertmanager, postgres- and kafka-exporter, the "
            "OpenTelemetry Collector and Jaeger (build them first: scripts/observe-install.sh)."
        ),
    ] = False,
    observe_port_offset: Annotated[
        int, typer.Option(help="Move every --observe port (9090, 16686, ...) by this much.")
    ] = 0,
    broker: Annotated[
        str,
        typer.Option(
            envvar="DEV_BROKER",
            help="tansu (Python only, memory) or kafka (Apache Kafka, needs Java 17+).",
        ),
    ] = "tansu",
) -> None:
    """Run everything locally without Docker: PostgreSQL, a Kafka broker, api, relay, worker."""
    with needs_extra("dev", "devstack"):  # the production image has neither server
        from order_service.devstack.observe import ObservePorts
        from order_service.devstack.supervisor import DevStack, DevStackError

    stack = DevStack(
        data_dir=data_dir,
        postgres_port=postgres_port,
        kafka_port=kafka_port,
        api_port=api_port,
        relay_port=relay_port,
        worker_port=worker_port,
        observe=observe,
        observe_ports=ObservePorts().shifted(observe_port_offset),
        broker=broker,
    )
    try:
        sys.exit(stack.run())
    except DevStackError as exc:
        fail(str(exc))


@app.command()
def doctor(
    api: Annotated[str, typer.Option(help="The api's base URL.")] = "http://127.0.0.1:8000",
    relay: str = "http://127.0.0.1:8001",
    worker: str = "http://127.0.0.1:8002",
    prometheus: Annotated[str | None, typer.Option(help="e.g. http://localhost:9090")] = None,
    grafana: Annotated[str | None, typer.Option(help="e.g. http://localhost:3000")] = None,
    jaeger: Annotated[str | None, typer.Option(help="e.g. http://localhost:16686")] = None,
    alertmanager: Annotated[str | None, typer.Option(help="e.g. http://localhost:9093")] = None,
    postgres_dsn: Annotated[
        str | None,
        typer.Option(
            envvar="POSTGRES_DSN",
            help="Check each host of this DSN and which one takes writes (default: $POSTGRES_DSN).",
            show_default=False,
        ),
    ] = None,
    kafka_bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            envvar="KAFKA_BOOTSTRAP_SERVERS",
            help="Show this Kafka cluster's brokers, controller and the service's partitions"
            " (default: $KAFKA_BOOTSTRAP_SERVERS; TLS/SASL and topics from the environment).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check every endpoint of a running stack and print a table; exit 1 if any fails."""
    from rich.console import Console
    from rich.table import Table

    from order_service.doctor import Targets, diagnose

    targets = Targets(api, relay, worker, prometheus, grafana, jaeger, alertmanager)
    kafka = None
    if kafka_bootstrap_servers:
        kafka = settings_or_fail().model_copy(
            update={"kafka_bootstrap_servers": kafka_bootstrap_servers}
        )
    results = asyncio.run(diagnose(targets, postgres_dsn=postgres_dsn, kafka=kafka))
    table = Table(title="order-service doctor")
    for column in ("check", "url", "result"):
        table.add_column(column)
    for result in results:
        mark = "[green]ok[/]" if result.ok else "[red]FAIL[/]"
        table.add_row(result.check.name, result.check.url, f"{mark} {result.detail}")
    Console().print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _register_commands_of_their_own() -> None:
    from order_service.messaging.topic_command import events

    app.command("events")(events)


_register_commands_of_their_own()


def _register_optional_commands() -> None:
    try:
        from order_service.loadtest.command import loadtest
    except ModuleNotFoundError as exc:  # the image leaves the load tester out
        module = missing_extra("loadtest", exc)
        if module is None:
            raise

        @app.command(
            "loadtest",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )
        def loadtest_not_installed() -> None:
            """Load generator (needs the 'loadtest' extra, not installed here)."""
            fail_without_extra("loadtest", "loadtest", str(module))

        return
    app.command("loadtest")(loadtest)


_register_optional_commands()
