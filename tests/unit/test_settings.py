"""Settings: the seed's names, derived values, and refusals of unsafe combinations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from order_service.config import Settings


def test_the_seeds_environment_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_DSN", "postgresql+asyncpg://u:p@db:5432/orderdb")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "redpanda:9092")
    monkeypatch.setenv("SERVICE_NAME", "orders-eu")

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert settings.kafka_bootstrap_servers == "redpanda:9092"
    assert settings.service_name == "orders-eu"
    assert settings.asyncpg_dsn == "postgresql://u:p@db:5432/orderdb"
    assert settings.kafka_order_topic == "orders.created"
    assert settings.dlq_topic == "orders.created.dlq"
    assert settings.kafka_enable_idempotence is True


def test_an_invalid_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "lots")

    with pytest.raises(ValidationError, match="db_pool_max_size"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_auth_enabled_without_its_issuer_is_refused() -> None:
    with pytest.raises(ValidationError, match="AUTH_ISSUER"):
        Settings(_env_file=None, auth_enabled=True)  # type: ignore[call-arg]


def test_production_without_auth_is_refused() -> None:
    with pytest.raises(ValidationError, match="AUTH_ENABLED"):
        Settings(_env_file=None, environment="prod")  # type: ignore[call-arg]


def test_an_idempotency_ttl_under_a_day_is_refused() -> None:
    with pytest.raises(ValidationError, match="idempotency_ttl_hours"):
        Settings(_env_file=None, idempotency_ttl_hours=1)  # type: ignore[call-arg]


def test_jwks_keys_that_go_stale_before_they_are_due_for_refresh_are_refused() -> None:
    with pytest.raises(ValidationError, match="AUTH_JWKS_MAX_STALE_S"):
        Settings(  # type: ignore[call-arg]
            _env_file=None, auth_jwks_max_age_s=600, auth_jwks_max_stale_s=300
        )
