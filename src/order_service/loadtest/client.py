"""One POST through aiohttp, turned into an Outcome; transport failures are classified here."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from order_service.loadtest.bodies import PlannedRequest
from order_service.loadtest.options import Endpoint, LoadOptions
from order_service.loadtest.outcome import Kind, Outcome, classify


def open_session(options: LoadOptions) -> aiohttp.ClientSession:
    # The connector's limit is the client's concurrency ceiling; beyond it requests queue here,
    # and in the open model that queueing counts in their latency (no coordinated omission).
    connector = aiohttp.TCPConnector(limit=options.connections, limit_per_host=0)
    return aiohttp.ClientSession(
        connector=connector,
        headers=options.headers(),
        timeout=aiohttp.ClientTimeout(total=options.timeout_s),
    )


def order_id_from(body: bytes, endpoint: Endpoint) -> str | None:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    value = document.get("id" if endpoint is Endpoint.ORDERS else "order_id")
    return str(value) if value else None


def _failed(
    planned: PlannedRequest, kind: Kind, exc: Exception, latency_s: float, offset_s: float
) -> Outcome:
    return Outcome(planned, kind, None, latency_s, offset_s, detail=type(exc).__name__)


async def post_order(
    session: aiohttp.ClientSession,
    options: LoadOptions,
    planned: PlannedRequest,
    *,
    due: float,
    offset_s: float,
) -> Outcome:
    """Send `planned`; latency runs from `due`, the moment the request should have left."""
    loop = asyncio.get_running_loop()
    headers = {"Idempotency-Key": planned.idempotency_key} if planned.idempotency_key else None
    try:
        async with session.post(options.post_url, data=planned.body, headers=headers) as resp:
            raw = await resp.read()
            status = resp.status
            replayed = resp.headers.get("Idempotency-Replayed", "").lower() == "true"
    except TimeoutError:
        return Outcome(planned, Kind.TIMEOUT, None, loop.time() - due, offset_s)
    except aiohttp.ClientConnectionError as exc:
        return _failed(planned, Kind.CONNECTION, exc, loop.time() - due, offset_s)
    except aiohttp.ClientError as exc:
        return _failed(planned, Kind.UNEXPECTED, exc, loop.time() - due, offset_s)
    latency = loop.time() - due
    order_id = order_id_from(raw, options.endpoint) if 200 <= status <= 299 else None
    kind, detail = classify(planned, status, order_id, replayed)
    return Outcome(planned, kind, status, latency, offset_s, order_id, detail)
