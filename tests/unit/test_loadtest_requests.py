from __future__ import annotations

import random

import orjson
import pytest
from faker import Faker

from order_service.loadtest.bodies import (
    INVALID_BODIES,
    Planned,
    PlannedRequest,
    Replayable,
    RequestFactory,
)
from order_service.loadtest.outcome import Kind, classify


def factory(replay: float = 0.0, invalid: float = 0.0, seed: int = 1) -> RequestFactory:
    faker = Faker()
    faker.seed_instance(seed)
    return RequestFactory(random.Random(seed), faker, replay_ratio=replay, invalid_ratio=invalid)


def test_new_bodies_satisfy_the_contract() -> None:
    made = factory()
    for _ in range(200):
        planned = made.next(())
        body = orjson.loads(planned.body)
        assert planned.kind is Planned.NEW
        assert 1 <= len(body["item"]) <= 200
        assert body["item"].strip()
        assert 1 <= body["quantity"] <= 10_000
        assert planned.idempotency_key is None


def test_the_same_seed_gives_the_same_requests() -> None:
    first = [factory(replay=0.5, seed=9).next(()) for _ in range(5)]
    again = [factory(replay=0.5, seed=9).next(()) for _ in range(5)]
    assert first == again


def test_ratios_decide_the_mix_and_replays_reuse_key_and_body() -> None:
    pool = [Replayable("k1", b'{"item":"a","quantity":1}', "order-1")]
    made = factory(replay=0.3, invalid=0.2)
    drawn = [made.next(pool) for _ in range(5000)]
    share = {kind: sum(p.kind is kind for p in drawn) / len(drawn) for kind in Planned}
    assert share[Planned.INVALID] == pytest.approx(0.2, abs=0.03)
    assert share[Planned.REPLAY] == pytest.approx(0.3, abs=0.03)
    replay = next(p for p in drawn if p.kind is Planned.REPLAY)
    assert (replay.idempotency_key, replay.body, replay.replay_of) == (
        "k1",
        pool[0].body,
        "order-1",
    )
    assert all(p.idempotency_key for p in drawn if p.kind is Planned.NEW)


def test_with_nothing_to_replay_a_new_order_is_sent_instead() -> None:
    made = factory(replay=1.0)
    assert made.next(()).kind is Planned.NEW


def test_every_invalid_body_breaks_the_contract() -> None:
    for raw in INVALID_BODIES:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        item, quantity = body.get("item"), body.get("quantity")
        valid = (
            isinstance(item, str)
            and 1 <= len(item) <= 200
            and bool(item.strip())
            and isinstance(quantity, int)
            and 1 <= quantity <= 10_000
        )
        assert not valid, raw


NEW = PlannedRequest(Planned.NEW, b"{}", "k")
REPLAY = PlannedRequest(Planned.REPLAY, b"{}", "k", replay_of="o1")
INVALID = PlannedRequest(Planned.INVALID, b"{}")


@pytest.mark.parametrize(
    ("planned", "status", "order_id", "replayed", "kind"),
    [
        (NEW, 201, "o1", False, Kind.ACCEPTED),
        (NEW, 200, "o1", False, Kind.ACCEPTED),
        (NEW, 201, None, False, Kind.UNEXPECTED),
        (NEW, 409, None, False, Kind.CLIENT_ERROR),
        (NEW, 503, None, False, Kind.SERVER_ERROR),
        (NEW, 302, None, False, Kind.UNEXPECTED),
        (REPLAY, 201, "o1", True, Kind.REPLAYED),
        (REPLAY, 201, "o2", True, Kind.UNEXPECTED),
        (REPLAY, 201, "o1", False, Kind.UNEXPECTED),
        (INVALID, 422, None, False, Kind.REJECTED),
        (INVALID, 201, "o1", False, Kind.UNEXPECTED),
        (INVALID, 500, None, False, Kind.SERVER_ERROR),
    ],
)
def test_classify_judges_each_response_by_what_was_sent(
    planned: PlannedRequest, status: int, order_id: str | None, replayed: bool, kind: Kind
) -> None:
    assert classify(planned, status, order_id, replayed)[0] is kind
