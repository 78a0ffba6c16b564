"""`order-service migrate`: Alembic `upgrade head`, configured from Settings (no alembic.ini).

Migrations connect like every process does (`persistence.connect`): a multi-host DSN reaches
whichever host takes writes. Each statement waits at most `MIGRATION_LOCK_TIMEOUT` for a lock,
so a migration behind a long transaction fails fast instead of queueing every request behind
its lock (docs/migrations.md).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config

from order_service.persistence.dsn import parse_dsn

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Short: while an ALTER waits for its lock, every later query on the table waits behind it.
MIGRATION_LOCK_TIMEOUT = "500ms"


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


def upgrade_to(postgres_dsn: str, revision: str, *, retry_for_s: float = 0.0) -> None:
    """Upgrade to `revision`; with `retry_for_s`, retried as `migrate` does."""
    if retry_for_s:
        upgrade_with_retries(postgres_dsn, deadline_s=retry_for_s, revision=revision)
    else:
        command.upgrade(alembic_config(postgres_dsn), revision)


class MigrationFailed(Exception):
    """The database stayed unreachable, or a lock stayed taken, until the deadline."""


def _sqlstate(exc: BaseException) -> str:
    """The SQLSTATE behind SQLAlchemy's wrapping of an asyncpg error, if any."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if state:
            return str(state)
        seen = getattr(seen, "orig", None) or seen.__cause__
    return ""


def worth_retrying(exc: BaseException) -> bool:
    """Unreachable, or a statement that gave up waiting for its lock (lock_timeout, 55P03):
    the next attempt starts over from the last revision that committed."""
    return isinstance(exc, OSError | TimeoutError) or _sqlstate(exc) in ("55P03", "57P03")


def upgrade_with_retries(
    postgres_dsn: str,
    *,
    deadline_s: float,
    revision: str = "head",
    on_retry: Callable[[BaseException, float], None] = lambda exc, delay: None,
) -> None:
    """`upgrade revision`, retried with backoff until `deadline_s`; one MigrationFailed after."""
    stop_at = time.monotonic() + deadline_s
    delay = 0.2
    while True:
        try:
            command.upgrade(alembic_config(postgres_dsn), revision)
            return
        except Exception as exc:
            if not worth_retrying(exc) or time.monotonic() + delay > stop_at:
                where = parse_dsn(postgres_dsn).describe()
                raise MigrationFailed(
                    f"migrating PostgreSQL at {where} failed after {deadline_s:g}s: {exc}"
                ) from exc
            on_retry(exc, delay)
            time.sleep(delay)
            delay = min(5.0, delay * 2) * random.uniform(0.8, 1.0)
