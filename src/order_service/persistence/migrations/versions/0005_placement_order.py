"""First come, first served: each order's place in line, given by the database at insert.

`orders.placed_seq` comes from a sequence with CACHE 1, so nextval is monotonic across every
session: an order committed before another was even sent has the smaller number — across api
instances too, unlike time-ordered UUIDs within one millisecond or the clocks of two hosts. The
worker settles a managed item's PENDING orders in this order, finding the earlier ones through
a partial index of PENDING orders by (item, placed_seq) (persistence/order_settlement.py).

Online: a sequence; a nullable column, then a default that only new rows take (no rewrite;
the previous release's inserts name no `placed_seq` and get a number from the default too).
Orders still PENDING from before are numbered after that commit, in their own transaction,
below every number the sequence gives (negative, in id order — they were placed first): only
their rows are locked, briefly. Settled orders keep NULL (the worker never looks them up).
The index is built CONCURRENTLY.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING_BY_PLACE = "ix_orders_pending_item_placed"
# Pending orders placed before this migration: -k … -1 in id (UUIDv7: time) order, so each
# sorts before every order numbered by the sequence (1, 2, …), which were all placed later.
NUMBER_WAITING_ORDERS = """
WITH waiting AS (
    SELECT id, row_number() OVER (ORDER BY id DESC) AS from_last
    FROM orders WHERE status = 'PENDING' AND placed_seq IS NULL
)
UPDATE orders o SET placed_seq = -w.from_last FROM waiting w WHERE o.id = w.id
"""


def upgrade() -> None:
    op.execute("CREATE SEQUENCE IF NOT EXISTS orders_placed_seq AS bigint CACHE 1")
    op.execute("ALTER TABLE orders ADD COLUMN IF NOT EXISTS placed_seq bigint")
    op.execute(
        "ALTER TABLE orders ALTER COLUMN placed_seq SET DEFAULT nextval('orders_placed_seq')"
    )
    op.execute("ALTER SEQUENCE orders_placed_seq OWNED BY orders.placed_seq")
    with op.get_context().autocommit_block():
        op.execute(NUMBER_WAITING_ORDERS)
        op.create_index(
            PENDING_BY_PLACE,
            "orders",
            ["item", "placed_seq"],
            postgresql_where=sa.text("status = 'PENDING'"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(PENDING_BY_PLACE, "orders", postgresql_concurrently=True, if_exists=True)
    op.drop_column("orders", "placed_seq")  # drops the sequence it owns
