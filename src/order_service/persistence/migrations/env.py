"""Alembic environment: runs migrations over asyncpg (the only driver this project ships)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from order_service.persistence import connect as connecting
from order_service.persistence.dsn import parse_dsn
from order_service.persistence.tables import metadata

config = context.config
CONNECT_TIMEOUT_S = 10.0


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    dsn = parse_dsn(config.attributes["postgres_dsn"])
    server_settings = {
        "application_name": "order-service-migrate",
        "lock_timeout": config.attributes.get("lock_timeout", "500ms"),
    }

    async def creator() -> Any:
        return await connecting.connect(
            dsn, timeout=CONNECT_TIMEOUT_S, server_settings=server_settings
        )

    engine = create_async_engine("postgresql+asyncpg://", async_creator=creator)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
