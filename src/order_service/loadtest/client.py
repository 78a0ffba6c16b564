"""The HTTP calls, through aiohttp, turned into judged outcomes; transport failures are
classified here. POST an order, POST a cancel, PUT and GET an item's stock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import orjson
from yarl import URL

from order_service.loadtest.bodies import PlannedRequest
from order_service.loadtest.cancels import CancelKind, CancelOutcome, judge_cancel
from order_service.loadtest.options import Endpoint, LoadOptions
from order_service.loadtest.outcome import (
    PROBLEM_JSON,
    Kind,
    Outcome,
    Problem,
    classify,
    retry_after_seconds,
)


class SetupError(RuntimeError):
    """The run could not be prepared (PUT /stock refused or unreachable)."""


@dataclass(frozen=True, slots=True)
class StockLevel:
    item: str
    available: int
    reserved: int


def open_session(options: LoadOptions) -> aiohttp.ClientSession:
    # The connector's limit is the client's concurrency ceiling; beyond it requests queue here,
    # and in the open model that queueing counts in their latency (no coordinated omission).
    connector = aiohttp.TCPConnector(limit=options.connections, limit_per_host=0)
    return aiohttp.ClientSession(
        connector=connector,
        headers=options.headers(),
        timeout=aiohttp.ClientTimeout(total=options.timeout_s),
    )


def _document(body: bytes) -> dict[str, object] | None:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


def order_id_from(body: bytes, endpoint: Endpoint) -> str | None:
    document = _document(body)
    if document is None:
        return None
    value = document.get("id" if endpoint is Endpoint.ORDERS else "order_id")
    return str(value) if value else None


def problem_from(content_type: str, body: bytes, retry_after: str | None) -> Problem | None:
    """The problem+json members the judgement reads; None for any other content type."""
    if content_type.split(";")[0].strip().lower() != PROBLEM_JSON:
        return None
    document = _document(body) or {}

    def member(name: str) -> str | None:
        value = document.get(name)
        return str(value) if value is not None else None

    return Problem(
        type=member("type"),
        outcome=member("outcome"),
        order_id=member("order_id"),
        status_now=member("status_now"),
        retry_after_s=retry_after_seconds(retry_after),
    )


def _transport_kind(exc: Exception) -> tuple[Kind, bool]:
    """(kind, sent): a refused connection never carried the request, a reset one may have."""
    if isinstance(exc, TimeoutError):
        return Kind.TIMEOUT, True
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Kind.CONNECTION, False
    if isinstance(exc, aiohttp.ClientConnectionError):
        return Kind.CONNECTION, True
    return Kind.UNEXPECTED, True


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
            problem = problem_from(resp.content_type, raw, resp.headers.get("Retry-After"))
    except (TimeoutError, aiohttp.ClientError) as exc:
        kind, sent = _transport_kind(exc)
        detail = None if kind is Kind.TIMEOUT else type(exc).__name__
        return Outcome(planned, kind, None, loop.time() - due, offset_s, detail=detail, sent=sent)
    latency = loop.time() - due
    order_id = order_id_from(raw, options.endpoint) if 200 <= status <= 299 else None
    kind, detail = classify(planned, status, order_id, replayed, problem)
    if kind is Kind.OUTCOME_UNKNOWN and problem is not None:
        order_id = problem.order_id
    retry_after = problem.retry_after_s if problem is not None else None
    return Outcome(planned, kind, status, latency, offset_s, order_id, detail, retry_after)


async def post_cancel(
    session: aiohttp.ClientSession, options: LoadOptions, order_id: str, key: str
) -> CancelOutcome:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with session.post(
            options.cancel_url(order_id), headers={"Idempotency-Key": key}
        ) as resp:
            raw = await resp.read()
            status = resp.status
            problem = problem_from(resp.content_type, raw, resp.headers.get("Retry-After"))
    except (TimeoutError, aiohttp.ClientError) as exc:
        kind = {Kind.TIMEOUT: CancelKind.TIMEOUT, Kind.CONNECTION: CancelKind.CONNECTION}.get(
            _transport_kind(exc)[0], CancelKind.UNEXPECTED
        )
        detail = None if kind is CancelKind.TIMEOUT else type(exc).__name__
        return CancelOutcome(order_id, key, kind, None, loop.time() - started, detail)
    document = _document(raw) if 200 <= status <= 299 else None
    kind, detail = judge_cancel(order_id, status, document, problem)
    retry_after = problem.retry_after_s if problem is not None else None
    return CancelOutcome(order_id, key, kind, status, loop.time() - started, detail, retry_after)


def _stock_of(document: dict[str, object] | None, item: str) -> StockLevel | None:
    if document is None:
        return None
    available, reserved = document.get("available"), document.get("reserved")
    if not isinstance(available, int) or not isinstance(reserved, int):
        return None
    return StockLevel(str(document.get("item", item)), available, reserved)


async def put_stock(
    session: aiohttp.ClientSession, options: LoadOptions, item: str, available: int
) -> StockLevel:
    url = URL(options.stock_url(item), encoded=True)
    try:
        async with session.put(url, data=orjson.dumps({"available": available})) as resp:
            raw = await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise SetupError(f"PUT {url} failed: {type(exc).__name__} {exc}") from exc
    level = _stock_of(_document(raw), item) if status == 200 else None
    if level is None:
        raise SetupError(f"PUT {url} answered {status}: {raw[:200].decode(errors='replace')}")
    return level


async def get_stock(
    session: aiohttp.ClientSession, options: LoadOptions, item: str
) -> StockLevel | None:
    """The item's stock, or None when it cannot be read (404 included: the row vanished)."""
    url = URL(options.stock_url(item), encoded=True)
    try:
        async with session.get(url) as resp:
            raw = await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError):
        return None
    return _stock_of(_document(raw), item) if status == 200 else None
