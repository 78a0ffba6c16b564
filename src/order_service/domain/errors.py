"""Domain errors: raised by the model, mapped to HTTP or DLQ reasons at the edges."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""


class InvalidTransition(DomainError):
    def __init__(self, current: Any, target: Any) -> None:
        super().__init__(f"order cannot move from {current} to {target}")
        self.current = current
        self.target = target


class OrderNotFound(DomainError):
    def __init__(self, order_id: Any) -> None:
        super().__init__(f"order {order_id} does not exist")
        self.order_id = order_id


class IdempotencyKeyReused(DomainError):
    """The same Idempotency-Key came back with a different request."""


class IdempotencyKeyInFlight(DomainError):
    """The first request with this Idempotency-Key has not finished yet."""


class ServiceUnavailable(Exception):
    """A dependency (database, broker) could not be reached in time.

    `outcome` tells a client of a write what happened (DESIGN.md §3): "not_written" (nothing
    was committed, nor will be), "unknown" (the commit was sent and its answer lost: ask with
    the same Idempotency-Key or GET `order_id`), or None for a read.
    """

    outcome: str | None = None
    order_id: Any = None


class NotWritten(ServiceUnavailable):
    """The write provably did not commit, and never will (its request is forgotten)."""

    outcome = "not_written"


class OutcomeUnknown(ServiceUnavailable):
    """The commit was sent and its answer never came: the order may or may not exist."""

    outcome = "unknown"

    def __init__(self, message: str, order_id: Any) -> None:
        super().__init__(message)
        self.order_id = order_id
