"""Idempotency-Key handling (IETF httpapi draft, Stripe semantics), minus the storage.

The record itself is written by the OrderWriter in the order's transaction; here live the
request fingerprint, the in-flight guard and the decision on an earlier stored response.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import orjson

from order_service.domain.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from order_service.observability.metrics import IDEMPOTENCY_CONFLICTS
from order_service.persistence.order_writer import StoredResponse

MAX_KEY_LENGTH = 255


def request_fingerprint(method: str, path: str, body: dict[str, object]) -> str:
    """Same method, path and JSON body (key order and spacing aside) → same fingerprint."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def check_replay(stored: StoredResponse, fingerprint: str) -> StoredResponse:
    if stored.request_hash != fingerprint:
        IDEMPOTENCY_CONFLICTS.labels(reason="body_mismatch").inc()
        raise IdempotencyKeyReused(
            "this Idempotency-Key was first used with a different request body or endpoint"
        )
    return stored


class InFlightKeys:
    """Keys being written by this process right now: a concurrent duplicate gets 409.

    Across processes the database's unique key serialises duplicates instead: the second
    waits for the first transaction and then replays its response.
    """

    def __init__(self) -> None:
        self._keys: set[tuple[str, str]] = set()

    @contextmanager
    def hold(self, principal: str, key: str) -> Iterator[None]:
        entry = (principal, key)
        if entry in self._keys:
            IDEMPOTENCY_CONFLICTS.labels(reason="in_flight").inc()
            raise IdempotencyKeyInFlight("the first request with this key has not finished")
        self._keys.add(entry)
        try:
            yield
        finally:
            self._keys.discard(entry)
