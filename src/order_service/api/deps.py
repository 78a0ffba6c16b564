"""Typed dependencies for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from order_service.api.auth import SCOPE_READ, SCOPE_STOCK_WRITE, SCOPE_WRITE, Principal
from order_service.api.container import ApiContainer
from order_service.service.idempotency import MAX_KEY_LENGTH


def get_container(request: Request) -> ApiContainer:
    container: ApiContainer = request.app.state.container
    return container


ContainerDep = Annotated[ApiContainer, Depends(get_container)]


def _scoped(scope: str) -> object:
    async def dependency(
        container: ContainerDep,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Principal:
        principal = await container.authenticator.authenticate(authorization)
        container.authenticator.require(principal, scope)
        return principal

    return Depends(dependency)


WriterDep = Annotated[Principal, _scoped(SCOPE_WRITE)]
ReaderDep = Annotated[Principal, _scoped(SCOPE_READ)]
StockWriterDep = Annotated[Principal, _scoped(SCOPE_STOCK_WRITE)]

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="Repeat a request safely: the first response is replayed, no second order.",
    ),
]
