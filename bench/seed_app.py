"""The seed's design, as a baseline: per request one SQLModel INSERT + COMMIT, then
`send_and_wait` to Kafka — the broker round-trip on the request path, no outbox; the
producer with aiokafka's defaults, as the seed's (acks=1, no idempotence).

Configured by BENCH_SEED_DSN, BENCH_SEED_BOOTSTRAP and BENCH_SEED_TOPIC (set by the bench).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from aiokafka import AIOKafkaProducer
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel import Field as ColumnField
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


class SeedOrder(SQLModel, table=True):
    __tablename__ = "seed_orders"

    id: int | None = ColumnField(default=None, primary_key=True)
    item: str
    quantity: int
    created_at: datetime = ColumnField(default_factory=lambda: datetime.now(UTC))


class OrderIn(BaseModel):
    item: str = Field(min_length=1, max_length=200)
    quantity: int = Field(ge=1, le=10_000)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = create_async_engine(os.environ["BENCH_SEED_DSN"])
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    # aiokafka's defaults, as the seed has them: acks=1, no idempotence.
    producer = AIOKafkaProducer(bootstrap_servers=os.environ["BENCH_SEED_BOOTSTRAP"])
    await producer.start()
    app.state.sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    app.state.producer = producer
    app.state.topic = os.environ["BENCH_SEED_TOPIC"]
    try:
        yield
    finally:
        await producer.stop()
        await engine.dispose()


app = FastAPI(title="bench: seed design", lifespan=lifespan)


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as s:
        yield s


@app.post("/order")
async def place_order(
    order: OrderIn, request: Request, db: Annotated[AsyncSession, Depends(session)]
) -> dict[str, Any]:
    row = SeedOrder(item=order.item, quantity=order.quantity)
    db.add(row)
    await db.commit()
    await db.refresh(row)
    event = {"order_id": row.id, "item": row.item, "quantity": row.quantity}
    await request.app.state.producer.send_and_wait(request.app.state.topic, orjson.dumps(event))
    return {"message": "Order placed successfully", "order_id": row.id, **event}
