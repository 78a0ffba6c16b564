"""Housekeeping that keeps up: an index to prune the inbox by age, and autovacuum tuned for
the tables that churn (outbox rows and idempotency keys are deleted in bulk every minute).

Online: the index is built CONCURRENTLY; storage parameters take a brief lock only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Vacuum after 2 % of the rows changed (default 20 %): on a table that is mostly deleted rows,
# the default lets dead tuples pile up to many times the live ones.
HOT_TABLES = ("outbox", "inbox", "idempotency_keys", "orders")
AUTOVACUUM = (
    "autovacuum_vacuum_scale_factor = 0.02, "
    "autovacuum_vacuum_insert_scale_factor = 0.05, "
    "autovacuum_analyze_scale_factor = 0.02"
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_inbox_processed_at",
            "inbox",
            ["processed_at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )
    for table in HOT_TABLES:
        op.execute(f"ALTER TABLE {table} SET ({AUTOVACUUM})")


def downgrade() -> None:
    for table in HOT_TABLES:
        op.execute(
            f"ALTER TABLE {table} RESET (autovacuum_vacuum_scale_factor, "
            "autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor)"
        )
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_inbox_processed_at", "inbox", postgresql_concurrently=True, if_exists=True
        )
