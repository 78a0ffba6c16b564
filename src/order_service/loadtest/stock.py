"""The run's stock-managed item: its stock is set with `PUT /stock/{item}` before the load,
and what the reply said is kept, so `--verify` can check the item's books afterwards."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from order_service.loadtest.client import put_stock
from order_service.loadtest.options import LoadOptions


@dataclass(frozen=True)
class ManagedStock:
    item: str
    stock_set: int
    share: float
    # PUT /stock keeps `reserved` (units held by confirmed orders placed before the run): the
    # books add this run's confirmed units to it.
    reserved_at_start: int

    def as_dict(self) -> dict[str, object]:
        return {
            "item": self.item,
            "stock_set": self.stock_set,
            "share": self.share,
            "reserved_at_start": self.reserved_at_start,
        }


async def prepare_stock(
    session: aiohttp.ClientSession, options: LoadOptions
) -> ManagedStock | None:
    """Raises `client.SetupError` when the stock cannot be set."""
    if options.stock is None or options.managed_item is None:
        return None
    level = await put_stock(session, options, options.managed_item, options.stock)
    return ManagedStock(
        options.managed_item, options.stock, options.managed_share or 0.0, level.reserved
    )
