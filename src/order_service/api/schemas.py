"""Wire shapes of the HTTP API (what clients send and get), separate from tables and domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, field_validator

from order_service.domain.order import (
    ITEM_MAX_LENGTH,
    QUANTITY_MAX,
    QUANTITY_MIN,
    OrderStatus,
    RejectionReason,
)


def _whole_number(value: object) -> object:
    # JSON Schema's "integer" (what our OpenAPI publishes) includes 2.0: take it as 2. Strings,
    # booleans and 2.5 stay refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class OrderIn(BaseModel):
    """The seed's body: `{"item": "book", "quantity": 2}`."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"item": "book", "quantity": 2}]}
    )

    item: Annotated[str, Field(min_length=1, max_length=ITEM_MAX_LENGTH)]
    quantity: Annotated[
        StrictInt, Field(ge=QUANTITY_MIN, le=QUANTITY_MAX), BeforeValidator(_whole_number)
    ]

    @field_validator("item")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL: refuse it here rather than fail at the INSERT.
            raise ValueError("must not contain NUL characters")
        return value


class OrderOut(BaseModel):
    id: UUID
    item: str
    quantity: int
    status: OrderStatus
    rejection_reason: RejectionReason | None = Field(
        default=None, description="Why a REJECTED order was rejected; null otherwise."
    )
    created_at: datetime
    updated_at: datetime


class SeedOrderOut(BaseModel):
    """`POST /order`'s reply, kept as the seed had it, plus the order's fields."""

    message: str = "Order placed successfully"
    order_id: UUID
    item: str
    quantity: int
    status: OrderStatus


class StockIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"available": 10}]})

    available: Annotated[StrictInt, Field(ge=0, le=1_000_000_000), BeforeValidator(_whole_number)]


class StockOut(BaseModel):
    item: str
    available: int = Field(description="Units that new orders can reserve.")
    reserved: int = Field(description="Units held by confirmed orders.")


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None
    outcome: Literal["not_written", "unknown"] | None = Field(
        default=None,
        description=(
            "On a 503 to a write: `not_written` — nothing was committed, nor will be; "
            "`unknown` — the commit was sent and its answer lost: retry with the same "
            "Idempotency-Key, or GET /orders/{order_id}."
        ),
    )
    order_id: UUID | None = Field(
        default=None, description="With outcome `unknown`: the order that may exist."
    )
