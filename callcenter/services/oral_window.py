"""Use cases of the oral window (clause 4.2): open, warn, extend, and let the call's own
instants decide met or overrun (ARCHITECTURE.md pattern 11).

The domain's :class:`OralWindow` says what a transition means; each one here is then written
as a conditional ``UPDATE ... WHERE status IN ('open', 'extended')`` whose row count says
which instance or timer won, so a duplicate fire, a restart or a second instance changes
nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from callcenter.domain.calls import CallRecord, OralWindow, WindowStatus
from callcenter.domain.errors import Conflict, NotFound
from callcenter.domain.instants import format_instant
from callcenter.domain.timers import TimerKind
from callcenter.services.effects import Aftermath, Effects
from callcenter.services.escalation import Escalation

log = logging.getLogger(__name__)
DEFAULT_EXTENSION_SECONDS = 300


class OralWindows:
    def __init__(
        self,
        uow_factory: Callable,
        policy,
        escalation: Escalation,
        aftermath: Aftermath,
        grace: timedelta,
    ) -> None:
        self._uow = uow_factory
        self.policy = policy
        self.escalation = escalation
        self.aftermath = aftermath
        self.grace = grace

    # --- following the call log --------------------------------------------------------------

    @staticmethod
    def concerns(rec: CallRecord) -> bool:
        """Whether :meth:`follow` has anything to do for this call: only once it was answered."""
        return rec.connected_at is not None

    async def follow(self, uow, rec: CallRecord, now: datetime, fx: Effects) -> None:
        """Open the window when the agent answers; let the call's own instants decide it."""
        if not self.concerns(rec):
            return  # no answer, no window (the common case in the IVR: spare the queries)
        win = await uow.windows.get(rec.call_id)
        if win is None:
            version = await self.policy.in_force_at(rec.connected_at)
            opened = rec.connected_at
            if version.window_start == "queue_entry" and rec.queued_at is not None:
                opened = rec.queued_at
            win = OralWindow.open(
                rec.call_id,
                opened,
                version.oral_window_seconds,
                version.warning_seconds,
                version.id,
                recorded_at=now,
            )
            if await uow.windows.insert(win):
                fx.notes.append(
                    {
                        "type": "window_opened",
                        "call_id": rec.call_id,
                        "agent": rec.agent,
                        "deadline_at": win.deadline_at,
                    }
                )
                if rec.ended_at is None:
                    fx.timers.extend(self.timers(win))
        if rec.certificate_number and not win.status.running:
            name, org = await self.escalation.holder(rec.certificate_number)
            await uow.tickets.fill_certificate(rec.call_id, rec.certificate_number, name, org)
        await self.decide(uow, win, rec.ended_at, now, fx)

    def timers(self, win: OralWindow) -> list[tuple[datetime, TimerKind, str]]:
        out = [(win.deadline_timer_at(self.grace), TimerKind.WINDOW_DEADLINE, win.call_id)]
        warn = win.warning_timer_at(self.grace)
        if warn is not None:
            out.insert(0, (warn, TimerKind.WINDOW_WARNING, win.call_id))
        return out

    async def decide(
        self, uow, win: OralWindow, ended_at: datetime | None, now: datetime, fx: Effects
    ) -> bool:
        """Apply what the window's instants say now; the guarded UPDATE picks one winner."""
        to = win.decide(ended_at, now, self.grace)
        if to is WindowStatus.MET and win.status is WindowStatus.OVERRUN:
            return await self._withdraw(uow, win, ended_at, now, fx)
        if to is WindowStatus.MET:
            if not await uow.windows.transition(win.call_id, WindowStatus.MET, ended_at):
                return False
            win.meet(ended_at)
            fx.notes.append({"type": "window_met", "call_id": win.call_id})
            return True
        if to is WindowStatus.OVERRUN:
            return await self._overrun(uow, win, now, fx, ended=ended_at is not None)
        return False

    async def _overrun(
        self, uow, win: OralWindow, now: datetime, fx: Effects, *, ended: bool
    ) -> bool:
        """The window ran out: it closed at its deadline, and the written request was received
        then, even if this process only learns of it later (after a restart or an outage).
        Without a known end, only once its timer is due (the guard repeats it in SQL)."""
        fire_by = None if ended else now - self.grace
        if not await uow.windows.transition(
            win.call_id, WindowStatus.OVERRUN, win.deadline_at, due_by=fire_by, recorded_by=fire_by
        ):
            return False
        win.overrun()
        fx.notes.append({"type": "window_overrun", "call_id": win.call_id})
        await self.escalation.escalate(uow, win.call_id, win.deadline_at, "overrun", fx)
        return True

    async def _withdraw(self, uow, win: OralWindow, ended_at, now, fx: Effects) -> bool:
        """An end in time learnt after the overrun: the window was met, its ticket withdrawn
        (kept for audit), the system's 'escalated' outcome undone, the forwarding recalled."""
        if not await uow.windows.withdraw(win.call_id, ended_at):
            return False
        win.withdraw(ended_at)
        reason = (
            f"the call ended at {format_instant(ended_at)}, within its oral window "
            f"(deadline {format_instant(win.deadline_at)}); "
            f"the end became known at {format_instant(now)}"
        )
        await self.escalation.withdraw(uow, win.call_id, reason, now, fx)
        fx.notes.append({"type": "window_met", "call_id": win.call_id})
        log.warning(
            "call %s: overrun withdrawn, the call ended in time (known only now)", win.call_id
        )
        return True

    # --- timers ------------------------------------------------------------------------------

    async def fire_warning(self, call_id: str, now: datetime) -> bool:
        """Warn the agent, unless the call has ended (perhaps learnt since the timer was set)."""
        async with self._uow() as uow:
            win = await uow.windows.get(call_id)
            call = await uow.calls.get(call_id)
            if win is None or not win.warn(now, call and call["ended_at"]):
                return False
            if not await uow.windows.mark_warned(call_id, now):
                return False
            await uow.commit()
        self.aftermath.release(
            Effects(
                notes=[
                    {
                        "type": "window_warning",
                        "call_id": call_id,
                        "agent": call and call["agent"],
                        "deadline_at": win.deadline_at,
                    }
                ]
            )
        )
        log.info("call %s: oral window warning sent", call_id)
        return True

    async def fire_deadline(self, call_id: str, now: datetime) -> bool:
        """Decide now: overrun and a written ticket, unless an end in time is known."""
        fx = Effects()
        async with self._uow() as uow:
            await uow.calls.lock(call_id, now)
            win = await uow.windows.get(call_id)
            call = await uow.calls.get(call_id)
            if win is None or not await self.decide(uow, win, call["ended_at"], now, fx):
                return False
            await uow.commit()
        self.aftermath.release(fx)
        if win.status is WindowStatus.OVERRUN:
            log.warning("call %s: oral window overrun, escalated to a written ticket", call_id)
        return True

    async def fire_deadlines(self, call_ids: list[str], now: datetime) -> dict[str, bool]:
        """:meth:`fire_deadline` for the windows falling due together, in one transaction:
        the calls locked, windows and calls read, the due windows overrun and their tickets
        made each in one statement (the call's own clock: each closed and escalated at its
        deadline). A window whose call has an end known takes :meth:`decide`'s path alone,
        in the same transaction. Whether each call's window changed, by call id."""
        ids = sorted(set(call_ids))
        changed = dict.fromkeys(ids, False)
        fx = Effects()
        async with self._uow() as uow:
            await (await uow.call_log()).lock_calls(ids, now)
            wins = await uow.windows.get_many(ids)
            calls = await uow.calls.get_many(ids)
            due: list[tuple[dict[str, Any], OralWindow]] = []
            for cid in ids:
                win, call = wins.get(cid), calls.get(cid)
                if win is None or call is None:
                    continue
                if call["ended_at"] is None:
                    if win.decide(None, now, self.grace) is WindowStatus.OVERRUN:
                        due.append((call, win))
                    continue  # not due (yet): nothing changes, as in decide
                changed[cid] = await self.decide(uow, win, call["ended_at"], now, fx)
            won = await uow.windows.overrun_many([w.call_id for _, w in due], now - self.grace)
            due = [(call, win) for call, win in due if win.call_id in won]
            for _, win in due:
                win.overrun()
                changed[win.call_id] = True
                fx.notes.append({"type": "window_overrun", "call_id": win.call_id})
            await self.escalation.escalate_many(uow, due, "overrun", fx)
            await uow.commit()
        self.aftermath.release(fx)
        for _, win in due:
            log.warning("call %s: oral window overrun, escalated to a written ticket", win.call_id)
        return changed

    async def pending_timers(self, uow) -> list[tuple[datetime, TimerKind, Any]]:
        """The deadline of every running window, and its warning unless given."""
        return [
            t
            for win in await uow.windows.running()
            for t in self.timers(win)
            if t[1] is TimerKind.WINDOW_DEADLINE or win.warned_at is None
        ]

    # --- the agent's hand on the window ------------------------------------------------------

    async def for_action(self, uow, call_id: str, now: datetime) -> OralWindow:
        """The call's window, with the call locked for the agent's action."""
        if await uow.calls.get(call_id) is None:
            raise NotFound(f"no call {call_id}", code="call_not_found")
        await uow.calls.lock(call_id, now)
        win = await uow.windows.get(call_id)
        if win is None:
            raise Conflict("the call has not been answered by an agent", code="not_answered")
        return win

    async def extend(
        self, call_id: str, reason: str, by: str, now: datetime, seconds: int | None = None
    ) -> None:
        async with self._uow() as uow:
            win = await self.for_action(uow, call_id, now)
            if win.status.running and win.deadline_at <= now:
                # too late: the deadline passed even if its timer has not fired yet
                fx = Effects()
                call = await uow.calls.get(call_id)
                await self.decide(uow, win, call["ended_at"], now, fx)
                await uow.commit()
                self.aftermath.release(fx)
                raise Conflict("the oral window has already run out", code="window_closed")
            old = win.deadline_at
            win.extend(now, DEFAULT_EXTENSION_SECONDS if seconds is None else seconds, reason, by)
            if not await uow.windows.extend(win, old, win.extensions[-1]):
                raise Conflict("the oral window changed meanwhile; try again", code="window_busy")
            await uow.commit()
        self.aftermath.release(
            Effects(
                timers=self.timers(win),
                notes=[
                    {
                        "type": "window_extended",
                        "call_id": call_id,
                        "deadline_at": win.deadline_at,
                        "by": by,
                    }
                ],
            )
        )
