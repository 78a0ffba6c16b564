"""Request fingerprints and the in-process in-flight guard of Idempotency-Key."""

from __future__ import annotations

import uuid

import pytest

from order_service.domain.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from order_service.persistence.order_writer import StoredResponse
from order_service.service.idempotency import InFlightKeys, check_replay, request_fingerprint


def test_the_fingerprint_ignores_key_order() -> None:
    a = request_fingerprint("POST", "/orders", {"item": "book", "quantity": 2})
    b = request_fingerprint("POST", "/orders", {"quantity": 2, "item": "book"})

    assert a == b


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/order", {"item": "book", "quantity": 2}),
        ("PUT", "/orders", {"item": "book", "quantity": 2}),
        ("POST", "/orders", {"item": "book", "quantity": 3}),
        ("POST", "/orders", {"item": "Book", "quantity": 2}),
    ],
)
def test_the_fingerprint_changes_with_method_path_or_body(
    method: str, path: str, body: dict[str, object]
) -> None:
    base = request_fingerprint("POST", "/orders", {"item": "book", "quantity": 2})

    assert request_fingerprint(method, path, body) != base


def test_a_replay_with_another_fingerprint_is_refused() -> None:
    stored = StoredResponse("abc", uuid.uuid4(), 201, b"{}")

    assert check_replay(stored, "abc") is stored
    with pytest.raises(IdempotencyKeyReused):
        check_replay(stored, "other")


def test_a_held_key_refuses_a_second_holder_until_released() -> None:
    keys = InFlightKeys()

    with keys.hold("alice", "k"):
        with pytest.raises(IdempotencyKeyInFlight), keys.hold("alice", "k"):
            pass
        with keys.hold("bob", "k"):  # another principal's key is another key
            pass
    with keys.hold("alice", "k"):
        pass
