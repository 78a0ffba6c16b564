"""The validated shape of one run, built from the command line."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from order_service.loadtest.schedule import HARD_MAX_DURATION_S, HARD_MAX_TOTAL

DEFAULT_DURATION_S = 30.0
DEFAULT_CONCURRENCY = 10
DEFAULT_MANAGED_SHARE = 0.5
MAX_STOCK = 1_000_000_000  # what PUT /stock accepts


class Endpoint(StrEnum):
    ORDERS = "orders"  # POST /orders -> 201, the full order
    ORDER = "order"  # POST /order -> 200, the seed's contract


class OptionError(ValueError):
    pass


@dataclass(frozen=True)
class LoadOptions:
    url: str = "http://127.0.0.1:8000"
    endpoint: Endpoint = Endpoint.ORDERS
    rate: float | None = None
    concurrency: int | None = None
    duration_s: float | None = None
    total: int | None = None
    ramp_up_s: float = 0.0
    burst: int = 1
    token: str | None = None
    replay_ratio: float = 0.0
    invalid_ratio: float = 0.0
    timeout_s: float = 10.0
    connections: int = 100
    max_in_flight: int = 10_000
    seed: int | None = None
    # A stock-managed item: its stock is set with PUT /stock before the run and
    # `managed_share` of the new orders are for it (DESIGN.md §3).
    stock: int | None = None
    managed_item: str | None = None
    managed_share: float | None = None
    cancel_ratio: float = 0.0
    cancel_delay_s: float = 0.25

    @property
    def manages_stock(self) -> bool:
        return self.stock is not None

    @property
    def open_model(self) -> bool:
        return self.rate is not None

    @property
    def post_url(self) -> str:
        return f"{self.url.rstrip('/')}/{self.endpoint.value}"

    def order_url(self, order_id: str) -> str:
        return f"{self.url.rstrip('/')}/orders/{order_id}"

    def cancel_url(self, order_id: str) -> str:
        return f"{self.order_url(order_id)}/cancel"

    def stock_url(self, item: str) -> str:
        return f"{self.url.rstrip('/')}/stock/{quote(item, safe='')}"

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


def build_options(**values: object) -> LoadOptions:
    """Apply the defaults that depend on each other, then refuse what cannot run."""
    options = LoadOptions(**values)  # type: ignore[arg-type]
    if options.rate is not None and options.concurrency is not None:
        raise OptionError("--rate (open model) and --concurrency (closed model) exclude each other")
    updates: dict[str, object] = {}
    if options.rate is None and options.concurrency is None:
        updates["concurrency"] = DEFAULT_CONCURRENCY
    if options.duration_s is None and options.total is None:
        updates["duration_s"] = DEFAULT_DURATION_S
    if options.stock is not None:
        # A fresh item per run keeps its books to this run's orders alone.
        if options.managed_item is None:
            updates["managed_item"] = f"loadtest-{uuid.uuid4().hex[:12]}"
        if options.managed_share is None:
            updates["managed_share"] = DEFAULT_MANAGED_SHARE
    if updates:
        options = LoadOptions(**{**options.__dict__, **updates})
    _check(options)
    return options


def _check(o: LoadOptions) -> None:
    if o.rate is not None and o.rate <= 0:
        raise OptionError("--rate must be positive")
    if o.concurrency is not None and o.concurrency < 1:
        raise OptionError("--concurrency must be at least 1")
    if o.duration_s is not None and not 0 < o.duration_s <= HARD_MAX_DURATION_S:
        raise OptionError(f"--duration must be in (0, {HARD_MAX_DURATION_S:.0f}] seconds")
    if o.total is not None and not 0 < o.total <= HARD_MAX_TOTAL:
        raise OptionError(f"--total must be in [1, {HARD_MAX_TOTAL}]")
    for name, ratio in (("--replay-ratio", o.replay_ratio), ("--invalid-ratio", o.invalid_ratio)):
        if not 0.0 <= ratio <= 1.0:
            raise OptionError(f"{name} must be between 0 and 1")
    if o.replay_ratio + o.invalid_ratio > 1.0:
        raise OptionError("--replay-ratio plus --invalid-ratio must not exceed 1")
    _check_lifecycle(o)
    if o.ramp_up_s < 0:
        raise OptionError("--ramp-up must not be negative")
    if o.timeout_s <= 0 or o.connections < 1 or o.burst < 1:
        raise OptionError("--timeout, --connections and --burst must be positive")
    if not o.url.startswith(("http://", "https://")):
        raise OptionError("--url must start with http:// or https://")


def _check_lifecycle(o: LoadOptions) -> None:
    if o.stock is None and (o.managed_item is not None or o.managed_share is not None):
        raise OptionError("--managed-item and --managed-share need --stock (the units to set)")
    if o.stock is not None and not 0 <= o.stock <= MAX_STOCK:
        raise OptionError(f"--stock must be in [0, {MAX_STOCK:_}] units")
    if o.managed_item is not None and not (
        0 < len(o.managed_item) <= 200
        and o.managed_item.strip()
        and not set(o.managed_item) & {"/", "\x00"}
    ):
        # A "/" cannot travel in the path of PUT /stock/{item}, even URL-encoded.
        raise OptionError("--managed-item must be 1-200 characters, not blank, without '/'")
    if o.managed_share is not None and not 0.0 <= o.managed_share <= 1.0:
        raise OptionError("--managed-share must be between 0 and 1")
    if not 0.0 <= o.cancel_ratio <= 1.0:
        raise OptionError("--cancel-ratio must be between 0 and 1")
    if not 0.0 <= o.cancel_delay_s <= 60.0:
        raise OptionError("--cancel-delay must be between 0 and 60 seconds")
