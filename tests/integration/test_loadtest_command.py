"""`order-service loadtest` against a tiny real HTTP server that implements the API contract
in memory (DESIGN.md §3), started in a thread by each test."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from aiohttp import web
from typer.testing import CliRunner

from order_service.devstack.ports import free_port
from order_service.loadtest.command import loadtest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeOrderApi:
    """Orders confirm `confirm_after_s` after creation; every `lose_every`-th one is forgotten."""

    confirm_after_s: float = 0.05
    lose_every: int = 0
    token: str | None = None
    fail_every: int = 0  # answer 500
    stall_every: int = 0  # answer after 2 s, beyond the client's timeout in these tests
    # The lifecycle's answers: every n-th new order is committed but answered 503 "unknown",
    # or refused 503 "not_written"; a replay's first try meets its key "still in flight".
    unknown_every: int = 0
    not_written_every: int = 0
    busy_replays: bool = False
    forget_cancels: bool = False  # answer a cancel 200 CANCELLED without cancelling
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, tuple[bytes, bytes, int]] = field(default_factory=dict)
    created: int = 0
    new_orders: int = 0
    busy_keys: set[str] = field(default_factory=set)
    _calls: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/orders", self.post_orders)
        app.router.add_post("/order", self.post_order)
        app.router.add_get("/orders/{id}", self.get_order)
        app.router.add_post("/orders/{id}/cancel", self.cancel_order)
        return app

    @staticmethod
    def problem(
        status: int,
        title: str,
        headers: dict[str, str] | None = None,
        **members: object,
    ) -> web.Response:
        body = json.dumps({"type": "about:blank", "title": title, "status": status, **members})
        return web.Response(
            status=status, text=body, content_type="application/problem+json", headers=headers
        )

    def _authorised(self, request: web.Request) -> bool:
        return self.token is None or request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _create(self, request: web.Request, seed_shape: bool) -> web.Response:
        if not self._authorised(request):
            return self.problem(401, "Unauthorized")
        call = next(self._calls)
        if self.fail_every and call % self.fail_every == 0:
            return self.problem(500, "Internal Server Error")
        if self.stall_every and call % self.stall_every == 0:
            await asyncio.sleep(2.0)
        raw = await request.read()
        key = request.headers.get("Idempotency-Key")
        if key and key in self.keys and self.busy_replays and key not in self.busy_keys:
            self.busy_keys.add(key)
            return self.problem(
                409,
                "A request with this Idempotency-Key is still in progress",
                {"Retry-After": "0"},
                type="/problems/idempotency-key-in-flight",
            )
        if key and key in self.keys:
            first_raw, first_body, first_status = self.keys[key]
            if first_raw != raw:
                return self.problem(422, "Idempotency-Key reused with another body")
            return web.Response(
                status=first_status,
                body=first_body,
                content_type="application/json",
                headers={"Idempotency-Replayed": "true"},
            )
        try:
            data = json.loads(raw)
            item, quantity = data["item"], data["quantity"]
            valid = (
                isinstance(item, str)
                and 1 <= len(item) <= 200
                and item.strip() != ""
                and type(quantity) is int
                and 1 <= quantity <= 10_000
            )
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            return self.problem(422, "Unprocessable Content")
        self.new_orders += 1
        unknown = self.unknown_every and self.new_orders % self.unknown_every == 0
        if not unknown and self.not_written_every and self.new_orders % self.not_written_every == 0:
            return self.problem(503, "Service unavailable", outcome="not_written")
        now = datetime.now(UTC).isoformat()
        order = {
            "id": str(uuid.uuid4()),
            "item": item,
            "quantity": quantity,
            "status": "PENDING",
            "created_at": now,
            "updated_at": now,
        }
        self.created += 1
        if not (self.lose_every and self.created % self.lose_every == 0):
            self.orders[order["id"]] = {**order, "_born": time.monotonic()}
        if seed_shape:
            status, payload = 200, {"message": "Order placed successfully", "order_id": order["id"]}
        else:
            status, payload = 201, order
        body = json.dumps(payload).encode()
        if key:
            self.keys[key] = (raw, body, status)
        if unknown:  # committed, but the answer says only that it may have been
            return self.problem(503, "Service unavailable", outcome="unknown", order_id=order["id"])
        headers = {"Location": f"/orders/{order['id']}"} if not seed_shape else {}
        return web.Response(
            status=status, body=body, content_type="application/json", headers=headers
        )

    async def post_orders(self, request: web.Request) -> web.Response:
        return await self._create(request, seed_shape=False)

    async def post_order(self, request: web.Request) -> web.Response:
        return await self._create(request, seed_shape=True)

    async def get_order(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["id"])
        if order is None:
            return self.problem(404, "Not Found")
        if (
            order["status"] == "PENDING"
            and time.monotonic() - order["_born"] >= self.confirm_after_s
        ):
            order["status"] = "CONFIRMED"
        public = {k: v for k, v in order.items() if not k.startswith("_")}
        return web.json_response(public)

    async def cancel_order(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["id"])
        if order is None:
            return self.problem(404, "Not Found")
        public = {k: v for k, v in order.items() if not k.startswith("_")}
        if not self.forget_cancels:
            order["status"] = "CANCELLED"
        return web.json_response({**public, "status": "CANCELLED"})


@contextmanager
def serving(api: FakeOrderApi) -> Iterator[str]:
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(api.app(), access_log=None)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def run_cli(*args: str) -> tuple[int, dict[str, Any]]:
    app = typer.Typer()
    app.command()(loadtest)
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def test_closed_model_run_with_verify_reports_every_order_confirmed() -> None:
    api = FakeOrderApi()
    with serving(api) as url:
        code, summary = run_cli("--url", url, "--concurrency", "4", "--total", "40", "--verify")
    assert code == 0
    assert summary["requests"]["completed"] == 40
    assert summary["status_codes"] == {"201": 40}
    assert summary["outcomes"]["accepted"] == 40
    assert summary["verify"]["ok"] is True
    assert summary["verify"]["confirmed"] == 40
    assert summary["verify"]["drain_s"] >= 0
    assert sum(summary["errors"].values()) == 0


def test_verify_exits_non_zero_when_the_server_loses_an_accepted_order() -> None:
    api = FakeOrderApi(lose_every=7)
    with serving(api) as url:
        code, summary = run_cli(
            "--url",
            url,
            "--concurrency",
            "4",
            "--total",
            "30",
            "--verify",
            "--verify-timeout",
            "1",
        )
    assert code == 1
    assert summary["outcomes"]["accepted"] == 30
    assert summary["verify"]["ok"] is False
    assert summary["verify"]["states"] == {"CONFIRMED": 26, "MISSING": 4}
    assert summary["verify"]["drain_s"] is None
    assert len(summary["verify"]["failed_ids_sample"]) == 4


def test_verify_reports_orders_still_pending_at_the_deadline() -> None:
    api = FakeOrderApi(confirm_after_s=60)
    with serving(api) as url:
        code, summary = run_cli(
            "--url",
            url,
            "--concurrency",
            "2",
            "--total",
            "5",
            "--verify",
            "--verify-timeout",
            "0.5",
        )
    assert code == 1
    assert summary["verify"]["states"] == {"PENDING": 5}
    assert summary["verify"]["timed_out"] is True


def test_open_model_with_replays_and_invalid_bodies_judges_every_response() -> None:
    api = FakeOrderApi()
    with serving(api) as url:
        code, summary = run_cli(
            "--url",
            url,
            "--rate",
            "200",
            "--duration",
            "1.5",
            "--replay-ratio",
            "0.2",
            "--invalid-ratio",
            "0.2",
            "--seed",
            "7",
            "--verify",
        )
    assert code == 0
    outcomes = summary["outcomes"]
    assert outcomes["replayed"] > 20
    assert outcomes["rejected_invalid"] > 20
    assert outcomes["accepted"] == len(api.orders)
    assert sum(summary["errors"].values()) == 0
    assert 250 <= summary["requests"]["completed"] <= 300
    assert summary["verify"]["confirmed"] == outcomes["accepted"]


def test_the_seed_endpoint_counts_200_with_an_order_id_as_accepted() -> None:
    api = FakeOrderApi()
    with serving(api) as url:
        code, summary = run_cli(
            "--url", url, "--endpoint", "order", "--total", "12", "--concurrency", "3", "--verify"
        )
    assert code == 0
    assert summary["status_codes"] == {"200": 12}
    assert summary["target"].endswith("/order")
    assert summary["verify"]["confirmed"] == 12


def test_the_bearer_token_is_sent_and_a_refused_run_exits_3() -> None:
    api = FakeOrderApi(token="s3cret")
    with serving(api) as url:
        refused, without = run_cli("--url", url, "--total", "5", "--concurrency", "1")
        accepted, with_token = run_cli(
            "--url", url, "--total", "5", "--concurrency", "1", "--token", "s3cret"
        )
    assert refused == 3
    assert without["errors"]["4xx"] == 5
    assert without["status_codes"] == {"401": 5}
    assert accepted == 0
    assert with_token["outcomes"]["accepted"] == 5


def test_server_errors_and_timeouts_are_counted_by_kind() -> None:
    api = FakeOrderApi(fail_every=5, stall_every=7)
    with serving(api) as url:
        code, summary = run_cli(
            "--url", url, "--total", "35", "--concurrency", "5", "--timeout", "0.3"
        )
    assert code == 0
    assert summary["errors"]["5xx"] == 7
    assert summary["errors"]["timeout"] == 4  # calls 7, 14, 21, 28 (35 is a 500 first)
    assert summary["outcomes"]["accepted"] == 24


def test_an_unreachable_target_is_reported_as_connection_errors() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, summary = run_cli("--url", url, "--total", "6", "--concurrency", "2")
    assert code == 3
    assert summary["errors"]["connection"] == 6
    assert summary["outcomes"]["accepted"] == 0


def test_plot_writes_an_html_page_with_an_inline_svg_chart(tmp_path: Path) -> None:
    api = FakeOrderApi()
    target = tmp_path / "latency.html"
    with serving(api) as url:
        code, summary = run_cli(
            "--url", url, "--rate", "50", "--duration", "2", "--plot", str(target)
        )
    assert code == 0
    assert summary["plot"] == str(target)
    page = target.read_text()
    assert "<svg" in page
    assert page.count("<polyline") == 3


def _seed_script(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "order" / "load_test_random_data.py"),
            "--url",
            url,
            "--json",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_the_seed_script_fires_ten_orders_every_two_seconds_at_post_order() -> None:
    api = FakeOrderApi()
    with serving(api) as url:
        process = _seed_script(url, "--duration", "2.5")
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["target"].endswith("/order")
    assert summary["status_codes"] == {"200": 20}
    assert summary["model"] == "open, 5 orders/s, bursts of 10"


def test_ctrl_c_prints_the_summary_so_far_and_exits_130() -> None:
    api = FakeOrderApi()
    with serving(api) as url:
        process = _seed_script(url, "--rate", "50", "--burst", "1", "--duration", "60")
        # Interrupted once it is sending (its start-up can take seconds on a busy machine).
        deadline = time.monotonic() + 30
        while api.created < 40 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] is True
    assert summary["requests"]["completed"] > 20
    assert summary["elapsed_s"] < 10


def test_a_replay_still_in_flight_is_asked_again_after_retry_after_and_is_no_error() -> None:
    """Catches a 409 for a key still in flight counted as a 4xx error, and a client that
    gives up instead of asking again after Retry-After (every replay would stay unanswered)."""
    api = FakeOrderApi(busy_replays=True)
    with serving(api) as url:
        code, summary = run_cli(
            "--url", url, "--concurrency", "4", "--total", "60", "--replay-ratio", "0.3",
            "--seed", "3", "--verify",
        )  # fmt: skip
    assert code == 0, summary
    outcomes = summary["outcomes"]
    assert outcomes["replayed"] > 5
    # The first replay of each key met a 409 and was asked again: a replay in the end.
    assert outcomes["replay_in_flight"] == len(api.busy_keys) > 5
    assert outcomes["replayed"] >= outcomes["replay_in_flight"]
    assert sum(summary["errors"].values()) == 0
    assert summary["status_codes"]["409"] == outcomes["replay_in_flight"]
    assert summary["requests"]["completed"] == 60 + outcomes["replay_in_flight"]


@pytest.mark.parametrize("replay_ratio", ["0", "0.2"], ids=["by-get", "by-key"])
def test_verify_resolves_lost_answers_and_counts_refusals_as_nothing_created(
    replay_ratio: str,
) -> None:
    """Catches a 503 "unknown" whose order is never looked for (it would be neither verified
    nor counted), a 503 "not_written" taken for a lost order, and both counted as errors.
    Without keys the 503 names the order and a GET tells; with keys the retry replays."""
    api = FakeOrderApi(unknown_every=4, not_written_every=5)
    with serving(api) as url:
        code, summary = run_cli(
            "--url", url, "--concurrency", "4", "--total", "60", "--replay-ratio", replay_ratio,
            "--seed", "8", "--verify",
        )  # fmt: skip
    assert code == 0, summary
    outcomes, verify = summary["outcomes"], summary["verify"]
    assert outcomes["outcome_unknown"] >= 5 and outcomes["not_written"] >= 4
    assert sum(summary["errors"].values()) == 0
    resolved = verify["resolved"]
    assert resolved["asked"] == resolved["created"] == outcomes["outcome_unknown"]
    assert verify["expected"] == outcomes["accepted"] + outcomes["outcome_unknown"]
    assert verify["expected"] == len(api.orders)
    assert verify["ok"] is True


def test_verify_fails_when_a_cancel_answered_200_did_not_cancel() -> None:
    """A server that answers a cancel 200 CANCELLED and forgets it: catches --verify taking
    the answer at its word instead of reading the order's final status."""
    api = FakeOrderApi(forget_cancels=True)
    with serving(api) as url:
        code, summary = run_cli(
            "--url", url, "--concurrency", "4", "--total", "40", "--cancel-ratio", "0.5",
            "--cancel-delay", "0", "--seed", "2", "--verify", "--verify-timeout", "5",
        )  # fmt: skip
    assert code == 1
    cancels, verify = summary["cancels"], summary["verify"]
    assert cancels["outcomes"]["cancelled"] == cancels["orders"] > 5
    assert verify["settled"] == verify["expected"]  # every order settled: only the cancels fail
    assert verify["cancellations"]["ok"] is False
    assert verify["problems"] == [
        f"{cancels['orders']} orders: cancel answered cancelled but the order ended CONFIRMED"
    ]


def test_stock_that_cannot_be_set_stops_the_run_before_any_order_with_exit_4() -> None:
    """Catches a run that goes on when PUT /stock failed (its books would be meaningless)."""
    api = FakeOrderApi()  # no /stock route: 404
    app = typer.Typer()
    app.command()(loadtest)
    with serving(api) as url:
        result = CliRunner().invoke(app, ["--url", url, "--stock", "5", "--total", "3"])
    assert result.exit_code == 4
    assert "could not set up the run" in result.output
    assert api.created == 0
