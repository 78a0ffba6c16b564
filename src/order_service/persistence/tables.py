"""The tables, as SQLModel models. Alembic migrations create them; this is their typed mirror.

These are storage shapes only: the API, the domain and the event payload each have their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


def _ts(*, nullable: bool = False, default_now: bool = True) -> Any:
    return Field(
        sa_column=Column(
            DateTime(timezone=True),
            nullable=nullable,
            server_default=func.now() if default_now else None,
        )
    )


class OrderRow(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("quantity BETWEEN 1 AND 10000", name="ck_orders_quantity"),
        CheckConstraint(
            "status IN ('PENDING', 'CONFIRMED', 'REJECTED', 'CANCELLED')", name="ck_orders_status"
        ),
        CheckConstraint(
            "rejection_reason IS NULL OR rejection_reason IN ('out_of_stock')",
            name="ck_orders_rejection_reason",
        ),
        CheckConstraint("length(item) BETWEEN 1 AND 200", name="ck_orders_item"),
        Index("ix_orders_status_id", "status", "id"),
        Index("ix_orders_owner_id", "owner", "id"),
        # The worker's first come, first served: an item's PENDING orders in placement order.
        Index(
            "ix_orders_pending_item_placed",
            "item",
            "placed_seq",
            postgresql_where=text("status = 'PENDING'"),
        ),
    )

    id: UUID = Field(primary_key=True)
    item: str = Field(sa_column=Column(String(200), nullable=False))
    quantity: int = Field(nullable=False)
    status: str = Field(sa_column=Column(String(16), nullable=False))
    rejection_reason: str | None = Field(default=None, sa_column=Column(String(32)))
    # Units taken from the item's stock by the worker (a cancellation gives them back).
    reserved: bool | None = Field(default=None, sa_column=Column(Boolean))
    # The principal that placed it (JWT `sub`, "anonymous" without auth); NULL before 0003.
    owner: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    # The order's place in line, from a sequence (CACHE 1) at insert: one committed before
    # another was sent has the smaller number. NULL for orders placed before 0005 (earlier).
    placed_seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, server_default=text("nextval('orders_placed_seq')")),
    )


class StockRow(SQLModel, table=True):
    """Stock of a managed item (G9: available >= 0, available + reserved set only by PUT)."""

    __tablename__ = "stock"
    __table_args__ = (
        CheckConstraint("available >= 0", name="ck_stock_available"),
        CheckConstraint("reserved >= 0", name="ck_stock_reserved"),
    )

    item: str = Field(sa_column=Column(String(200), primary_key=True))
    available: int = Field(nullable=False)
    reserved: int = Field(default=0, nullable=False)
    updated_at: datetime = _ts()


class IdempotencyKeyRow(SQLModel, table=True):
    """One per (principal, key); written in the same transaction as the order it created."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    principal: str = Field(sa_column=Column(Text, primary_key=True))
    idem_key: str = Field(sa_column=Column(String(255), primary_key=True))
    request_hash: str = Field(sa_column=Column(String(64), nullable=False))
    order_id: UUID = Field(nullable=False)
    status_code: int = Field(sa_column=Column(SmallInteger, nullable=False))
    response_body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = _ts()


class OutboxRow(SQLModel, table=True):
    """An event waiting for the relay. `lane` pins every event of one key to one relay at a time."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "lane",
            "id",
            postgresql_where=text("published_at IS NULL"),
        ),
        Index("ix_outbox_published_at", "published_at"),
        # 0006: room on each page for the row's published copy (a same-page update logs less).
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    event_id: UUID = Field(nullable=False, unique=True)
    aggregate_id: UUID = Field(nullable=False)
    topic: str = Field(sa_column=Column(Text, nullable=False))
    message_key: str = Field(sa_column=Column(Text, nullable=False))
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    headers: dict[str, str] = Field(sa_column=Column(JSONB, nullable=False))
    lane: int = Field(sa_column=Column(SmallInteger, nullable=False))
    created_at: datetime = _ts()
    published_at: datetime | None = _ts(nullable=True, default_now=False)


class InboxRow(SQLModel, table=True):
    """Event ids the worker has applied: the effect and this row commit together (G5)."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_processed_at", "processed_at"),)

    event_id: UUID = Field(primary_key=True)
    order_id: UUID = Field(nullable=False)
    processed_at: datetime = _ts()
