"""Use cases of the call log: events in from the PBX, stored once each."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from callcenter.domain.events import CallEvent, parse_event

log = logging.getLogger(__name__)


class CallLog:
    def __init__(self, uow_factory: Callable) -> None:
        self._uow = uow_factory

    async def record(self, body: Any, now: datetime) -> tuple[CallEvent, bool]:
        """Validate and store one event; (event, False) when it had been stored already."""
        event = parse_event(body, now)
        async with self._uow() as uow:
            new = await uow.events.add(event, now)
            await uow.commit()
        log.info("call %s: %s %s", event.call_id, event.event, "stored" if new else "duplicate")
        return event, new

    async def events(self, call_id: str) -> list[CallEvent]:
        async with self._uow() as uow:
            return await uow.events.for_call(call_id)
