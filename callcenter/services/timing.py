"""Use cases of call timing (R-11): the call log, the oral window and escalation to a ticket.

Each use case is one unit of work. The window's absolute ``deadline_at`` is written in the
same transaction that opens it; timers only ever *ask* for a conditional transition, so a
duplicate fire, a restart or a second instance changes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from callcenter.domain.calls import (
    REFUSAL_REASONS,
    SERVICE_CATEGORIES,
    OralWindow,
    Outcome,
    Ticket,
    WindowStatus,
    project,
)
from callcenter.domain.errors import Conflict, NotFound, ValidationError
from callcenter.domain.events import CallEvent, parse_event
from callcenter.domain.timers import TimerKind
from callcenter.services.group_commit import GroupCommit
from callcenter.services.views import call_json, call_summary, iso, ticket_json

log = logging.getLogger(__name__)
DEFAULT_EXTENSION_SECONDS = 300
ESCALATION_TEXT = "Устное обращение не решено за отведённое время и переведено в письменную форму."

TimerHook = Callable[[datetime, TimerKind, Any], None]


class TicketFactory:
    """Due times by the calendar and the policy version a request is judged by."""

    def __init__(self, policy, calendars, forwarding_enabled: bool) -> None:
        self.policy, self.calendars = policy, calendars
        self.forwarding_enabled = forwarding_enabled
        self.on_outbox: Callable[[], None] = lambda: None  # wakes the outbox worker

    async def make(
        self, *, received_at: datetime, policy_id: int | None = None, **fields: Any
    ) -> Ticket:
        book = await self.policy.book()
        version = next(
            (v for v in book.versions if v.id == policy_id and policy_id is not None), None
        ) or book.in_force_at(received_at)
        cal = self.calendars.for_policy(version)
        hours = version.written_answer_hours
        return Ticket(
            received_at=received_at,
            due_at=cal.add_working_hours(received_at, hours),
            warn75_at=cal.add_working_hours(received_at, hours * 0.75),
            warn90_at=cal.add_working_hours(received_at, hours * 0.90),
            policy_id=version.id,
            **fields,
        )

    async def store(self, uow, ticket: Ticket, now: datetime) -> int | None:
        tid = await uow.tickets.insert(ticket, now)
        if tid is not None and self.forwarding_enabled:
            ticket.id = tid
            await uow.outbox.add("ticket.created", f"ticket-{tid}", ticket_json(ticket, now), now)
            # the worker looks once the row is committed; a wake-up now saves its idle wait
            asyncio.get_running_loop().call_later(0.05, self.on_outbox)
        return tid

    async def recall(self, uow, ticket: Ticket, now: datetime) -> None:
        """A withdrawn ticket's forwarding: cancelled if not yet sent, else a cancellation sent."""
        if not self.forwarding_enabled:
            return
        key = f"ticket-{ticket.id}"
        if await uow.outbox.cancel(key, now) or not await uow.outbox.exists(key):
            return
        await uow.outbox.add("ticket.withdrawn", f"{key}-withdrawn", ticket_json(ticket, now), now)
        asyncio.get_running_loop().call_later(0.05, self.on_outbox)


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
    ) -> None:
        self._uow = uow_factory
        self.grace = grace
        self.policy = policy
        self.factory = factory
        self.registry = registry
        self.notifier = notifier
        self.on_timer: TimerHook = lambda when, kind, key: None
        self._journal = GroupCommit(
            self._record_batch, parallel=writers, name="call events", is_outage=is_outage
        )

    # --- events ------------------------------------------------------------------------------

    async def record(self, body: Any, now: datetime) -> tuple[CallEvent, bool]:
        """Store one event and bring the call, its window and its ticket up to date.

        Shape errors are raised here, before anything is queued; events arriving together
        share one transaction (group commit), which is what carries the ingest rate.
        """
        event = parse_event(body, now)
        new = await self._journal.submit((event, now))
        log.info("call %s: %s %s", event.call_id, event.event, "stored" if new else "repeated")
        return event, new

    async def _record_batch(self, items: Sequence[tuple[CallEvent, datetime]]) -> list[bool]:
        """One unit of work for many events: store the new ones, re-project their calls."""
        timers: list[tuple[datetime, str, str]] = []
        notes: list[dict] = []
        async with self._uow() as uow:
            log_ = await uow.call_log()
            fresh = await log_.insert_events(items)
            flags = []
            for event, _ in items:  # the same event twice in one batch: the first is new
                flags.append(event.dedup_key() in fresh)
                fresh.discard(event.dedup_key())
            touched = sorted({e.call_id for (e, _), new in zip(items, flags, strict=True) if new})
            if touched:
                now = max(n for _, n in items)
                await log_.lock_calls(touched, now)
                history = await log_.history(touched)
                records = [project(cid, history[cid]) for cid in touched]
                await log_.save_calls(records, now)
                for rec in records:
                    await self._follow(uow, rec, now, timers, notes)
            await uow.commit()
        self._after(timers, notes)
        return flags

    async def drain(self) -> None:
        """Wait for events still being written (shutdown)."""
        await self._journal.drain()

    async def events(self, call_id: str) -> list[CallEvent]:
        async with self._uow() as uow:
            return await uow.events.for_call(call_id)

    async def _follow(self, uow, rec, now, timers, notes) -> None:
        """Open the window when the agent answers; let the call's own instants decide it."""
        if rec.connected_at is None:
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
                notes.append(
                    {
                        "type": "window_opened",
                        "call_id": rec.call_id,
                        "agent": rec.agent,
                        "deadline_at": iso(win.deadline_at),
                    }
                )
                if rec.ended_at is None:
                    timers.extend(self._timers(win))
        if rec.certificate_number and not win.status.running:
            name, org = await self._holder(rec.certificate_number)
            await uow.tickets.fill_certificate(rec.call_id, rec.certificate_number, name, org)
        await self._decide(uow, win, rec.ended_at, now, notes)

    def _timers(self, win: OralWindow) -> list[tuple[datetime, TimerKind, str]]:
        out = [(win.deadline_timer_at(self.grace), TimerKind.WINDOW_DEADLINE, win.call_id)]
        warn = win.warning_timer_at(self.grace)
        if warn is not None:
            out.insert(0, (warn, TimerKind.WINDOW_WARNING, win.call_id))
        return out

    async def _decide(self, uow, win: OralWindow, ended_at, now, notes) -> bool:
        """Apply what the window's instants say now; the guarded UPDATE picks one winner."""
        to = win.decide(ended_at, now, self.grace)
        if to is WindowStatus.MET and win.status is WindowStatus.OVERRUN:
            return await self._withdraw(uow, win, ended_at, now, notes)
        if to is WindowStatus.MET:
            if await uow.windows.transition(win.call_id, WindowStatus.MET, ended_at):
                win.meet(ended_at)
                notes.append({"type": "window_met", "call_id": win.call_id})
                return True
            return False
        if to is WindowStatus.OVERRUN:
            return await self._overrun(uow, win, now, notes, ended=ended_at is not None)
        return False

    async def _overrun(
        self, uow, win: OralWindow, now: datetime, notes: list, *, ended: bool = False
    ) -> bool:
        """The window ran out: it closed at its deadline, and the written request was received
        then, even if this process only learns of it later (after a restart or an outage).
        Without a known end, only once its timer is due (the guard repeats it in SQL)."""
        at = win.deadline_at
        fire_by = None if ended else now - self.grace
        if not await uow.windows.transition(
            win.call_id, WindowStatus.OVERRUN, at, due_by=fire_by, recorded_by=fire_by
        ):
            return False
        win.overrun()
        await self._escalate(uow, win.call_id, at, "overrun", notes)
        return True

    async def _withdraw(self, uow, win: OralWindow, ended_at, now, notes) -> bool:
        """An end in time learnt after the overrun: the window was met, its ticket withdrawn
        (kept for audit), the system's 'escalated' outcome undone, the forwarding recalled."""
        if not await uow.windows.withdraw(win.call_id, ended_at):
            return False
        win.withdraw(ended_at)
        reason = (
            f"the call ended at {iso(ended_at)}, within its oral window "
            f"(deadline {iso(win.deadline_at)}); the end became known at {iso(now)}"
        )
        ticket = await uow.tickets.for_call(win.call_id)
        if (
            ticket is not None
            and ticket.escalation_reason == "overrun"
            and ticket.withdraw(now, reason)
        ):
            if await uow.tickets.withdraw(ticket.id, now, reason):
                await self.factory.recall(uow, ticket, now)
                notes.append(
                    {"type": "ticket_withdrawn", "call_id": win.call_id, "ticket_id": ticket.id}
                )
        await uow.calls.clear_system_outcome(win.call_id, now)
        notes.append({"type": "window_met", "call_id": win.call_id})
        log.warning(
            "call %s: overrun withdrawn, the call ended in time (known only now)", win.call_id
        )
        return True

    def _after(self, timers, notes) -> None:
        for when, kind, key in timers:
            self.on_timer(when, kind, key)
        for note in notes:
            self.notifier.publish(note)

    # --- timers ------------------------------------------------------------------------------

    async def fire_warning(self, call_id: str, now: datetime) -> bool:
        """Warn the agent, unless the call has ended (perhaps learnt since the timer was set)."""
        async with self._uow() as uow:
            win = await uow.windows.get(call_id)
            call = await uow.calls.get(call_id)
            ended_at = call and call["ended_at"]
            if win is None or not win.warn(now, ended_at):
                return False
            if not await uow.windows.mark_warned(call_id, now):
                return False
            await uow.commit()
        self.notifier.publish(
            {
                "type": "window_warning",
                "call_id": call_id,
                "agent": call and call["agent"],
                "deadline_at": iso(win.deadline_at),
            }
        )
        log.info("call %s: oral window warning sent", call_id)
        return True

    async def fire_deadline(self, call_id: str, now: datetime) -> bool:
        """At the deadline: overrun, and a written ticket unless the call already closed."""
        notes: list[dict] = []
        async with self._uow() as uow:
            await uow.calls.lock(call_id, now)
            win = await uow.windows.get(call_id)
            call = await uow.calls.get(call_id)
            if win is None or not await self._decide(uow, win, call["ended_at"], now, notes):
                return False
            await uow.commit()
        if win.status is not WindowStatus.OVERRUN:
            self._after([], notes)
            return True
        self._after([], notes)
        log.warning("call %s: oral window overrun, escalated to a written ticket", call_id)
        return True

    async def _escalate(
        self, uow, call_id: str, now: datetime, reason: str, notes: list, **override: Any
    ) -> int | None:
        """Create the call's ticket (once: the unique call_id says no to a second)."""
        call = await uow.calls.get(call_id) or {}
        win = await uow.windows.get(call_id)
        name = override.get("caller_name") or call.get("caller_name") or ""
        org = override.get("organisation") or call.get("organisation") or ""
        number = call.get("certificate_number")
        if number and not (name or org):
            name, org = await self._holder(number)
        ticket = await self.factory.make(
            received_at=now,
            policy_id=win.policy_id if win else None,
            source="call",
            call_id=call_id,
            certificate_number=number,
            full_name=name,
            organisation=org,
            description=override.get("description") or call.get("description") or ESCALATION_TEXT,
            category=override.get("category") or call.get("category") or "other",
            escalation_reason=reason,
        )
        tid = await self.factory.store(uow, ticket, now)
        if tid is None:
            return None
        if not call.get("outcome"):
            await uow.calls.update_fields(
                call_id,
                now,
                outcome=Outcome.ESCALATED.value,
                outcome_at=now,
                outcome_by=override.get("by", "system"),
            )
        notes.append(
            {
                "type": "ticket_created",
                "call_id": call_id,
                "ticket_id": tid,
                "due_at": iso(ticket.due_at),
                "reason": reason,
            }
        )
        self.on_timer(ticket.warn75_at, TimerKind.TICKET_WARN75, tid)
        self.on_timer(ticket.warn90_at, TimerKind.TICKET_WARN90, tid)
        return tid

    async def _holder(self, number: str) -> tuple[str, str]:
        """The certificate holder's name and organisation, or blanks if it cannot be read."""
        try:
            cert = await self.registry.get(number)
        except Exception:  # a missing holder must not stop an escalation
            return "", ""
        return cert.holder_name, cert.organisation

    # --- agent actions -----------------------------------------------------------------------

    async def _window_for_action(self, uow, call_id: str, now: datetime) -> OralWindow:
        if await uow.calls.get(call_id) is None:
            raise NotFound(f"no call {call_id}", code="call_not_found")
        await uow.calls.lock(call_id, now)
        win = await uow.windows.get(call_id)
        if win is None:
            raise Conflict("the call has not been answered by an agent", code="not_answered")
        return win

    async def extend(
        self, call_id: str, reason: str, by: str, now: datetime, seconds: int | None = None
    ) -> dict:
        timers: list = []
        async with self._uow() as uow:
            win = await self._window_for_action(uow, call_id, now)
            if win.status.running and win.deadline_at <= now:
                # too late: the deadline passed even if its timer has not fired yet
                notes: list = []
                call = await uow.calls.get(call_id)
                await self._decide(uow, win, call["ended_at"], now, notes)
                await uow.commit()
                self._after([], notes)
                raise Conflict("the oral window has already run out", code="window_closed")
            old = win.deadline_at
            win.extend(now, DEFAULT_EXTENSION_SECONDS if seconds is None else seconds, reason, by)
            if not await uow.windows.extend(win, old, win.extensions[-1]):
                raise Conflict("the oral window changed meanwhile; try again", code="window_busy")
            await uow.commit()
        timers.extend(self._timers(win))
        self._after(
            timers,
            [
                {
                    "type": "window_extended",
                    "call_id": call_id,
                    "deadline_at": iso(win.deadline_at),
                    "by": by,
                }
            ],
        )
        return await self.get(call_id, now)

    async def escalate(self, call_id: str, by: str, now: datetime, **details: Any) -> dict:
        """The agent turns the call into a written request early (clause 4.2)."""
        _check_details(details)
        notes: list = []
        async with self._uow() as uow:
            await self._window_for_action(uow, call_id, now)
            if not await uow.windows.transition(call_id, WindowStatus.ESCALATED, now):
                raise Conflict("the oral window is already closed", code="window_closed")
            await self._save_identity(uow, call_id, now, details)
            await uow.calls.update_fields(
                call_id, now, outcome=Outcome.ESCALATED.value, outcome_at=now, outcome_by=by
            )
            await self._escalate(uow, call_id, now, "agent", notes, by=by, **details)
            await uow.commit()
        self._after([], notes)
        return await self.get(call_id, now)

    async def set_identity(self, call_id: str, now: datetime, **details: Any) -> dict:
        """R-2/R-8: the agent records who is calling and what about."""
        _check_details(details)
        async with self._uow() as uow:
            if await uow.calls.get(call_id) is None:
                raise NotFound(f"no call {call_id}", code="call_not_found")
            await self._save_identity(uow, call_id, now, details)
            await uow.commit()
        return await self.get(call_id, now)

    async def _save_identity(self, uow, call_id, now, details) -> None:
        fields = {
            k: v
            for k, v in details.items()
            if k in ("caller_name", "organisation", "description", "category") and v
        }
        if fields:
            await uow.calls.update_fields(call_id, now, **fields)

    async def set_outcome(
        self,
        call_id: str,
        outcome: str,
        by: str,
        now: datetime,
        reason: str | None = None,
        note: str = "",
        **details: Any,
    ) -> dict:
        """Resolved orally, refused (with a reason), ended for abuse (R-10, R-12)."""
        try:
            kind = Outcome(outcome)
        except ValueError:
            raise ValidationError(
                f"outcome must be one of {', '.join(o.value for o in Outcome)}",
                code="invalid_outcome",
                fields={"outcome": "unknown value"},
            ) from None
        if kind is Outcome.ESCALATED:
            return await self.escalate(call_id, by, now, **details)
        if kind is Outcome.REFUSED and reason not in REFUSAL_REASONS:
            raise ValidationError(
                f"a refusal needs a reason: {', '.join(REFUSAL_REASONS)}",
                code="reason_required",
                fields={"reason": "is required"},
            )
        if kind is Outcome.ABUSIVE and not (note or "").strip():
            raise ValidationError(
                "say what happened: the supervisor reviews it",
                code="note_required",
                fields={"note": "is required"},
            )
        _check_details(details)
        notes: list = []
        async with self._uow() as uow:
            call = await uow.calls.get(call_id)
            if call is None:
                raise NotFound(f"no call {call_id}", code="call_not_found")
            await uow.calls.lock(call_id, now)
            await self._save_identity(uow, call_id, now, details)
            await uow.calls.update_fields(
                call_id,
                now,
                outcome=kind.value,
                outcome_reason=reason,
                outcome_note=note or "",
                outcome_at=now,
                outcome_by=by,
            )
            if kind is Outcome.RESOLVED:
                if await uow.windows.transition(call_id, WindowStatus.MET, now):
                    notes.append({"type": "window_met", "call_id": call_id})
            elif await uow.windows.transition(call_id, WindowStatus.MET, now):
                notes.append({"type": "window_closed", "call_id": call_id, "outcome": kind.value})
            if kind is Outcome.ABUSIVE:
                rid = await uow.reviews.add("abuse", call_id, note, by, now)
                notes.append(
                    {
                        "type": "supervisor_alert",
                        "kind": "abuse",
                        "review_id": rid,
                        "call_id": call_id,
                        "agent": by,
                        "note": note,
                    }
                )
            await uow.commit()
        self._after([], notes)
        if kind is Outcome.ABUSIVE:
            log.warning("call %s ended for abuse by %s: supervisor notified", call_id, by)
        return await self.get(call_id, now)

    async def complaint(self, call_id: str | None, note: str, by: str, now: datetime) -> int:
        """R-12: a complaint about staff goes to the head of support's review list."""
        if not (note or "").strip():
            raise ValidationError(
                "the complaint text is required",
                code="note_required",
                fields={"note": "is required"},
            )
        async with self._uow() as uow:
            rid = await uow.reviews.add("complaint", call_id, note.strip(), by, now)
            await uow.commit()
        self.notifier.publish(
            {"type": "supervisor_alert", "kind": "complaint", "review_id": rid, "call_id": call_id}
        )
        return rid

    async def reviews(self) -> list[dict]:
        async with self._uow() as uow:
            rows = await uow.reviews.list()
        return [
            {**r, "created_at": iso(r["created_at"]), "resolved_at": iso(r["resolved_at"])}
            for r in rows
        ]

    # --- reading -----------------------------------------------------------------------------

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

    async def pending_timers(self) -> list[tuple[datetime, str, Any]]:
        """Everything a scheduler must arm on start: running windows, unwarned tickets."""
        out: list[tuple[datetime, str, Any]] = []
        async with self._uow() as uow:
            for win in await uow.windows.running():
                out.extend(
                    t
                    for t in self._timers(win)
                    if t[1] is TimerKind.WINDOW_DEADLINE or win.warned_at is None
                )
            for tid, w75, done75, w90, done90 in await uow.tickets.pending():
                if w75 is not None and done75 is None:
                    out.append((w75, TimerKind.TICKET_WARN75, tid))
                if w90 is not None and done90 is None:
                    out.append((w90, TimerKind.TICKET_WARN90, tid))
        return out


def _check_details(details: dict) -> None:
    problems = {}
    category = details.get("category")
    if category is not None and category not in SERVICE_CATEGORIES:
        problems["category"] = f"must be one of {', '.join(SERVICE_CATEGORIES)}"
    for key, limit in (("caller_name", 300), ("organisation", 300), ("description", 10000)):
        value = details.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            problems[key] = f"must be text of at most {limit} characters"
    if problems:
        raise ValidationError(
            "; ".join(f"{k} {v}" for k, v in problems.items()),
            code="invalid_request",
            fields=problems,
        )
