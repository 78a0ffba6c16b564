"""What to send: new orders with Faker items (or the run's stock-managed item), replays of
accepted ones, and invalid bodies."""

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
    managed: bool = False  # an order for the run's stock-managed item


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
        managed_item: str | None = None,
        managed_share: float = 0.0,
    ) -> None:
        self._rng = rng
        self._faker = faker
        self._replay_ratio = replay_ratio
        self._invalid_ratio = invalid_ratio
        self._managed_item = managed_item
        self._managed_share = managed_share if managed_item is not None else 0.0
        # Keys only when replays are wanted: storing a key costs the server an extra write.
        # Orders of the managed item always carry one: an answer lost on the way ("unknown")
        # must be resolvable by asking again, or the item's books cannot be checked.
        self._with_keys = replay_ratio > 0

    def _draw_managed(self) -> bool:
        # No draw without a managed item, so seeded runs without one send what they always did.
        return self._managed_share > 0 and self._rng.random() < self._managed_share

    def new_body(self, managed: bool = False) -> bytes:
        if managed and self._managed_item is not None:
            item = self._managed_item
        else:
            item = f"{self._faker.color_name()} {self._faker.word()}"[:200]
        return orjson.dumps({"item": item, "quantity": self._rng.randint(1, 20)})

    def _new_key(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def next(self, replayable: Sequence[Replayable]) -> PlannedRequest:
        draw = self._rng.random()
        if draw < self._invalid_ratio:
            return PlannedRequest(Planned.INVALID, self._rng.choice(INVALID_BODIES))
        if draw < self._invalid_ratio + self._replay_ratio and replayable:
            chosen = replayable[self._rng.randrange(len(replayable))]
            return PlannedRequest(
                Planned.REPLAY, chosen.body, chosen.idempotency_key, chosen.order_id
            )
        managed = self._draw_managed()
        body = self.new_body(managed)
        key = self._new_key() if self._with_keys or managed else None
        return PlannedRequest(Planned.NEW, body, key, managed=managed)
