"""Reading the call log: one call with its window, ticket and events; a page of calls; the
supervisor's review list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from callcenter.domain.errors import NotFound
from callcenter.services.views import call_json, call_summary, iso


class CallQueries:
    def __init__(self, uow_factory: Callable) -> None:
        self._uow = uow_factory

    async def get(self, call_id: str, now: datetime) -> dict:
        async with self._uow() as uow:
            row = await uow.calls.get(call_id)
            if row is None:
                raise NotFound(f"no call {call_id}", code="call_not_found")
            win = await uow.windows.get(call_id)
            ticket = await uow.tickets.for_call(call_id)
            events = await uow.events.for_call(call_id)
        return call_json(row, win, ticket, now, events)

    async def search(
        self,
        now: datetime,
        *,
        start=None,
        end=None,
        agent=None,
        status=None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict:
        async with self._uow() as uow:
            rows, total = await uow.calls.search(
                start=start, end=end, agent=agent, status=status, limit=limit, offset=offset
            )
        items = [call_summary(r) for r in rows]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    async def reviews(self) -> list[dict]:
        async with self._uow() as uow:
            rows = await uow.reviews.list()
        return [
            {**r, "created_at": iso(r["created_at"]), "resolved_at": iso(r["resolved_at"])}
            for r in rows
        ]
