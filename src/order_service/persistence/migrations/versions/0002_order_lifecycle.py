"""Order lifecycle: stock per item, rejection reason, reservation flag, CANCELLED.

Online (expand only, docs/migrations.md): new nullable columns (no table rewrite), a new table,
and the status CHECK replaced NOT VALID then validated (the scan takes no lock that blocks
reads or writes). Every statement runs under the migration's lock_timeout.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'PENDING', 'CONFIRMED', 'REJECTED', 'CANCELLED'"


def upgrade() -> None:
    # Every step may run again: after a lock timeout `migrate` retries the whole migration,
    # and the validation below commits on its own.
    op.create_table(
        "stock",
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False, server_default="0"),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        # G9, enforced by the database too: no oversell can ever commit.
        sa.CheckConstraint("available >= 0", name="ck_stock_available"),
        sa.CheckConstraint("reserved >= 0", name="ck_stock_reserved"),
        if_not_exists=True,
    )
    # One ALTER: one brief ACCESS EXCLUSIVE lock, no rewrite (nullable columns, NOT VALID).
    op.execute(
        "ALTER TABLE orders "
        "ADD COLUMN IF NOT EXISTS rejection_reason varchar(32), "
        "ADD COLUMN IF NOT EXISTS reserved boolean, "
        "DROP CONSTRAINT IF EXISTS ck_orders_status, "
        f"ADD CONSTRAINT ck_orders_status CHECK (status IN ({STATUSES})) NOT VALID, "
        "DROP CONSTRAINT IF EXISTS ck_orders_rejection_reason, "
        "ADD CONSTRAINT ck_orders_rejection_reason "
        "CHECK (rejection_reason IS NULL OR rejection_reason IN ('out_of_stock')) NOT VALID"
    )
    # Validation scans the table: in a transaction of its own, under SHARE UPDATE EXCLUSIVE
    # (reads and writes go on), not inside the one that holds the ALTER's ACCESS EXCLUSIVE.
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE orders VALIDATE CONSTRAINT ck_orders_status")
        op.execute("ALTER TABLE orders VALIDATE CONSTRAINT ck_orders_rejection_reason")


def downgrade() -> None:
    op.execute("ALTER TABLE orders DROP CONSTRAINT ck_orders_rejection_reason")
    op.execute(
        "ALTER TABLE orders DROP CONSTRAINT ck_orders_status, ADD CONSTRAINT ck_orders_status "
        "CHECK (status IN ('PENDING', 'CONFIRMED', 'REJECTED')) NOT VALID"
    )
    op.drop_column("orders", "reserved")
    op.drop_column("orders", "rejection_reason")
    op.drop_table("stock")
