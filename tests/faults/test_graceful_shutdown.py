"""G8 under load: SIGTERM to the api, a relay and a worker mid-stream — in-flight work finishes
or is handed back, nothing is lost, reset or half-written, each exits within its budget.

Every commit takes 0.3 s here (a trigger), so the api has requests in flight when its SIGTERM
comes. The api then answers /readyz 503 at once (`draining`), serves SHUTDOWN_DRAIN_S more
with `Connection: close`, stops accepting and finishes what is in flight.
"""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.error
import urllib.request

import asyncpg

from order_service.config import Settings
from tests.e2e.processes import Service, Stack
from tests.faults.stream import OrderStream, Outcomes
from tests.faults.verdicts import assert_books_balance, settled_within

SLACK_S = 1.0
DRAIN_S = 1.0
# How long before the listener closes a request may have been sent and still be sitting in
# the kernel's accept queue (uvicorn accepts within milliseconds; a loaded 2-core machine
# can pause the api's loop for a few hundred).
ACCEPT_QUEUE_S = 0.5


def terminate(service: Service, budget_s: float) -> tuple[int, float]:
    started = time.monotonic()
    code = service.stop(signal.SIGTERM, timeout_s=budget_s + 10)
    return code, time.monotonic() - started


def readyz_after_sigterm(api: Service) -> tuple[int, bytes]:
    """SIGTERM, then /readyz on a new connection at once (the listener is still open)."""
    api.process.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    try:
        with urllib.request.urlopen(f"{api.url}/readyz", timeout=2) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def reset_in_the_accept_queue(
    db: asyncpg.Connection, outcomes: Outcomes, listener_closed_at: float
) -> set[str]:
    """The requests TCP itself resets when the listener closes: connections the kernel had
    completed but the api had not accepted yet. The api never read them, so nothing of them
    is written, and the client retries them as it would a refused connection. Only a reset
    of a request sent in the last ACCEPT_QUEUE_S of the drain counts as one, and only if
    the database holds nothing of it; any other reset is a lost request."""
    near_close = {
        key for sent, key, kind in outcomes.broken if sent >= listener_closed_at - ACCEPT_QUEUE_S
    }
    written = await db.fetch(
        "SELECT idem_key FROM idempotency_keys WHERE idem_key = ANY($1::text[])", list(near_close)
    )
    assert not written, f"reset after its order was written: {[r['idem_key'] for r in written]}"
    return near_close


async def test_sigterm_to_api_relay_and_worker_under_load_loses_nothing_and_exits_in_time(
    stack: Stack, settings: Settings, db: asyncpg.Connection
) -> None:
    """Breaks caught: an api that drops requests in flight at SIGTERM (they would show as lost
    or reset, `unknown`), one that stops accepting at once with no 503 first (with
    SHUTDOWN_DRAIN_S=0 the /readyz after SIGTERM is refused), and exits past the budget.
    A connection reset in the accept queue as the listener closes is not a lost request
    (see `reset_in_the_accept_queue`; seen once in a full CI run: one broken connection)."""
    budget = settings.shutdown_timeout_s + SLACK_S
    await db.execute("""
        CREATE FUNCTION test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$;
        CREATE TRIGGER test_slow AFTER INSERT ON outbox
          FOR EACH STATEMENT EXECUTE FUNCTION test_slow();
    """)
    api = stack.start("api", SHUTDOWN_DRAIN_S=str(DRAIN_S))
    relay = stack.start("relay")
    worker = stack.start("worker")

    async with OrderStream(api.url, rate=80) as stream:
        await asyncio.sleep(2.0)
        code, took = await asyncio.to_thread(terminate, relay, budget)
        assert code == 0 and took <= budget, (code, took, relay.output()[-2000:])
        await asyncio.sleep(1.0)
        code, took = await asyncio.to_thread(terminate, worker, budget)
        assert code == 0 and took <= budget, (code, took, worker.output()[-2000:])
        await asyncio.sleep(1.0)

        in_flight = len(stream._inflight)  # requests waiting for an answer right now
        sigterm_at = time.monotonic()
        status, body = await asyncio.to_thread(readyz_after_sigterm, api)
        assert status == 503 and b'"draining":true' in body, (status, body)
        code = await asyncio.to_thread(api.process.wait, budget + DRAIN_S + 10)
        api_took = time.monotonic() - sigterm_at
        assert code == 0 and api_took <= budget + DRAIN_S, (code, api_took)
        await asyncio.sleep(0.5)
        await stream.stop()

        # Nothing in flight got a 5xx or a broken connection; after the api stopped
        # accepting, a request is simply refused (never sent).
        assert not [s for s in stream.outcomes.statuses() if s >= 500]
        at_close = await reset_in_the_accept_queue(db, stream.outcomes, sigterm_at + DRAIN_S)
        lost = stream.outcomes.unknown - at_close
        assert not lost, f"{len(lost)} lost or reset: {stream.outcomes.broken}"
        answered_after = stream.outcomes.statuses(since=sigterm_at - 0.5)
        await db.execute("DROP TRIGGER test_slow ON outbox")
        api = stack.start("api")
        stack.start("relay")
        stack.start("worker")
        stream.point_at(api.url)
        await stream.resolve()
        took = await settled_within(db, stream.outcomes, timeout_s=60)

    assert in_flight > 0, "no request was in flight at SIGTERM: the test proved nothing"
    assert answered_after[201] > 0  # the ones in flight (and the drain's) were answered
    assert stream.outcomes.unsent, "the stream never met the stopped api"
    assert all("Traceback" not in s.output() for s in stack.services)
    await assert_books_balance(db, stream.outcomes)
    print(
        f"\n[sigterm] {in_flight} in flight at the api's SIGTERM, exit {api_took:.2f}s; "
        f"{len(stream.outcomes.accepted)} accepted, {len(stream.outcomes.unsent)} refused "
        f"connections after it stopped, settled {took:.1f}s after restart"
    )
