"""Publish/subscribe for pushes to agents and supervisors (window warnings etc.).

In one process the notifier is the whole story. With several instances on one PostgreSQL
the composition root sets :attr:`Notifier.relay` (``adapters/pg_notify.py``): every note
published here is also sent to the other instances, which :meth:`Notifier.deliver` it to
their own sockets as if it had been published there.

A message is addressed when it is published, not filtered by every socket: with 200 agent
pages open, a note about one call wakes the sockets that may see it (its owner's, and the
supervisors'), not 200 handlers each asking whether it is theirs.

- A subscriber **of everything** (``subscribe()``: supervisors, admins, tests) gets every
  message at once, in order.
- An **agent's** subscriber (``subscribe(login=...)``) gets: notes naming their ``login``
  (their own state); notes about a call that belongs to them, or to nobody (the team's, as
  before interfaces were mapped); notes about no call and no login (general news). Never
  ``supervisor_alert``, never another agent's call or state.

Who owns a call is a question for the database (``owner``, installed by the composition root:
``AgentDesk.owner_of_note``), so agents' copies pass through one dispatcher task that asks it
once per note, in publication order (the order of an agent's notes is kept).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger(__name__)

#: the owner of the call a note is about: a login, or None for a call nobody owns
OwnerOf = Callable[[dict[str, Any]], Awaitable[str | None]]

#: notes only supervisors and admins get
SUPERVISORS_ONLY = frozenset({"supervisor_alert", "queue_changed"})
#: notes for the services, never for the sockets (``watch`` them)
INTERNAL = frozenset({"interfaces_changed"})
#: a note to a socket: "you may have missed notes, take a fresh desk" (after the
#: connection between instances was lost and found again, or when the socket fell behind)
RESYNC = "resync"


class Notifier:
    """A slow subscriber is told to resync (see :func:`_put`), never blocks others."""

    def __init__(self, queue_size: int = 256, instance: str | None = None) -> None:
        self._everything: set[asyncio.Queue] = set()
        self._watchers: dict[str, list[Callable[[dict], None]]] = {}
        #: who this process is among the instances (the origin of what it relays)
        self.instance = instance or uuid.uuid4().hex[:12]
        #: set on PostgreSQL: sends a published note to the other instances
        self.relay: Callable[[dict], None] | None = None
        self._agents: dict[str, set[asyncio.Queue]] = {}
        self._size = queue_size
        self.published = 0
        #: installed by bootstrap; without it a call note reaches every agent (the team's)
        self.owner: OwnerOf | None = None
        self._routing: asyncio.Queue | None = None
        self._router: asyncio.Task | None = None

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
        for q in self._everything:
            _put(q, message)
        if not self._agents or message.get("type") in SUPERVISORS_ONLY:
            return
        if self.owner is None:  # nobody to ask: the whole team's, as before interfaces
            self._deliver(message, None)
            return
        self._route(message)  # agents' copies keep publication order through one queue

    def _route(self, message: dict) -> None:
        if self._routing is None or self._router is None or self._router.done():
            self._routing = asyncio.Queue()
            self._router = asyncio.get_running_loop().create_task(
                self._dispatch(self._routing), name="notifier-router"
            )
        self._routing.put_nowait(message)

    async def _dispatch(self, routing: asyncio.Queue) -> None:
        while True:
            message = await routing.get()
            owner = None
            if "login" not in message and message.get("call_id"):
                try:
                    owner = await self.owner(message)  # type: ignore[misc]
                except Exception as exc:  # the database away: lost to agents, logged
                    log.warning("push %s not routed to agents: %s", message.get("type"), exc)
                    continue
            self._deliver(message, owner)

    def _deliver(self, message: dict, owner: str | None) -> None:
        """To the login a note names, else to the call's owner, else to every agent."""
        to = message.get("login", owner)
        if to is not None:
            for q in self._agents.get(to, ()):
                _put(q, message)
            return
        for queues in self._agents.values():
            for q in queues:
                _put(q, message)

    def watch(self, kind: str, callback: Callable[[dict], None]) -> None:
        """Call ``callback`` with every note of this type, local or relayed."""
        self._watchers.setdefault(kind, []).append(callback)

    @asynccontextmanager
    async def subscribe(self, login: str | None = None) -> AsyncIterator[asyncio.Queue]:
        """Every message (``login`` None), or an agent's share of them."""
        q: asyncio.Queue = asyncio.Queue(self._size)
        if login is None:
            self._everything.add(q)
        else:
            self._agents.setdefault(login, set()).add(q)
        try:
            yield q
        finally:
            if login is None:
                self._everything.discard(q)
            else:
                mine = self._agents.get(login, set())
                mine.discard(q)
                if not mine:
                    self._agents.pop(login, None)

    async def close(self) -> None:
        if self._router is not None:
            self._router.cancel()
            try:
                await self._router
            except (asyncio.CancelledError, Exception):
                pass
            self._router = None

    @property
    def subscribers(self) -> int:
        return len(self._everything) + sum(len(qs) for qs in self._agents.values())


def _put(q: asyncio.Queue, message: dict) -> None:
    """A socket that fell a whole queue behind loses what it had not read, and is told so:
    its queue is emptied and starts with a ``resync`` note (the socket then sends a fresh
    desk, and the board reads itself again), so it never shows a stream with holes in it.
    Nobody else waits for it."""
    if q.full():
        while not q.empty():
            q.get_nowait()
        q.put_nowait({"type": RESYNC})
    q.put_nowait(message)
