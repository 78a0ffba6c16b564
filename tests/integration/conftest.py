"""Fixtures for the API tests: the real app, in-process, over the test's own database."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from order_service.bootstrap import api_app
from order_service.config import Settings
from order_service.devstack.kafka import KafkaBroker
from order_service.devstack.ports import free_port
from tests.jwt_helpers import AUDIENCE, ISSUER


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """An Apache Kafka node of this test's own, started, to kill, freeze and restart."""
    broker = KafkaBroker(tmp_path / "kafka", port=free_port(), log_path=tmp_path / "kafka.log")
    broker.start()
    yield broker
    broker.signal(signal.SIGCONT)
    broker.destroy()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = api_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@contextlib.asynccontextmanager
async def secured_client(settings: Settings, jwks_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app in-process with auth on, trusting the test issuer's keys at `jwks_url`."""
    secured = settings.model_copy(
        update={
            "auth_enabled": True,
            "auth_issuer": ISSUER,
            "auth_audience": AUDIENCE,
            "auth_jwks_url": jwks_url,
        }
    )
    application = api_app(secured)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://t"
        ) as http,
    ):
        yield http
