"""Use cases of written requests (R-8, R-11): portal tickets, answers, due-time warnings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from callcenter.domain.calls import Ticket
from callcenter.domain.certificates import LookupStatus
from callcenter.domain.errors import Conflict, NotFound, TooManyAttempts, ValidationError
from callcenter.domain.throttle import BackoffRule, Throttle
from callcenter.domain.timers import TimerKind
from callcenter.services.escalation import TicketFactory
from callcenter.services.read_models import Page

log = logging.getLogger(__name__)

#: unknown certificate numbers a portal token (or an address) may send: 20 at once, then the
#: next waits 2, 4, ... 60 s, so at most about one a minute is learnt after the first 20
PORTAL_BACKOFF = BackoffRule(free=20, base_seconds=1.0, cap_seconds=60.0, forget_seconds=3600.0)


class TicketService:
    def __init__(
        self,
        uow_factory: Callable,
        factory: TicketFactory,
        registry,
        notifier,
        unknown_backoff: BackoffRule = PORTAL_BACKOFF,
    ) -> None:
        self._uow = uow_factory
        # in this process: each instance counts its own requests (see ``domain/throttle``)
        self._guesses = Throttle(unknown_backoff)
        self.factory = factory
        self.registry = registry
        self.notifier = notifier
        self.on_timer = lambda when, kind, key: None

    async def create_from_portal(
        self,
        now: datetime,
        *,
        full_name: str,
        certificate: str,
        description: str,
        organisation: str = "",
        category: str = "other",
        requester: tuple[str, ...] = (),
    ) -> Ticket:
        """Clause 3.1/4.1: identity, a certificate valid for support and the problem (the
        body's shape is checked by the web layer's schema; the certificate here).

        The answer tells a wrong number from a right one, so unknown numbers are counted per
        ``requester`` key (the token, the address): past :data:`PORTAL_BACKOFF`'s free ones
        every request waits, refused with ``throttled`` before any lookup, so a guesser
        learns nothing while throttled.
        """
        number = certificate.strip()
        bad = self.registry.number_format.problem(number)
        if bad:
            problem = f"number {bad}"  # says nothing about which certificates exist
        else:
            self._admit(requester, now)
            service = category if category != "other" else None
            result = await self.registry.lookup(number, now, service)
            if result.status is not LookupStatus.UNKNOWN:
                for key in requester:
                    self._guesses.forgive(key)
            problem = (
                None
                if result.status is LookupStatus.VALID
                else f"is not valid for support: {result.status.value}"
            )
        if problem:
            raise ValidationError(
                f"the request cannot be processed: certificate {problem}",
                code="invalid_request",
                fields={"certificate": problem},
            )
        ticket = await self.factory.make(
            received_at=now,
            source="portal",
            certificate_number=number,
            full_name=full_name.strip(),
            organisation=organisation.strip(),
            description=description.strip(),
            category=category,
        )
        async with self._uow() as uow:
            tid = await self.factory.store(uow, ticket, now)
            await uow.certificates.mark_first_request(number, now)
            await uow.commit()
        ticket.id = tid
        self.on_timer(ticket.warn75_at, TimerKind.TICKET_WARN75, tid)
        self.on_timer(ticket.warn90_at, TimerKind.TICKET_WARN90, tid)
        self.notifier.publish(
            {
                "type": "ticket_created",
                "ticket_id": tid,
                "due_at": ticket.due_at,
                "source": "portal",
            }
        )
        log.info("ticket %s from the portal, due %s", tid, ticket.due_at.isoformat())
        return ticket

    def _admit(self, requester: tuple[str, ...], now: datetime) -> None:
        try:
            self._guesses.admit(requester, now, "certificate lookup")
        except TooManyAttempts as exc:
            if exc.first_refusal:
                log.warning(
                    "portal tickets throttled for %s: too many unknown certificates, next in %s s",
                    exc.key,
                    exc.retry_after,
                )
            raise

    async def get(self, ticket_id: int) -> Ticket:
        async with self._uow() as uow:
            tk = await uow.tickets.get(ticket_id)
        if tk is None:
            raise NotFound(f"no ticket {ticket_id}", code="ticket_not_found")
        return tk

    async def search(
        self,
        now: datetime,
        *,
        start=None,
        end=None,
        status=None,
        source=None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Ticket]:
        async with self._uow() as uow:
            items, total = await uow.tickets.search(
                start=start,
                end=end,
                status=status,
                source=source,
                now=now,
                limit=limit,
                offset=offset,
            )
        return Page(items, total, limit, offset)

    async def answer(self, ticket_id: int, text: str, now: datetime) -> Ticket:
        """The written answer recorded here (its text checked by the web layer's schema)."""
        async with self._uow() as uow:
            if await uow.tickets.get(ticket_id) is None:
                raise NotFound(f"no ticket {ticket_id}", code="ticket_not_found")
            if not await uow.tickets.answer(ticket_id, now, text.strip(), "here"):
                raise Conflict("the ticket has been answered already", code="already_answered")
            await uow.commit()
        return await self.get(ticket_id)

    async def answer_from_helpdesk(
        self,
        ticket_id: int,
        at: datetime,
        text: str,
        *,
        ref: str | None = None,
        url: str | None = None,
    ) -> tuple[Ticket, bool]:
        """The helpdesk's answer at the helpdesk's own time ``at`` (so ``deadline_met`` is
        judged by when it was given, not when we learnt of it). Idempotent: the first answer
        stands, from here or there, and a repeat says ``False``."""
        async with self._uow() as uow:
            tk = await uow.tickets.get(ticket_id)
            if tk is None:
                raise NotFound(f"no ticket {ticket_id}", code="ticket_not_found")
            recorded = await uow.tickets.answer(ticket_id, at, text.strip(), "helpdesk")
            if (ref or url) and not (tk.helpdesk_ref or tk.helpdesk_url):
                await uow.tickets.set_helpdesk(ticket_id, ref, url)
            await uow.commit()
        tk = await self.get(ticket_id)
        if recorded:
            log.info(
                "ticket %s answered in the helpdesk at %s (deadline %s)",
                ticket_id,
                at.isoformat(),
                "met" if tk.deadline_met else "missed",
            )
            self.notifier.publish(
                {
                    "type": "ticket_answered",
                    "ticket_id": ticket_id,
                    "answered_at": at,
                    "deadline_met": tk.deadline_met,
                    "source": "helpdesk",
                }
            )
        return tk, recorded

    async def fire_warning(self, ticket_id: int, which: int, now: datetime) -> bool:
        async with self._uow() as uow:
            if not await uow.tickets.mark_warned(ticket_id, which, now):
                return False
            tk = await uow.tickets.get(ticket_id)
            await uow.commit()
        self.notifier.publish(
            {
                "type": "ticket_warning",
                "ticket_id": ticket_id,
                "percent": which,
                "due_at": tk.due_at,
            }
        )
        log.warning("ticket %s: %d %% of its working time used", ticket_id, which)
        return True
