"""Publish/subscribe for pushes to agents and supervisors (window warnings etc.).

In one process the notifier is the whole story. With several instances on one PostgreSQL
the composition root sets :attr:`Notifier.relay` (``adapters/pg_notify.py``): every note
published here is also sent to the other instances, which :meth:`Notifier.deliver` it to
their own sockets as if it had been published there.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

log = logging.getLogger(__name__)

#: notes for the services, never for the sockets (``watch`` them)
INTERNAL = frozenset({"interfaces_changed"})
#: a note to every socket: "you may have missed notes, take a fresh desk" (after the
#: connection between instances was lost and found again)
RESYNC = "resync"


class Notifier:
    """Every subscriber gets every message; a slow one loses its oldest, never blocks others."""

    def __init__(self, queue_size: int = 256, instance: str | None = None) -> None:
        self._subscribers: set[asyncio.Queue] = set()
        self._size = queue_size
        self._watchers: dict[str, list[Callable[[dict], None]]] = {}
        #: who this process is among the instances (the origin of what it relays)
        self.instance = instance or uuid.uuid4().hex[:12]
        #: set on PostgreSQL: sends a published note to the other instances
        self.relay: Callable[[dict], None] | None = None
        self.published = 0

    def publish(self, message: dict) -> None:
        """A note that happened here: to this process's sockets and to the other instances."""
        self.deliver(message)
        if self.relay is not None:
            try:
                self.relay(message)
            except Exception as exc:  # the local sockets have it; the others catch up
                log.warning("note %s not relayed: %s", message.get("type"), exc)

    def deliver(self, message: dict) -> None:
        """A note to this process only (published here, or relayed from another instance)."""
        kind = message.get("type")
        for watcher in self._watchers.get(kind, ()):
            try:
                watcher(message)
            except Exception:
                log.exception("watcher of %s failed", kind)
        if kind in INTERNAL:
            return
        self.published += 1
        # one number per message: what the sockets share work on (the pop it stands for)
        message = {**message, "_seq": self.published}
        for q in list(self._subscribers):
            if q.full():
                q.get_nowait()
            q.put_nowait(message)

    def watch(self, kind: str, callback: Callable[[dict], None]) -> None:
        """Call ``callback`` with every note of this type, local or relayed."""
        self._watchers.setdefault(kind, []).append(callback)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue]:
        q: asyncio.Queue = asyncio.Queue(self._size)
        self._subscribers.add(q)
        try:
            yield q
        finally:
            self._subscribers.discard(q)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
