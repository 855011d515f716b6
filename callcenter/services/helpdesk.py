"""Answers coming back from the helpdesk: the Redmine poller and the webhook's inbox.

The poller asks for our issues changed since the newest change it has already seen (in the
helpdesk's own clock, minus an overlap for clock skew and late commits), records the answer
of each ticket still open at the helpdesk's time, and only then moves its cursor, in the
database: a restart, or a helpdesk down for hours, resumes from the last successful sync, and
what is seen twice is recorded once (the first answer stands).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from callcenter.domain import signing
from callcenter.domain.calls import Ticket
from callcenter.domain.errors import NotFound, ValidationError
from callcenter.domain.instants import InstantError, parse_instant

log = logging.getLogger(__name__)


class AnswerPoller:
    def __init__(
        self,
        uow_factory: Callable,
        helpdesk,
        tickets,
        clock,
        *,
        poll_seconds: float = 60.0,
        overlap_seconds: float = 300.0,
        max_backoff_seconds: float = 300.0,
    ) -> None:
        self._uow, self.helpdesk, self.tickets, self.clock = uow_factory, helpdesk, tickets, clock
        self.poll_seconds = poll_seconds
        self.overlap = timedelta(seconds=overlap_seconds)
        self.max_backoff = max_backoff_seconds
        self.name = helpdesk.kind
        self.failures = 0  # in a row
        self.polls = 0

    async def poll_once(self) -> int:
        """One sync; the number of answers recorded. Raises when the helpdesk cannot answer
        (nothing is moved then: the next sync starts from the same place)."""
        async with self._uow() as uow:
            state = await uow.helpdesk_sync.get(self.name) or {}
        cursor: datetime | None = state.get("cursor")
        changes = await self.helpdesk.changed_since(cursor - self.overlap if cursor else None)
        async with self._uow() as uow:
            open_ids = await uow.tickets.unsettled_among(sorted({c.ticket_id for c in changes}))
        recorded = 0
        for change in changes:
            if change.ticket_id not in open_ids:
                continue
            answer = await self.helpdesk.answer_of(change)
            if answer is None:
                continue
            try:
                _tk, new = await self.tickets.answer_from_helpdesk(
                    answer.ticket_id, answer.at, answer.text, ref=answer.ref, url=answer.url
                )
            except NotFound:
                log.warning("helpdesk issue %s names no ticket of ours", change.ref)
                continue
            recorded += new
            open_ids.discard(change.ticket_id)
        newest = max([c.updated_at for c in changes] + ([cursor] if cursor else []), default=None)
        async with self._uow() as uow:
            await uow.helpdesk_sync.put(
                self.name, cursor=newest, last_success_at=self.clock.now(), last_error=None
            )
            await uow.commit()
        self.polls += 1
        return recorded

    async def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        try:
            async with self._uow() as uow:
                await uow.helpdesk_sync.put(
                    self.name,
                    last_error=f"{type(exc).__name__}: {exc}"[:500],
                    last_error_at=self.clock.now(),
                )
                await uow.commit()
        except Exception:  # the database may be the thing that is down
            log.debug("helpdesk sync: could not record the failure", exc_info=True)

    def delay(self) -> float:
        """The poll interval; after failures in a row, doubled each time up to the cap."""
        if not self.failures:
            return self.poll_seconds
        return min(max(self.poll_seconds, self.max_backoff), self.poll_seconds * 2**self.failures)

    async def run(self) -> None:
        while True:
            try:
                found = await self.poll_once()
                if self.failures:
                    log.info("helpdesk sync works again after %d failures", self.failures)
                self.failures = 0
                if found:
                    log.info("helpdesk sync: %d answers recorded", found)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed(exc)
                log.warning(
                    "helpdesk sync failed (%s: %s); next try in %.0f s",
                    type(exc).__name__,
                    exc,
                    self.delay(),
                )
            await asyncio.sleep(self.delay())


class HelpdeskInbox:
    """``POST /api/v1/helpdesk/answers``: an answer the webhook's helpdesk posts back,
    signed with the shared secret (``X-Callcenter-Signature``), fresh, and not seen before."""

    def __init__(self, tickets, secret: str, tolerance_seconds: float) -> None:
        self.tickets, self.secret = tickets, secret
        self.tolerance = tolerance_seconds
        self.guard = signing.ReplayGuard(tolerance_seconds)

    def authenticate(self, header: str | None, body: bytes, now: datetime) -> None:
        if not self.secret:
            raise NotFound(
                'answers are posted here only with [helpdesk] kind = "webhook" and a secret',
                code="webhook_not_configured",
            )
        sig = signing.verify(self.secret, header, body, now.timestamp(), self.tolerance)
        self.guard.admit(sig, now.timestamp())

    async def receive(self, body: dict[str, Any], now: datetime) -> tuple[Ticket, bool]:
        """After :meth:`authenticate`: record the answer (the first one stands)."""
        at = _instant(body["answered_at"])
        if at > now + timedelta(seconds=self.tolerance):
            raise ValidationError(
                "answered_at is in the future",
                code="invalid_instant",
                fields={"answered_at": "must not be in the future"},
            )
        return await self.tickets.answer_from_helpdesk(
            body["ticket_id"], at, body["answer"], ref=body.get("id"), url=body.get("url")
        )


def _instant(raw: str) -> datetime:
    try:
        return parse_instant(raw)
    except InstantError as exc:
        raise ValidationError(
            f"answered_at {exc}", code="invalid_instant", fields={"answered_at": str(exc)}
        ) from None
