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
    )
    op.add_column("orders", sa.Column("rejection_reason", sa.String(32), nullable=True))
    op.add_column("orders", sa.Column("reserved", sa.Boolean(), nullable=True))
    op.execute(
        "ALTER TABLE orders DROP CONSTRAINT ck_orders_status, "
        f"ADD CONSTRAINT ck_orders_status CHECK (status IN ({STATUSES})) NOT VALID"
    )
    op.execute(
        "ALTER TABLE orders ADD CONSTRAINT ck_orders_rejection_reason "
        "CHECK (rejection_reason IS NULL OR rejection_reason IN ('out_of_stock')) NOT VALID"
    )
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
