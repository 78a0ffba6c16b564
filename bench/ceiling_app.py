"""The framework ceiling: FastAPI validating the order body and answering 201, nothing more.

Served the way `order-service api` serves ours (uvicorn, uvloop, httptools, one worker, no
access log), so the gap between this and our API is the cost of our work, not of the stack.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import FastAPI
from pydantic import BaseModel, Field, StringConstraints

app = FastAPI(title="bench: ceiling")


class OrderIn(BaseModel):
    item: Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=200)]
    quantity: int = Field(ge=1, le=10_000)


class OrderOut(OrderIn):
    id: uuid.UUID
    status: str


@app.post("/orders", status_code=201)
async def create_order(order: OrderIn) -> OrderOut:
    return OrderOut(id=uuid.uuid4(), status="PENDING", item=order.item, quantity=order.quantity)
