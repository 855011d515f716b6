"""Pushes across instances on one PostgreSQL: ``NOTIFY`` out, ``LISTEN`` in.

One dedicated asyncpg connection per instance (public API: ``add_listener``,
``add_termination_listener``, ``execute``). A note published in this instance is sent as a
small JSON payload (its type, ids and plain fields, and the origin instance) on
:data:`CHANNEL`; what the sockets show beyond that (the pop, the window) is read by id where
the note is rendered. A note from another instance is delivered to this one's sockets.

The connection is watched (a ping every few seconds when idle); when it is lost, it is made
again with back-off, and on its return every socket is told to take a fresh ``desk`` (the
notes sent meanwhile are lost for this instance) and the owner caches are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import date, datetime
from enum import Enum

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "callcenter_push"
#: the relay's connection as ``pg_stat_activity`` names it
APPLICATION = "callcenter-notes"
#: PostgreSQL's limit is 8000 bytes; a note longer than this goes with its ids only
MAX_PAYLOAD = 7000
#: the fields kept when a note is too long (its identity; the rest is read by id)
IDS = ("type", "call_id", "ticket_id", "login", "agent", "kind", "percent", "source")


def dsn_of(database_url: str) -> str:
    """asyncpg's DSN for a SQLAlchemy ``postgresql+asyncpg://`` URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


def _plain(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError


def encode(message: dict, origin: str) -> str:
    """The payload of a note: its plain fields (an instant as ISO text; an object such as
    an agent's state is left out, the receiver reads it), and its origin."""
    out = {}
    for k, v in message.items():
        if k.startswith("_"):
            continue
        try:
            out[k] = _plain(v)
        except TypeError:
            continue
    out["_origin"] = origin
    text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode()) > MAX_PAYLOAD:
        out = {k: out[k] for k in IDS if k in out} | {"_origin": origin}
        text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
    return text


class PgBridge:
    """Relays the notifier's notes between instances over ``LISTEN/NOTIFY``."""

    def __init__(
        self,
        database_url: str,
        notifier,
        *,
        ping_seconds: float = 5.0,
        min_backoff: float = 0.2,
        max_backoff: float = 5.0,
        queue_size: int = 10_000,
    ) -> None:
        self.dsn = dsn_of(database_url)
        self.notifier = notifier
        self.ping_seconds = ping_seconds
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self._out: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self._running = False
        #: the listener is connected now
        self.connected = asyncio.Event()
        #: how many times the connection was made (1 + reconnections), notes in and out
        self.connections = 0
        self.received = 0
        self.sent = 0
        self.dropped = 0

    def send(self, message: dict) -> None:
        """The notifier's relay: queue a note for the other instances (never blocks)."""
        if not self._running:
            return
        if self._out.full():
            self.dropped += 1
            return
        self._out.put_nowait(encode(message, self.notifier.instance))

    def _on_notify(self, _conn, _pid, _channel, payload: str) -> None:
        try:
            note = json.loads(payload)
        except ValueError:
            log.warning("a note that is not JSON on %s ignored", CHANNEL)
            return
        if not isinstance(note, dict) or note.get("_origin") == self.notifier.instance:
            return  # ours: delivered here when published
        note.pop("_origin", None)
        self.received += 1
        self.notifier.deliver(note)

    async def run(self) -> None:
        """Listen and send until cancelled; reconnect with back-off when the line is lost."""
        self._running = True
        delay = self.min_backoff
        try:
            while True:
                conn = None
                try:
                    conn = await asyncpg.connect(
                        self.dsn, timeout=5, server_settings={"application_name": APPLICATION}
                    )
                    lost = asyncio.Event()
                    conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                    await conn.add_listener(CHANNEL, self._on_notify)
                    self.connections += 1
                    if self.connections > 1:
                        log.info("notes between instances: connection back, screens refreshed")
                        self._catch_up()
                    self.connected.set()
                    delay = self.min_backoff
                    await self._pump(conn, lost)
                except Exception as exc:  # any failure of the line: made again, never given up
                    if self.connected.is_set() or delay == self.min_backoff:
                        log.warning(
                            "notes between instances: connection lost (%s: %s); retrying",
                            type(exc).__name__,
                            exc,
                        )
                finally:
                    self.connected.clear()
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(conn.close(), 2)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        finally:
            self._running = False

    def _catch_up(self) -> None:
        """After a lost connection: caches dropped, every socket given a fresh desk."""
        self.notifier.deliver({"type": "interfaces_changed"})
        self.notifier.deliver({"type": "resync"})

    async def _pump(self, conn, lost: asyncio.Event) -> None:
        """Send queued notes (a few per round trip); ping when idle; return when lost."""
        gone = asyncio.ensure_future(lost.wait())
        getter: asyncio.Future | None = None
        try:
            while True:
                getter = getter or asyncio.ensure_future(self._out.get())
                done, _ = await asyncio.wait(
                    {getter, gone}, timeout=self.ping_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                if gone in done:
                    raise ConnectionError("connection terminated")
                if getter not in done:  # idle: is the line still there?
                    await conn.fetchval("SELECT 1", timeout=self.ping_seconds)
                    continue
                batch, getter = [getter.result()], None
                while not self._out.empty() and len(batch) < 50:
                    batch.append(self._out.get_nowait())
                await conn.executemany(
                    "SELECT pg_notify($1, $2)", [(CHANNEL, p) for p in batch], timeout=10
                )
                self.sent += len(batch)
        finally:
            gone.cancel()
            if getter is not None:
                getter.cancel()
