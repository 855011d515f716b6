"""The call log (R-11): events stored once, each call's record re-projected from all of them.

Events arriving together share one transaction (group commit), which is what carries the
ingest rate; every call they touch is then handed to the oral window to decide.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from callcenter.calendar import CalendarError, WorkCalendar
from callcenter.domain.calls import project
from callcenter.domain.events import CallEvent, InstantRange, parse_event
from callcenter.services.effects import Aftermath, Effects
from callcenter.services.group_commit import GroupCommit
from callcenter.services.oral_window import OralWindows

log = logging.getLogger(__name__)
#: events that change who waits in the queue: pushed to supervisors as ``queue_changed``
QUEUE_EVENTS = frozenset({"queued", "call_ended"})
#: an ``agent_connected`` this recent is popped on the agent's screen before it is stored
#: (older ones, a spool replayed or events sent late, pop once stored, with their window)
EARLY_POP = timedelta(seconds=30)


@functools.cache
def calendar_years() -> tuple[int, int]:
    """The years the working calendar can count in (its holiday data's), found through its
    public API: a year outside them is refused by ``is_working_day``."""
    cal = WorkCalendar()

    def known(year: int) -> bool:
        try:
            cal.is_working_day(date(year, 6, 1))
        except CalendarError:
            return False
        return True

    def edge(inside: int, outside: int) -> int:
        while abs(outside - inside) > 1:  # a bisection: the years form one interval
            mid = (inside + outside) // 2
            inside, outside = (mid, outside) if known(mid) else (inside, mid)
        return inside

    inside = 2026  # any year the calendar knows: the one this was written in
    return edge(inside, 0), edge(inside, 10000)


def with_calendar_years(instants: InstantRange) -> InstantRange:
    """``instants`` narrowed to the calendar's years: a due time is counted in them, and a
    timer that cannot count its due time cannot fire."""
    first, last = calendar_years()
    lo, hi = instants.years
    return dataclasses.replace(instants, years=(max(lo, first), min(hi, last)))


class CallLog:
    def __init__(
        self,
        uow_factory: Callable,
        windows: OralWindows,
        aftermath: Aftermath,
        *,
        writers: int = 1,
        is_outage: Callable[[BaseException], bool] = lambda exc: False,
        instants: InstantRange | None = None,
    ) -> None:
        self._uow = uow_factory
        #: the event instants believed (the skew allowed), within the calendar's years
        self.instants = with_calendar_years(instants or InstantRange())
        self.windows = windows
        self.aftermath = aftermath
        # a call's events are stored in the order they came (FastAGI hands them over
        # without waiting for the write): two writers never race on one call
        self._journal = GroupCommit(
            self._record_batch,
            parallel=writers,
            name="call events",
            is_outage=is_outage,
            key=_call_of,
        )

    async def record(self, body: Any, now: datetime) -> tuple[CallEvent, bool]:
        """Store one event and bring the call, its window and its ticket up to date.

        Shape errors are raised here, before anything is queued.
        """
        event = parse_event(body, now, self.instants)
        if event.event == "agent_connected" and abs(now - event.at) <= EARLY_POP:
            self._early_pop(event)
        new = await self._journal.submit((event, now))
        log.info("call %s: %s %s", event.call_id, event.event, "stored" if new else "repeated")
        if new and event.event in QUEUE_EVENTS:
            # the supervisor's board: a caller joined or left the queue (no window yet)
            self.aftermath.notifier.publish({"type": "queue_changed", "call_id": event.call_id})
        return event, new

    def _early_pop(self, event: CallEvent) -> None:
        """The agent's screen learns of the call now, not once the event is stored: the pop
        (who calls, the certificate, its coverage) is what the agent needs before saying
        hello, and it is all stored already (the IVR's events); the window follows as soon as
        the event is. The socket renders this note only for a call not yet connected in the
        database (a repeated event, or one stored before the socket read the call, pops once,
        with its window, as ``window_opened``: docs/agent-screen.md)."""
        self.aftermath.notifier.publish(
            {
                "type": "call_connected",
                "call_id": event.call_id,
                "agent": event.data["agent"],
                "connected_at": event.at,
            }
        )

    async def _record_batch(self, items: Sequence[tuple[CallEvent, datetime]]) -> list[bool]:
        """One unit of work for many events: store the new ones, re-project their calls."""
        fx = Effects()
        async with self._uow() as uow:
            inline = uow.inline_call_log()
            if inline is not None:  # the IVR's batches: one synchronous go, no thread hops
                fresh = inline.record(items, self._project_unanswered)
                if fresh is not None:
                    return _new_flags(items, fresh)
            log_ = await uow.call_log()
            flags = _new_flags(items, await log_.insert_events(items))
            touched = sorted({e.call_id for (e, _), new in zip(items, flags, strict=True) if new})
            if touched:
                now = max(n for _, n in items)
                await log_.lock_calls(touched, now)
                history = await log_.history(touched)
                records = [project(cid, history[cid]) for cid in touched]
                await log_.save_calls(records, now)
                ended = {
                    e.call_id
                    for (e, _), new in zip(items, flags, strict=True)
                    if new and e.event == "call_ended"
                }
                for rec in records:
                    await self.windows.follow(uow, rec, now, fx)
                    if rec.call_id in ended and rec.connected_at is not None:
                        # the agent's screen: the call it shows has ended (wrap-up begins)
                        fx.notes.append(
                            {"type": "call_ended", "call_id": rec.call_id, "ended_at": rec.ended_at}
                        )
            await uow.commit()
        self.aftermath.release(fx)
        return flags

    def _project_unanswered(self, history: dict[str, list[CallEvent]]) -> list | None:
        """The calls' records, unless one has its oral window to follow (``None``)."""
        records = [project(cid, events) for cid, events in history.items()]
        if any(self.windows.concerns(rec) for rec in records):
            return None
        return records

    async def drain(self) -> None:
        """Wait for events still being written (shutdown)."""
        await self._journal.drain()

    async def events(self, call_id: str) -> list[CallEvent]:
        async with self._uow() as uow:
            return await uow.events.for_call(call_id)


def _call_of(item: tuple[CallEvent, datetime]) -> str:
    return item[0].call_id


def _new_flags(items: Sequence[tuple[CallEvent, datetime]], fresh: set[str]) -> list[bool]:
    """Whether each item was stored now; the same event twice in one batch: the first is new."""
    fresh = set(fresh)
    flags = []
    for event, _ in items:
        flags.append(event.dedup_key() in fresh)
        fresh.discard(event.dedup_key())
    return flags
