"""`order-service loadtest`: the typer command. Wiring only; the logic lives beside it.

Exit codes: 0 the run completed (and `--verify` found every order settled and every check
held); 1 `--verify` found orders missing or unsettled, or a check failed; 2 bad options; 3 the
target accepted no order at all; 4 the run could not be set up (PUT /stock refused); 130
interrupted by Ctrl-C (the summary so far is still printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import orjson
import typer
from faker import Faker
from rich.console import Console

from order_service.loadtest.bodies import RequestFactory
from order_service.loadtest.client import SetupError, open_session
from order_service.loadtest.options import Endpoint, LoadOptions, OptionError, build_options
from order_service.loadtest.plot import per_second, write_plot
from order_service.loadtest.recorder import Recorder
from order_service.loadtest.render import LiveProgress, summary_tables
from order_service.loadtest.runner import LoadRun
from order_service.loadtest.stock import prepare_stock
from order_service.loadtest.summary import Summary, summarize
from order_service.loadtest.verify import verify_run

EXIT_LOST = 1
EXIT_NOTHING_ACCEPTED = 3
EXIT_SETUP = 4
EXIT_INTERRUPTED = 130
_TICK_S = 0.25


def loadtest(
    url: Annotated[str, typer.Option(help="Base URL of the order API.")] = "http://127.0.0.1:8000",
    rate: Annotated[
        float | None, typer.Option(help="Open model: orders per second, whatever the latency.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Closed model: this many clients, each waits for its reply.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Seconds to run (default 30 unless --total).")
    ] = None,
    total: Annotated[int | None, typer.Option(help="Requests to send, at most.")] = None,
    ramp_up: Annotated[float, typer.Option(help="Seconds to grow linearly to full load.")] = 0.0,
    burst: Annotated[int, typer.Option(help="Open model: fire requests in groups of N.")] = 1,
    token: Annotated[
        str | None, typer.Option(envvar="LOADTEST_TOKEN", help="Bearer token to send.")
    ] = None,
    replay_ratio: Annotated[
        float, typer.Option(help="Share re-sent with the same Idempotency-Key and body.")
    ] = 0.0,
    invalid_ratio: Annotated[float, typer.Option(help="Share of invalid bodies (want 4xx).")] = 0.0,
    endpoint: Annotated[
        Endpoint, typer.Option(help="orders: POST /orders (201); order: the seed's POST /order.")
    ] = Endpoint.ORDERS,
    timeout: Annotated[float, typer.Option(help="Per-request timeout, seconds.")] = 10.0,
    connections: Annotated[int, typer.Option(help="Client connection pool size.")] = 100,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write latency over time: .png (matplotlib) or .html.")
    ] = None,
    stock: Annotated[
        int | None,
        typer.Option(help="Set a stock-managed item's available units (PUT /stock) first."),
    ] = None,
    managed_item: Annotated[
        str | None,
        typer.Option(help="The item --stock manages (default: a fresh loadtest-<hex> per run)."),
    ] = None,
    managed_share: Annotated[
        float | None,
        typer.Option(help="Share of new orders for the managed item (default 0.5 with --stock)."),
    ] = None,
    cancel_ratio: Annotated[
        float, typer.Option(help="Share of accepted orders cancelled a moment later.")
    ] = 0.0,
    cancel_delay: Annotated[
        float, typer.Option(help="Cancels go out a random 0..S seconds after the acceptance.")
    ] = 0.25,
    verify: Annotated[
        bool,
        typer.Option(
            help="Afterwards, check every order settles, cancels held and the stock balances."
        ),
    ] = False,
    verify_timeout: Annotated[
        float, typer.Option(help="Seconds --verify waits for the stack to drain.")
    ] = 60.0,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible bodies.")] = None,
) -> None:
    """Put load on the order API, report throughput and latency, optionally verify delivery."""
    try:
        options = build_options(
            url=url,
            endpoint=endpoint,
            rate=rate,
            concurrency=concurrency,
            duration_s=duration,
            total=total,
            ramp_up_s=ramp_up,
            burst=burst,
            token=token,
            replay_ratio=replay_ratio,
            invalid_ratio=invalid_ratio,
            timeout_s=timeout,
            connections=connections,
            seed=seed,
            stock=stock,
            managed_item=managed_item,
            managed_share=managed_share,
            cancel_ratio=cancel_ratio,
            cancel_delay_s=cancel_delay,
        )
    except OptionError as exc:
        raise typer.BadParameter(str(exc)) from exc
    err = Console(stderr=True)
    with _runner() as runner:
        try:
            summary, recorder = runner.run(
                execute(options, err, verify=verify, verify_timeout_s=verify_timeout)
            )
        except SetupError as exc:
            err.print(f"[red]could not set up the run:[/] {exc}")
            raise typer.Exit(EXIT_SETUP) from exc
    if plot is not None:
        series = per_second(recorder.offsets, recorder.latencies)
        written = write_plot(plot, series, f"latency over time: {summary.target}")
        summary = replace(summary, plot_path=str(written))
        err.print(f"latency plot written to {written}")
    _print(summary, err, json_output)
    raise typer.Exit(exit_code(summary, options))


def exit_code(summary: Summary, options: LoadOptions) -> int:
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if summary.verify is not None and not summary.verify.ok:
        return EXIT_LOST
    wanted_new = options.invalid_ratio < 1.0
    if wanted_new and summary.sent > 0 and summary.accepted == 0:
        return EXIT_NOTHING_ACCEPTED
    return 0


def _print(summary: Summary, err: Console, json_output: bool) -> None:
    if json_output:
        err.print(summary_tables(summary))
        typer.echo(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        Console().print(summary_tables(summary))


@contextlib.contextmanager
def _runner() -> Iterator[asyncio.Runner]:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        yield runner


@contextlib.contextmanager
def _on_interrupt(stop: asyncio.Event) -> Iterator[None]:
    """First Ctrl-C ends the phase gracefully; a second one falls back to KeyboardInterrupt."""
    loop = asyncio.get_running_loop()

    def handle() -> None:
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)

    try:
        loop.add_signal_handler(signal.SIGINT, handle)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _tick(live: LiveProgress, recorder: Recorder, run: LoadRun) -> None:
    while True:
        live.update(recorder, run.elapsed(), run.issued)
        await asyncio.sleep(_TICK_S)


async def execute(
    options: LoadOptions, err: Console, *, verify: bool, verify_timeout_s: float
) -> tuple[Summary, Recorder]:
    rng = random.Random(options.seed)
    faker = Faker()
    if options.seed is not None:
        faker.seed_instance(options.seed)
    factory = RequestFactory(
        rng,
        faker,
        replay_ratio=options.replay_ratio,
        invalid_ratio=options.invalid_ratio,
        managed_item=options.managed_item,
        managed_share=options.managed_share or 0.0,
    )
    recorder = Recorder()
    stop = asyncio.Event()
    async with open_session(options) as session:
        managed = await prepare_stock(session, options)
        if managed is not None:
            err.print(
                f"stock of {managed.item!r} set to {managed.stock_set:,}; "
                f"{managed.share:.0%} of new orders are for it"
            )
        with _on_interrupt(stop):
            run = LoadRun(options, session, factory, recorder, stop)
            with LiveProgress(err, options) as live:
                ticker = asyncio.create_task(_tick(live, recorder, run))
                try:
                    result = await run.run()
                finally:
                    ticker.cancel()
                live.update(recorder, result.elapsed_s, run.issued, final=True)
        summary = summarize(
            options, recorder, result.elapsed_s, result.interrupted, result.cancelled, managed
        )
        if verify and not result.interrupted:
            lost = f" and {len(recorder.unresolved):,} lost answers" if recorder.unresolved else ""
            err.print(f"verifying {len(recorder.accepted_ids):,} accepted orders{lost} ...")
            verify_stop = asyncio.Event()
            with _on_interrupt(verify_stop):
                outcome = await verify_run(
                    session,
                    options,
                    recorder,
                    managed,
                    load_ended_at=result.ended_at,
                    timeout_s=verify_timeout_s,
                    stop=verify_stop,
                )
            summary = replace(summary, verify=outcome)
    return summary, recorder
