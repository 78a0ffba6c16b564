"""Reach a dependency at start-up with backoff, or fail with one line.

Each dependency gets `startup_timeout_s`; after that one `ServiceUnavailable` names it (and never
the DSN's password), which the CLI prints as its one line before exiting non-zero. Every package
that opens a resource (persistence its pools, messaging its clients) reaches it through here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from order_service.config import Settings
from order_service.domain.errors import ServiceUnavailable
from order_service.observability.logging import get_logger
from order_service.retry import retry

T = TypeVar("T")
log = get_logger(__name__)


def _retryable(exc: BaseException) -> bool:
    # A bad setting (ValueError/TypeError) will not fix itself by waiting.
    return not isinstance(exc, ValueError | TypeError)


async def reach(settings: Settings, what: str, operation: Callable[[], Awaitable[T]]) -> T:
    """Run `operation` until it succeeds or STARTUP_TIMEOUT_S passes; then ServiceUnavailable."""

    def on_retry(exc: BaseException, delay: float) -> None:
        log.warning(
            "startup_dependency_unavailable",
            dependency=what,
            error=repr(exc),
            retry_in_s=round(delay, 2),
        )

    try:
        return await retry(
            operation,
            retry_on=_retryable,
            initial_s=settings.retry_initial_backoff_s,
            max_s=settings.retry_max_backoff_s,
            deadline_s=settings.startup_timeout_s,
            on_retry=on_retry,
        )
    except Exception as exc:
        if not _retryable(exc):  # a bad setting: it failed at once, not after the budget
            raise ServiceUnavailable(f"{what}: {exc or type(exc).__name__}") from exc
        raise ServiceUnavailable(
            f"{what} unreachable after {settings.startup_timeout_s:g}s: {exc or type(exc).__name__}"
        ) from exc
