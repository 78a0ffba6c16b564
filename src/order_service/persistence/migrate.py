"""`order-service migrate`: Alembic `upgrade head`, configured from Settings (no alembic.ini).

Migrations connect like every process does (`persistence.connect`): a multi-host DSN reaches
whichever host takes writes. Each statement waits at most `MIGRATION_LOCK_TIMEOUT` for a lock,
so a migration behind a long transaction fails fast instead of queueing every request behind
its lock (docs/migrations.md).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_TIMEOUT = "3s"


def alembic_config(postgres_dsn: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Only the dialect is read from the URL (offline SQL); connections use the DSN itself.
    cfg.set_main_option("sqlalchemy.url", "postgresql+asyncpg://")
    cfg.attributes["postgres_dsn"] = postgres_dsn
    cfg.attributes["lock_timeout"] = MIGRATION_LOCK_TIMEOUT
    return cfg


def upgrade_to_head(postgres_dsn: str) -> None:
    command.upgrade(alembic_config(postgres_dsn), "head")


def upgrade_to(postgres_dsn: str, revision: str) -> None:
    command.upgrade(alembic_config(postgres_dsn), revision)
