from __future__ import annotations

import random
from datetime import UTC, datetime

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
from order_service.loadtest.outcome import (
    Kind,
    Outcome,
    Problem,
    classify,
    retry_after_seconds,
    retry_wait,
)


def factory(
    replay: float = 0.0,
    invalid: float = 0.0,
    seed: int = 1,
    managed_item: str | None = None,
    managed_share: float = 0.0,
) -> RequestFactory:
    faker = Faker()
    faker.seed_instance(seed)
    return RequestFactory(
        random.Random(seed),
        faker,
        replay_ratio=replay,
        invalid_ratio=invalid,
        managed_item=managed_item,
        managed_share=managed_share,
    )


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


def test_the_managed_share_of_new_orders_is_for_the_managed_item_and_carries_a_key() -> None:
    """Catches the share ignored or inverted, and managed orders sent without an
    Idempotency-Key: a lost answer could then never be resolved and the books not checked."""
    made = factory(managed_item="lamp", managed_share=0.4)
    drawn = [made.next(()) for _ in range(2000)]
    managed = [p for p in drawn if orjson.loads(p.body)["item"] == "lamp"]
    others = [p for p in drawn if orjson.loads(p.body)["item"] != "lamp"]
    assert len(managed) / len(drawn) == pytest.approx(0.4, abs=0.04)
    assert all(p.managed and p.idempotency_key for p in managed)
    assert not any(p.managed or p.idempotency_key for p in others)
    assert all(1 <= orjson.loads(p.body)["quantity"] <= 20 for p in managed)


def test_without_a_managed_item_a_seed_still_sends_what_it_always_sent() -> None:
    """Catches the managed-share draw taken from the body generator even when there is no
    managed item, which would change every seeded run's bodies."""
    before = [factory(replay=0.5, seed=4).next(()) for _ in range(20)]
    after = [factory(replay=0.5, seed=4, managed_share=0.0).next(()) for _ in range(20)]
    assert before == after


IN_FLIGHT = Problem(type="/problems/idempotency-key-in-flight", retry_after_s=1.0)


@pytest.mark.parametrize(
    ("planned", "status", "problem", "kind"),
    [
        (REPLAY, 409, IN_FLIGHT, Kind.REPLAY_IN_FLIGHT),
        (REPLAY, 409, Problem(type="/problems/idempotency-key-in-flight"), Kind.UNEXPECTED),
        (REPLAY, 409, None, Kind.UNEXPECTED),
        (NEW, 409, IN_FLIGHT, Kind.CLIENT_ERROR),  # a fresh key cannot be in flight
        (NEW, 503, Problem(outcome="not_written"), Kind.NOT_WRITTEN),
        (NEW, 503, Problem(outcome="unknown", order_id="o9"), Kind.OUTCOME_UNKNOWN),
        (REPLAY, 503, Problem(outcome="not_written"), Kind.NOT_WRITTEN),
        (NEW, 503, Problem(), Kind.SERVER_ERROR),
        (NEW, 500, Problem(outcome="unknown"), Kind.SERVER_ERROR),
    ],
)
def test_the_lifecycles_answers_are_judged_by_their_problem_members(
    planned: PlannedRequest, status: int, problem: Problem | None, kind: Kind
) -> None:
    """Catches a 409 for a replay still in flight counted as an error, a 503 that says what
    became of the write lumped with plain 5xx, and a 409 without Retry-After let through."""
    assert classify(planned, status, None, False, problem)[0] is kind


def test_only_a_sent_new_order_behind_a_lost_answer_may_exist() -> None:
    """Catches refused connections (nothing sent) and replays (their order is known) queued
    for resolution, and a 503 `not_written` treated as maybe written."""

    def outcome(planned: PlannedRequest, kind: Kind, sent: bool = True) -> Outcome:
        return Outcome(planned, kind, None, 0.1, 0.0, sent=sent)

    assert outcome(NEW, Kind.OUTCOME_UNKNOWN).maybe_written
    assert outcome(NEW, Kind.TIMEOUT).maybe_written
    assert outcome(NEW, Kind.SERVER_ERROR).maybe_written
    assert outcome(NEW, Kind.UNEXPECTED).maybe_written  # e.g. a 2xx without an order id
    assert not outcome(NEW, Kind.CONNECTION, sent=False).maybe_written
    assert not outcome(NEW, Kind.NOT_WRITTEN).maybe_written
    assert not outcome(NEW, Kind.CLIENT_ERROR).maybe_written
    assert not outcome(REPLAY, Kind.TIMEOUT).maybe_written


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("1", 1.0),
        ("0", 0.0),
        (" 2.5 ", 2.5),
        ("-4", 0.0),
        ("3600", 10.0),
        ("Tue, 01 Dec 2026 10:00:03 GMT", 3.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date_and_bounded(
    header: str | None, seconds: float | None
) -> None:
    """Catches an HTTP-date or a huge value crashing or stalling the run."""
    now = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds(header, now=now) == seconds


def test_a_retry_waits_as_told_but_never_spins() -> None:
    """Catches `Retry-After: 0` replaced by the default (an `or` on a float) and a zero wait
    that would let a resolution loop hammer the api."""
    assert retry_wait(0.0) == 0.05
    assert retry_wait(0.3) == 0.3
    assert retry_wait(None) == 1.0
    assert retry_wait(None, 0.5) == 0.5
