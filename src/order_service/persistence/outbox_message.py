"""The shape of an outbox row as the writers insert it, and the lane that orders its key.

It belongs to persistence: the api's group commit, the worker's settlement and the api's
cancellation write it; the messaging layer builds it (envelope) and the relay reads it back.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

# Fixed forever: an order's lane must not move, or two relays could reorder its events (G4).
OUTBOX_LANES = 64


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    event_id: str
    aggregate_id: str
    topic: str
    key: str
    payload: bytes
    headers: dict[str, str]
    lane: int


def lane_of(key: str) -> int:
    return zlib.crc32(key.encode()) % OUTBOX_LANES
