"""Sort a batch of records before anything is applied: valid events, events to skip, poison.

Never raises: whatever bytes a record holds, it ends up in one of the three (G6). The same
event twice in one batch is applied once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from aiokafka import ConsumerRecord

from order_service.messaging.dlq import DeadLetter
from order_service.messaging.event_codec import OrderCreatedEvent, Poison, Skip, decode
from order_service.observability.logging import get_logger
from order_service.observability.metrics import EVENTS_SKIPPED

log = get_logger(__name__)

Valid = dict[UUID, tuple[ConsumerRecord, OrderCreatedEvent]]


@dataclass
class Triage:
    valid: Valid = field(default_factory=dict)  # by event id, first copy, in offset order
    dead: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0  # further copies of an event already in `valid`


def triage(records: list[ConsumerRecord]) -> Triage:
    result = Triage()
    for record in records:
        try:
            event = decode(record.value, record.headers)
        except Poison as poison:
            result.dead.append(DeadLetter(record, poison.reason, poison.detail, 1))
            continue
        except Skip as skip:
            EVENTS_SKIPPED.labels(reason=skip.reason).inc()
            log.info(
                "worker_event_skipped",
                reason=skip.reason,
                detail=skip.detail,
                partition=record.partition,
                offset=record.offset,
            )
            continue
        except Exception as exc:  # whatever the bytes, the record is poison, not a crash
            result.dead.append(DeadLetter(record, "undecodable", repr(exc), 1))
            continue
        if event.event_id in result.valid:
            result.duplicates += 1  # the same event twice in one batch: applied once
        else:
            result.valid[event.event_id] = (record, event)
    return result
