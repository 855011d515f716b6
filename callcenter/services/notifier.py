"""In-process publish/subscribe for pushes to agents and supervisors (window warnings etc.)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

log = logging.getLogger(__name__)


class Notifier:
    """Every subscriber gets every message; a slow one loses its oldest, never blocks others."""

    def __init__(self, queue_size: int = 256) -> None:
        self._subscribers: set[asyncio.Queue] = set()
        self._size = queue_size
        self.published = 0

    def publish(self, message: dict) -> None:
        self.published += 1
        # one number per message: what the sockets share work on (the pop it stands for)
        message = {**message, "_seq": self.published}
        for q in list(self._subscribers):
            if q.full():
                q.get_nowait()
            q.put_nowait(message)

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
