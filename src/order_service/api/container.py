"""What the API's request handlers need, built once at start-up by `bootstrap`."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from order_service.api.auth import Authenticator
from order_service.api.readiness import Readiness
from order_service.config import Settings
from order_service.service.cancel_order import OrderCancellation
from order_service.service.place_order import OrderPlacement


@dataclass
class ApiContainer:
    settings: Settings
    pool: asyncpg.Pool
    placement: OrderPlacement
    cancellation: OrderCancellation
    authenticator: Authenticator
    readiness: Readiness
