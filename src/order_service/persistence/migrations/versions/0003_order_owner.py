"""Per-owner orders: who placed each order (DESIGN.md §3), and the index its reads use.

Online: a nullable column (no rewrite, no default to backfill) and an index built
CONCURRENTLY outside the migration's transaction (no lock that blocks writes). Orders placed
before this migration have no owner: only `orders:admin` sees them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE orders ADD COLUMN IF NOT EXISTS owner text")  # may run again
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_orders_owner_id",
            "orders",
            ["owner", "id"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_orders_owner_id", "orders", postgresql_concurrently=True, if_exists=True)
    op.drop_column("orders", "owner")
