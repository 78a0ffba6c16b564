"""The worker's rebalance listener: a revocation waits for the batch in flight (G5)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import ConsumerRebalanceListener, TopicPartition

from order_service.messaging.broker_errors import BROKER_ERRORS
from order_service.messaging.lag import forget_partitions
from order_service.observability.logging import get_logger
from order_service.observability.metrics import REBALANCES

log = get_logger(__name__)


class HandBack(ConsumerRebalanceListener):  # type: ignore[misc]
    """On revocation, the batch in flight commits before its partitions change hands."""

    def __init__(self, busy: Callable[[], asyncio.Lock | None], timeout_s: float) -> None:
        self._busy = busy
        self._timeout_s = timeout_s

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        busy = self._busy()  # None while the worker is still starting: nothing in flight
        if busy is not None:
            try:
                async with asyncio.timeout(self._timeout_s), busy:
                    pass
            except TimeoutError:
                log.warning("worker_revoked_with_batch_in_flight", partitions=len(revoked))
        forget_partitions(set(revoked))
        REBALANCES.labels(change="revoked").inc()
        log.info("worker_partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        BROKER_ERRORS.progress()  # the group has a working coordinator again
        REBALANCES.labels(change="assigned").inc()
        log.info("worker_partitions_assigned", partitions=sorted(tp.partition for tp in assigned))
