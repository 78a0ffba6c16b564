"""`order-service migrate`: Alembic `upgrade head`, configured from Settings (no alembic.ini)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(postgres_dsn: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", postgres_dsn.replace("%", "%%"))
    return cfg


def upgrade_to_head(postgres_dsn: str) -> None:
    command.upgrade(alembic_config(postgres_dsn), "head")
