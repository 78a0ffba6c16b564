"""What to send: new orders with Faker items, replays of accepted ones, and invalid bodies."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import orjson
from faker import Faker

# Each violates exactly one rule of the contract (DESIGN.md §3), so any 2xx is a server bug.
INVALID_BODIES: tuple[bytes, ...] = (
    orjson.dumps({"item": "", "quantity": 1}),
    orjson.dumps({"item": "   ", "quantity": 1}),
    orjson.dumps({"item": "x" * 201, "quantity": 1}),
    orjson.dumps({"item": "book", "quantity": 0}),
    orjson.dumps({"item": "book", "quantity": 10_001}),
    orjson.dumps({"item": "book", "quantity": "two"}),
    orjson.dumps({"item": "book"}),
    b'{"item": "book", "quantity": ',
)


class Planned(StrEnum):
    NEW = "new"
    REPLAY = "replay"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    kind: Planned
    body: bytes
    idempotency_key: str | None = None
    replay_of: str | None = None  # the order id the replay must return


@dataclass(frozen=True, slots=True)
class Replayable:
    """An accepted request that may be sent again with the same key and body."""

    idempotency_key: str
    body: bytes
    order_id: str


class RequestFactory:
    """Draws the next request; one seeded `random.Random` makes a run reproducible."""

    def __init__(
        self,
        rng: random.Random,
        faker: Faker,
        *,
        replay_ratio: float = 0.0,
        invalid_ratio: float = 0.0,
    ) -> None:
        self._rng = rng
        self._faker = faker
        self._replay_ratio = replay_ratio
        self._invalid_ratio = invalid_ratio
        # Keys only when replays are wanted: storing a key costs the server an extra write.
        self._with_keys = replay_ratio > 0

    def new_body(self) -> bytes:
        item = f"{self._faker.color_name()} {self._faker.word()}"[:200]
        return orjson.dumps({"item": item, "quantity": self._rng.randint(1, 20)})

    def next(self, replayable: Sequence[Replayable]) -> PlannedRequest:
        draw = self._rng.random()
        if draw < self._invalid_ratio:
            return PlannedRequest(Planned.INVALID, self._rng.choice(INVALID_BODIES))
        if draw < self._invalid_ratio + self._replay_ratio and replayable:
            chosen = replayable[self._rng.randrange(len(replayable))]
            return PlannedRequest(
                Planned.REPLAY, chosen.body, chosen.idempotency_key, chosen.order_id
            )
        key = str(uuid.UUID(int=self._rng.getrandbits(128), version=4)) if self._with_keys else None
        return PlannedRequest(Planned.NEW, self.new_body(), key)
