"""Reading the call log: one call with its window, ticket and events; a page of calls; the
supervisor's review list."""

from __future__ import annotations

from collections.abc import Callable

from callcenter.domain.errors import NotFound
from callcenter.services.read_models import CallDetail, Page


class CallQueries:
    def __init__(self, uow_factory: Callable) -> None:
        self._uow = uow_factory

    async def get(self, call_id: str) -> CallDetail:
        async with self._uow() as uow:
            row = await uow.calls.get(call_id)
            if row is None:
                raise NotFound(f"no call {call_id}", code="call_not_found")
            win = await uow.windows.get(call_id)
            ticket = await uow.tickets.for_call(call_id)
            events = await uow.events.for_call(call_id)
        return CallDetail(row, win, ticket, events)

    async def search(
        self,
        *,
        start=None,
        end=None,
        agent=None,
        status=None,
        limit: int = 50,
        offset: int = 0,
        viewer: str | None = None,
    ) -> Page[dict]:
        """A page of call rows (with their window's status and deadline), newest first.
        ``viewer``: an agent's login, whose page leaves out calls of other users."""
        async with self._uow() as uow:
            rows, total = await uow.calls.search(
                start=start,
                end=end,
                agent=agent,
                status=status,
                limit=limit,
                offset=offset,
                viewer=viewer,
            )
        return Page(rows, total, limit, offset)

    async def reviews(self) -> list[dict]:
        async with self._uow() as uow:
            return await uow.reviews.list()
