"""The call-timing use cases behind one object, with the names the rest of the code calls.

Each concern has its own module: the call log (``call_log``), the oral window
(``oral_window``), escalation and tickets (``escalation``), the agent's actions
(``agent_actions``) and reading (``call_queries``). This object only wires them and keeps
the public names that FastAGI, AMI, ``serve``, the web layer and the scheduler use.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from callcenter.domain.events import CallEvent, InstantRange
from callcenter.domain.log_context import bind_call
from callcenter.domain.timers import TimerKind
from callcenter.services.agent_actions import AgentActions
from callcenter.services.call_log import CallLog
from callcenter.services.call_queries import CallQueries
from callcenter.services.effects import Aftermath, TimerHook
from callcenter.services.escalation import ESCALATION_TEXT, Escalation, TicketFactory
from callcenter.services.oral_window import DEFAULT_EXTENSION_SECONDS, OralWindows
from callcenter.services.read_models import CallDetail, Page

__all__ = ["DEFAULT_EXTENSION_SECONDS", "ESCALATION_TEXT", "CallTiming", "TicketFactory"]


class CallTiming:
    def __init__(
        self,
        uow_factory: Callable,
        policy,
        factory: TicketFactory,
        registry,
        notifier,
        *,
        writers: int = 1,
        is_outage: Callable[[BaseException], bool] = lambda exc: False,
        grace: timedelta = timedelta(seconds=5),
        instants: InstantRange | None = None,
    ) -> None:
        self._uow = uow_factory
        self.notifier = notifier
        self.aftermath = Aftermath(notifier)
        self.escalation = Escalation(factory, registry)
        self.windows = OralWindows(uow_factory, policy, self.escalation, self.aftermath, grace)
        self.log = CallLog(
            uow_factory,
            self.windows,
            self.aftermath,
            writers=writers,
            is_outage=is_outage,
            instants=instants,
        )
        self.actions = AgentActions(uow_factory, self.windows, self.escalation, self.aftermath)
        self.queries = CallQueries(uow_factory)
        self.factory = factory

    @property
    def on_timer(self) -> TimerHook:
        return self.aftermath.on_timer

    @on_timer.setter
    def on_timer(self, hook: TimerHook) -> None:
        self.aftermath.on_timer = hook

    # --- the call log ------------------------------------------------------------------------

    async def record(self, body: Any, now: datetime) -> tuple[CallEvent, bool]:
        if isinstance(body, dict):
            bind_call(body.get("call_id"))  # every log line of this work names the call
        return await self.log.record(body, now)

    async def fire_warning(self, call_id: str, now: datetime) -> bool:
        bind_call(call_id)
        return await self.windows.fire_warning(call_id, now)

    async def fire_deadline(self, call_id: str, now: datetime) -> bool:
        bind_call(call_id)
        return await self.windows.fire_deadline(call_id, now)

    async def fire_deadlines(self, call_ids: list[str], now: datetime) -> dict[str, bool]:
        """The deadlines falling due together, in one transaction (see OralWindows)."""
        return await self.windows.fire_deadlines(call_ids, now)

    async def drain(self) -> None:
        await self.log.drain()

    async def events(self, call_id: str) -> list[CallEvent]:
        return await self.log.events(call_id)

    # --- timers ------------------------------------------------------------------------------

    async def pending_timers(self) -> list[tuple[datetime, TimerKind, Any]]:
        """Everything a scheduler must arm on start: running windows, unwarned tickets."""
        async with self._uow() as uow:
            return await self.windows.pending_timers(uow) + await self.escalation.pending_timers(
                uow
            )

    # --- the agent's actions, each answered with the call as it now stands -------------------

    async def extend(
        self, call_id: str, reason: str, by: str, now: datetime, seconds: int | None = None
    ) -> CallDetail:
        await self.windows.extend(call_id, reason, by, now, seconds)
        return await self.get(call_id)

    async def escalate(self, call_id: str, by: str, now: datetime, **details: Any) -> CallDetail:
        await self.actions.escalate(call_id, by, now, **details)
        return await self.get(call_id)

    async def set_identity(self, call_id: str, now: datetime, **details: Any) -> CallDetail:
        await self.actions.set_identity(call_id, now, **details)
        return await self.get(call_id)

    async def set_outcome(
        self, call_id: str, outcome: str, by: str, now: datetime, **kw: Any
    ) -> CallDetail:
        await self.actions.set_outcome(call_id, outcome, by, now, **kw)
        return await self.get(call_id)

    async def complaint(self, call_id: str | None, note: str, by: str, now: datetime) -> int:
        return await self.actions.complaint(call_id, note, by, now)

    # --- reading -----------------------------------------------------------------------------

    async def get(self, call_id: str) -> CallDetail:
        return await self.queries.get(call_id)

    async def search(self, **filters: Any) -> Page[dict]:
        return await self.queries.search(**filters)

    async def reviews(self) -> list[dict]:
        return await self.queries.reviews()
