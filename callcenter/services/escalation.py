"""Escalation of a call to a written ticket, and the withdrawal of one (R-11, clause 4.2)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from callcenter.domain.calls import OralWindow, Outcome, Ticket
from callcenter.domain.timers import TimerKind
from callcenter.services.effects import Effects

log = logging.getLogger(__name__)
ESCALATION_TEXT = "Устное обращение не решено за отведённое время и переведено в письменную форму."


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
            await uow.outbox.add_ticket("ticket.created", f"ticket-{tid}", ticket, now)
            self._wake_outbox()
        return tid

    async def store_many(self, uow, tickets: list[Ticket]) -> dict[str, int]:
        """Calls' tickets in one INSERT, each created at its own ``received_at`` (what
        :meth:`store` is given for an escalation): the new ids by call id; with forwarding,
        each new one's message in the same transaction."""
        ids = await uow.tickets.insert_many([(tk, tk.received_at) for tk in tickets])
        if ids and self.forwarding_enabled:
            for tk in tickets:
                if tk.call_id in ids:
                    tk.id = ids[tk.call_id]
                    await uow.outbox.add_ticket(
                        "ticket.created", f"ticket-{tk.id}", tk, tk.received_at
                    )
            self._wake_outbox()
        return ids

    async def recall(self, uow, ticket: Ticket, now: datetime) -> None:
        """A withdrawn ticket's forwarding: cancelled if not yet sent, else a cancellation sent."""
        if not self.forwarding_enabled:
            return
        key = f"ticket-{ticket.id}"
        if await uow.outbox.cancel(key, now) or not await uow.outbox.exists(key):
            return
        await uow.outbox.add_ticket("ticket.withdrawn", f"{key}-withdrawn", ticket, now)
        self._wake_outbox()

    def _wake_outbox(self) -> None:
        # the worker looks once the row is committed; a wake-up now saves its idle wait
        asyncio.get_running_loop().call_later(0.05, self.on_outbox)


class Escalation:
    """Makes a call's ticket (exactly once) and withdraws one an end in time disproved."""

    def __init__(self, factory: TicketFactory, registry) -> None:
        self.factory = factory
        self.registry = registry

    async def escalate(
        self, uow, call_id: str, at: datetime, reason: str, fx: Effects, **override: Any
    ) -> int | None:
        """Create the call's ticket (once: the unique call_id says no to a second)."""
        call = await uow.calls.get(call_id) or {}
        win = await uow.windows.get(call_id)
        name = override.get("caller_name") or call.get("caller_name") or ""
        org = override.get("organisation") or call.get("organisation") or ""
        number = call.get("certificate_number")
        if number and not (name or org):
            name, org = await self.holder(number)
        ticket = await self.factory.make(
            received_at=at,
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
        tid = await self.factory.store(uow, ticket, at)
        if tid is None:
            return None
        if not call.get("outcome"):
            await uow.calls.update_fields(
                call_id,
                at,
                outcome=Outcome.ESCALATED.value,
                outcome_at=at,
                outcome_by=override.get("by", "system"),
            )
        _announce(fx, ticket, tid, reason)
        return tid

    async def escalate_many(
        self, uow, items: list[tuple[dict[str, Any], OralWindow]], reason: str, fx: Effects
    ) -> dict[str, int]:
        """:meth:`escalate` for many calls in one go, each ticket received at its window's
        deadline: ``items`` are (call row, window), read in this unit of work with the calls
        locked. One INSERT for the tickets, one executemany for the outcomes; the notes and
        timers per ticket, as :meth:`escalate` leaves them. The new ids by call id."""
        tickets = []
        for call, win in items:
            name = call.get("caller_name") or ""
            org = call.get("organisation") or ""
            number = call.get("certificate_number")
            if number and not (name or org):
                name, org = await self.holder(number)
            tickets.append(
                await self.factory.make(
                    received_at=win.deadline_at,
                    policy_id=win.policy_id,
                    source="call",
                    call_id=win.call_id,
                    certificate_number=number,
                    full_name=name,
                    organisation=org,
                    description=call.get("description") or ESCALATION_TEXT,
                    category=call.get("category") or "other",
                    escalation_reason=reason,
                )
            )
        ids = await self.factory.store_many(uow, tickets)
        await uow.calls.mark_escalated_many(
            [(tk.call_id, tk.received_at) for tk in tickets if tk.call_id in ids], "system"
        )
        for tk in tickets:
            tid = ids.get(tk.call_id)
            if tid is None:
                continue
            _announce(fx, tk, tid, reason)
        return ids

    async def withdraw(self, uow, call_id: str, reason: str, now: datetime, fx: Effects) -> None:
        """The system's overrun ticket withdrawn (kept for audit), its outcome undone."""
        ticket = await uow.tickets.for_call(call_id)
        if (
            ticket is not None
            and ticket.escalation_reason == "overrun"
            and ticket.withdraw(now, reason)
            and await uow.tickets.withdraw(ticket.id, now, reason)
        ):
            await self.factory.recall(uow, ticket, now)
            fx.notes.append(
                {"type": "ticket_withdrawn", "call_id": call_id, "ticket_id": ticket.id}
            )
        await uow.calls.clear_system_outcome(call_id, now)

    async def holder(self, number: str) -> tuple[str, str]:
        """The certificate holder's name and organisation, or blanks if it cannot be read."""
        try:
            cert = await self.registry.get(number)
        except Exception:  # a missing holder must not stop an escalation
            return "", ""
        return cert.holder_name, cert.organisation

    async def pending_timers(self, uow) -> list[tuple[datetime, TimerKind, Any]]:
        """The 75 % and 90 % warnings of unanswered tickets not yet given."""
        out: list[tuple[datetime, TimerKind, Any]] = []
        for tid, w75, done75, w90, done90 in await uow.tickets.pending():
            if w75 is not None and done75 is None:
                out.append((w75, TimerKind.TICKET_WARN75, tid))
            if w90 is not None and done90 is None:
                out.append((w90, TimerKind.TICKET_WARN90, tid))
        return out


def _announce(fx: Effects, ticket, tid: int, reason: str) -> None:
    """A new call ticket's note for the screens and its two due-time warnings' timers."""
    fx.notes.append(
        {
            "type": "ticket_created",
            "call_id": ticket.call_id,
            "ticket_id": tid,
            "due_at": ticket.due_at,
            "reason": reason,
        }
    )
    fx.timers.append((ticket.warn75_at, TimerKind.TICKET_WARN75, tid))
    fx.timers.append((ticket.warn90_at, TimerKind.TICKET_WARN90, tid))
