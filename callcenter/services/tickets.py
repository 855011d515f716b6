"""Use cases of written requests (R-8, R-11): portal tickets, answers, due-time warnings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from callcenter.domain.calls import SERVICE_CATEGORIES, Ticket
from callcenter.domain.certificates import LookupStatus
from callcenter.domain.errors import Conflict, NotFound, ValidationError
from callcenter.domain.timers import TimerKind
from callcenter.services.escalation import TicketFactory
from callcenter.services.read_models import Page

log = logging.getLogger(__name__)
_LIMITS = {
    "full_name": 300,
    "organisation": 300,
    "certificate": 32,
    "description": 10000,
    "category": 20,
}


class TicketService:
    def __init__(self, uow_factory: Callable, factory: TicketFactory, registry, notifier) -> None:
        self._uow = uow_factory
        self.factory = factory
        self.registry = registry
        self.notifier = notifier
        self.on_timer = lambda when, kind, key: None

    async def create_from_portal(self, body: Any, now: datetime) -> Ticket:
        """Clause 3.1/4.1: identity, certificate number and problem, or 422 naming the gaps."""
        if not isinstance(body, dict):
            raise ValidationError("a request must be a JSON object", code="invalid_request")
        problems: dict[str, str] = {}
        for key in ("full_name", "certificate", "description"):
            value = body.get(key)
            if not isinstance(value, str) or not value.strip():
                problems[key] = "is required"
        for key, limit in _LIMITS.items():
            value = body.get(key)
            if (
                value is not None
                and key not in problems
                and (not isinstance(value, str) or len(value) > limit)
            ):
                problems[key] = f"must be text of at most {limit} characters"
        unknown = set(body) - set(_LIMITS)
        for key in sorted(unknown):
            problems[key] = "is not a field of a written request"
        category = (body.get("category") or "other") if "category" not in problems else "other"
        if category not in SERVICE_CATEGORIES:
            problems["category"] = f"must be one of {', '.join(SERVICE_CATEGORIES)}"
        number = (body.get("certificate") or "").strip() if "certificate" not in problems else ""
        if number:
            bad = self.registry.number_format.problem(number)
            if bad:
                problems["certificate"] = f"number {bad}"
            else:
                service = category if category != "other" else None
                result = await self.registry.lookup(number, now, service)
                if result.status is not LookupStatus.VALID:
                    problems["certificate"] = f"is not valid for support: {result.status.value}"
        if problems:
            raise ValidationError(
                "the request cannot be processed: "
                + "; ".join(f"{k} {v}" for k, v in problems.items()),
                code="invalid_request",
                fields=problems,
            )
        ticket = await self.factory.make(
            received_at=now,
            source="portal",
            certificate_number=number,
            full_name=body["full_name"].strip(),
            organisation=(body.get("organisation") or "").strip(),
            description=body["description"].strip(),
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
        if not isinstance(text, str) or not text.strip():
            raise ValidationError(
                "the answer text is required",
                code="invalid_request",
                fields={"answer": "is required"},
            )
        async with self._uow() as uow:
            if await uow.tickets.get(ticket_id) is None:
                raise NotFound(f"no ticket {ticket_id}", code="ticket_not_found")
            if not await uow.tickets.answer(ticket_id, now, text.strip()):
                raise Conflict("the ticket has been answered already", code="already_answered")
            await uow.commit()
        return await self.get(ticket_id)

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
