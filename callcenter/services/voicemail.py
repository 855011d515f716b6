"""The closed line that takes a message (R-9 going further): a caller's recorded message
outside working time becomes a written ticket with source ``voicemail``.

The ticket's 12 working hours start at the next working minute (the calendar counts working
time only, so a message left at night is due as a request received at 09:00 of the next
working day plus 12 working hours). The recording is kept with the ticket, in the recordings
folder (a port, so this module stays free of files and paths), and is never deleted by the
service, like the calls themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from callcenter.domain.calls import Ticket
from callcenter.domain.certificates import LookupStatus
from callcenter.domain.errors import NotFound, ValidationError
from callcenter.domain.timers import TimerKind
from callcenter.services.escalation import TicketFactory

log = logging.getLogger(__name__)

VOICEMAIL_TEXT = (
    "Голосовое сообщение, оставленное по телефону в нерабочее время: запись приложена к обращению."
)
#: a message shorter than this says nothing (a caller who hung up at the beep)
MIN_BYTES = 44 + 8000  # a WAV header and half a second at 8 kHz, 16 bits


class Recordings(Protocol):
    def put(self, key: str, audio: bytes) -> str: ...

    def path(self, name: str): ...


class VoicemailService:
    def __init__(
        self,
        uow_factory: Callable,
        factory: TicketFactory,
        registry,
        notifier,
        recordings: Recordings,
        max_bytes: int,
    ) -> None:
        self._uow = uow_factory
        self.factory, self.registry, self.notifier = factory, registry, notifier
        self.recordings = recordings
        self.max_bytes = max_bytes
        self.on_timer = lambda when, kind, key: None

    async def leave(
        self, *, call_id: str, caller: str | None, number: str, audio: bytes, now: datetime
    ) -> Ticket:
        """The message of ``call_id`` as a ticket; the same call's message twice is one ticket
        (the ticket's call id is unique), so a driver may send it again."""
        if not (audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"):
            raise ValidationError(
                "the recording is not a WAV file",
                code="invalid_recording",
                fields={"recording": "must be a WAV file"},
            )
        if not MIN_BYTES <= len(audio) <= self.max_bytes:
            raise ValidationError(
                "the recording is empty or too long",
                code="invalid_recording",
                fields={"recording": f"must be 0.5 s to {self.max_bytes} bytes of WAV"},
            )
        result = await self.registry.lookup(number, now)
        if result.status is not LookupStatus.VALID:
            problem = f"is not valid for support: {result.status.value}"
            raise ValidationError(
                f"no message is taken for this certificate: {result.status.value}",
                code="invalid_certificate",
                fields={"number": problem},
            )
        async with self._uow() as uow:
            known = await uow.tickets.for_call(call_id)
        if known is not None:
            return known
        name = await asyncio.to_thread(self.recordings.put, call_id, audio)
        cert = result.certificate
        ticket = await self.factory.make(
            received_at=now,
            source="voicemail",
            call_id=call_id,
            certificate_number=number,
            full_name=cert.holder_name if cert else "",
            organisation=cert.organisation if cert else "",
            description=VOICEMAIL_TEXT,
            category="other",
            recording=name,
        )
        async with self._uow() as uow:
            tid = await self.factory.store(uow, ticket, now)
            if tid is None:  # the same call's message, stored meanwhile by another driver
                known = await uow.tickets.for_call(call_id)
                await uow.commit()
                return known
            first = cert is not None and cert.first_request_at is None
            if first:  # the holder's first request
                await uow.certificates.mark_first_request(number, now)
            await uow.commit()
        if first:
            self.registry.forget(number)  # the cached copy does not know it yet
        ticket.id = tid
        self.on_timer(ticket.warn75_at, TimerKind.TICKET_WARN75, tid)
        self.on_timer(ticket.warn90_at, TimerKind.TICKET_WARN90, tid)
        self.notifier.publish(
            {"type": "ticket_created", "ticket_id": tid, "due_at": ticket.due_at,
             "source": "voicemail"}
        )  # fmt: skip
        log.info("ticket %s from a voicemail of call %s, due %s", tid, call_id,
                 ticket.due_at.isoformat())  # fmt: skip
        return ticket

    async def recording(self, ticket_id: int):
        """The recording file of a ticket (a path), or NotFound."""
        async with self._uow() as uow:
            tk = await uow.tickets.get(ticket_id)
        if tk is None:
            raise NotFound(f"no ticket {ticket_id}", code="ticket_not_found")
        path = self.recordings.path(tk.recording) if tk.recording else None
        if path is None:
            raise NotFound(f"ticket {ticket_id} has no recording", code="recording_not_found")
        return path
