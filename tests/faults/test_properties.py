"""Hypothesis properties over real API calls: the Idempotency-Key state machine, and validation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from tests.e2e.processes import Stack

items = st.text(min_size=1, max_size=200).filter(lambda s: s.strip() and "\x00" not in s)
quantities = st.integers(min_value=1, max_value=10_000)
bodies = st.fixed_dictionaries({"item": items, "quantity": quantities})


def idempotency_machine(base_url: str) -> type[RuleBasedStateMachine]:
    class IdempotencyKeys(RuleBasedStateMachine):
        keys = Bundle("keys")

        def __init__(self) -> None:
            super().__init__()
            self.client = httpx.Client(base_url=base_url, timeout=10)
            self.prefix = uuid.uuid4().hex  # keys of this run only
            self.accepted: dict[str, tuple[dict[str, Any], str]] = {}
            self.orders_before = self.count()

        def count(self) -> int:
            return int(self.client.get("/orders", params={"limit": 200}).json()["items"].__len__())

        def post(self, key: str, body: dict[str, Any]) -> httpx.Response:
            return self.client.post("/orders", json=body, headers={"Idempotency-Key": key})

        @rule(target=keys, body=bodies, n=st.integers(0, 10_000))
        def new_key(self, body: dict[str, Any], n: int) -> str:
            key = f"{self.prefix}-{n}"
            response = self.post(key, body)
            if key in self.accepted:
                first_body, first_id = self.accepted[key]
                if body == first_body:
                    assert response.status_code == 201 and response.json()["id"] == first_id
                else:
                    assert response.status_code == 422
            else:
                assert response.status_code == 201, response.text
                self.accepted[key] = (body, response.json()["id"])
            return key

        @rule(key=keys)
        def same_key_same_body_replays(self, key: str) -> None:
            body, order_id = self.accepted[key]
            response = self.post(key, body)
            assert response.status_code == 201
            assert response.headers["Idempotency-Replayed"] == "true"
            assert response.json()["id"] == order_id

        @rule(key=keys, body=bodies)
        def same_key_other_body_is_422(self, key: str, body: dict[str, Any]) -> None:
            first, _ = self.accepted[key]
            response = self.post(key, body)
            if body == first:
                assert response.status_code == 201
            else:
                assert response.status_code == 422
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["errors"][0]["field"] == "Idempotency-Key"

        @invariant()
        def one_order_per_accepted_key(self) -> None:
            ids = {order_id for _, order_id in self.accepted.values()}
            assert len(ids) == len(self.accepted)
            assert self.count() - self.orders_before == len(self.accepted)

        def teardown(self) -> None:
            self.client.close()

    return IdempotencyKeys


def test_idempotency_keys_replay_refuse_and_never_create_a_second_order(stack: Stack) -> None:
    api = stack.start("api")
    machine = idempotency_machine(api.url)
    machine.TestCase.settings = settings(
        max_examples=15,
        stateful_step_count=8,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    machine.TestCase().runTest()


invalid_bodies = st.one_of(
    st.fixed_dictionaries(
        {"item": st.sampled_from(["", "   ", "\t", "a\x00b", "x" * 201]), "quantity": quantities}
    ).map(lambda b: (b, "item")),
    st.fixed_dictionaries(
        {
            "item": items,
            "quantity": st.one_of(
                st.integers(max_value=0),
                st.integers(min_value=10_001),
                st.floats(allow_nan=False, allow_infinity=False).filter(
                    lambda f: not f.is_integer()
                ),
                st.text(max_size=5),
                st.booleans(),
                st.none(),
            ),
        }
    ).map(lambda b: (b, "quantity")),
)


def test_valid_orders_are_accepted_and_invalid_ones_get_422_naming_the_field(
    stack: Stack,
) -> None:
    api = stack.start("api")
    with httpx.Client(base_url=api.url, timeout=10) as client:

        @settings(max_examples=150, deadline=None, database=None)
        @given(body=bodies)
        def valid(body: dict[str, Any]) -> None:
            response = client.post("/orders", json=body)
            assert response.status_code == 201, response.text
            assert {k: response.json()[k] for k in body} == body

        @settings(max_examples=150, deadline=None, database=None)
        @given(case=invalid_bodies)
        def invalid(case: tuple[dict[str, Any], str]) -> None:
            body, field = case
            response = client.post("/orders", json=body)
            assert response.status_code == 422, (body, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert field in [e["field"] for e in response.json()["errors"]]

        valid()
        invalid()
