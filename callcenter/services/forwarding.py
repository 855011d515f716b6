"""The outbox worker: tickets forwarded to an external helpdesk, never lost, never doubled.

Messages are written in the ticket's own transaction. This worker claims due ones (a lease
keeps a second instance off), sends each with its idempotency key, and on failure tries
again later with exponential backoff (capped, so a helpdesk down for hours is caught up
within one cap of its return). The receiver deduplicates on the key (Redmine: the adapter
looks the key up before creating), so even a send whose answer was lost in transit cannot
create a second ticket there. Where the helpdesk keeps the ticket (its id and link, when
it says) is written on the ticket with the delivery.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta

log = logging.getLogger(__name__)
Sender = Callable[[str, str, dict], Awaitable[object]]


class OutboxWorker:
    def __init__(
        self,
        uow_factory: Callable,
        sender: Sender,
        clock,
        *,
        batch: int = 50,
        lease_seconds: float = 60.0,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
        idle_poll: float = 5.0,
    ) -> None:
        #: a helpdesk (its ``deliver``) or a bare callable; may answer where the ticket lives
        self._uow, self.sender, self.clock = uow_factory, sender, clock
        self._send: Sender = getattr(sender, "deliver", sender)
        self.batch, self.lease = batch, timedelta(seconds=lease_seconds)
        self.base_backoff, self.max_backoff = base_backoff, max_backoff
        self.idle_poll = idle_poll
        self._wake = asyncio.Event()
        self.delivered = 0
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    def backoff(self, attempts: int) -> float:
        """1, 2, 4 ... seconds up to the cap, with jitter so instances do not pulse together."""
        return min(self.max_backoff, self.base_backoff * 2 ** min(attempts, 30)) * (
            0.8 + 0.4 * random.random()
        )

    async def deliver_due(self) -> int:
        now = self.clock.now()
        async with self._uow() as uow:
            claimed = await uow.outbox.claim(now, now + self.lease, self.batch)
            await uow.commit()
        sent = 0
        for msg in claimed:
            try:
                payload = json.loads(msg["payload"])
                where = await self._send(msg["topic"], msg["idempotency_key"], payload)
            except Exception as exc:
                self.failures += 1
                wait = self.backoff(msg["attempts"])
                log.warning(
                    "outbox %s: delivery failed (%s); next try in %.0f s",
                    msg["idempotency_key"],
                    exc,
                    wait,
                )
                async with self._uow() as uow:
                    await uow.outbox.failed(
                        msg["id"],
                        self.clock.now() + timedelta(seconds=wait),
                        f"{type(exc).__name__}: {exc}",
                    )
                    await uow.commit()
                continue
            async with self._uow() as uow:
                await uow.outbox.delivered(msg["id"], self.clock.now())
                ref, url = getattr(where, "ref", None), getattr(where, "url", None)
                if msg["topic"] == "ticket.created" and (ref or url) and payload.get("id"):
                    await uow.tickets.set_helpdesk(payload["id"], ref, url)
                await uow.commit()
            sent += 1
            self.delivered += 1
        return sent

    async def close(self) -> None:
        close = getattr(self.sender, "close", None)
        if close is not None:
            await close()

    async def run(self) -> None:
        while True:
            try:
                await self.deliver_due()
                async with self._uow() as uow:
                    nxt = await uow.outbox.next_due()
            except Exception:
                log.exception("outbox worker: database problem; retrying")
                nxt = None
            delay = self.idle_poll
            if nxt is not None:
                delay = max(0.05, min(delay, (nxt - self.clock.now()).total_seconds()))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
