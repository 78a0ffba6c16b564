"""Stock endpoints: set an item's available units (scope stock:write) and read them."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Path, Request
from starlette.responses import Response

from order_service.api.deadline import database_call
from order_service.api.deps import ContainerDep, ReaderDep, StockWriterDep
from order_service.api.schemas import Problem, StockIn, StockOut
from order_service.domain.order import ITEM_MAX_LENGTH
from order_service.domain.stock import Stock
from order_service.observability.metrics import STOCK_UPDATES
from order_service.persistence.stock_queries import get_stock, set_stock

router = APIRouter(tags=["stock"])

Item = Annotated[
    str,
    Path(
        min_length=1,
        max_length=ITEM_MAX_LENGTH,
        pattern=r"^[^\x00]*\S[^\x00]*$",
        description="The item, as orders name it (URL-encoded).",
    ),
]
_PROBLEMS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (401, 403, 404, 422, 503)
}


def _json(stock: Stock) -> Response:
    body = {"item": stock.item, "available": stock.available, "reserved": stock.reserved}
    return Response(orjson.dumps(body), media_type="application/json")


@router.put(
    "/stock/{item}",
    response_model=StockOut,
    responses=_PROBLEMS,
    summary="Set how many units of an item are available (the item becomes stock-managed)",
    description=(
        "Orders of a stock-managed item are confirmed while units are available and rejected "
        "`out_of_stock` otherwise; `reserved` (units held by confirmed orders) is kept."
    ),
)
async def put_stock(
    item: Item, body: StockIn, request: Request, container: ContainerDep, _: StockWriterDep
) -> Response:
    async with database_call(request, container.settings, "stock"):
        stock = await set_stock(
            container.pool, item, body.available, timeout_s=container.settings.db_connect_timeout_s
        )
    STOCK_UPDATES.inc()
    return _json(stock)


@router.get(
    "/stock/{item}",
    response_model=StockOut,
    responses=_PROBLEMS,
    summary="An item's stock: available and reserved units (404: not stock-managed)",
)
async def read_stock(
    item: Item, request: Request, container: ContainerDep, _: ReaderDep
) -> Response:
    async with database_call(request, container.settings, "stock"):
        stock = await get_stock(
            container.pool, item, timeout_s=container.settings.db_connect_timeout_s
        )
    if stock is None:
        raise HTTPException(404, f"item {item!r} is not stock-managed")
    return _json(stock)
