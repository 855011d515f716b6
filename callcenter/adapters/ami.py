"""AMI (Asterisk Manager Interface) client: one logged-in session that stays up. Stdlib + asyncio.

Why: AMI is a second source of call events (:mod:`callcenter.adapters.ami_events` maps them),
so the 10-minute window stays right even if a dialplan hook is missing. :class:`AmiClient`
keeps one logged-in TCP session, reconnecting with capped, jittered exponential backoff, and
hands every ``Event:`` message to ``on_event``. The wire format is
:mod:`callcenter.adapters.ami_codec`.

Session facts this relies on (``/work/shared/asterisk-transcripts``, README facts 14-15):

* ``ActionID`` is echoed right after ``Response:`` (and in list events). Responses are written
  directly while events are queued, so a response can overtake events it caused (07:240):
  responses are matched to actions by ActionID only, never by order.
* A failed login is answered after ~1 s with ``Response: Error`` / ``Message: Authentication
  failed`` and then the connection is CLOSED (07:94-105). ``Logoff`` gets
  ``Response: Goodbye`` and then a close (07:421).

One concern, the session's life (connect, login, actions matched to responses, keepalive,
dispatch, reconnect): ~440 lines, a good part of them its timing rules in docstrings.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from callcenter.adapters.ami_codec import (
    BANNER_PREFIX,
    AmiError,
    AmiFramer,
    AmiMessage,
    encode_action,
)

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024

OnEvent = Callable[[AmiMessage], Awaitable[None]]


class AmiConnectionLost(AmiError, ConnectionError):
    """The TCP session ended while something was waiting for it."""


class AmiNotConnected(AmiError):
    """An action was requested while no logged-in session exists."""


class AmiLoginError(AmiError):
    """Login was refused (``Response: Error``); Asterisk closes the connection after it."""


class AmiTimeout(AmiError, TimeoutError):
    """No response to an action within its timeout."""


class AmiClient:
    """One AMI session that stays up: login, events to ``on_event``, actions, keepalive.

    ``await client.run()`` (usually as a task) connects, reads the banner, logs in with
    ``Events: <events>`` and then delivers every ``Event:`` message, in wire order, to
    ``await on_event(message)`` from a single dispatcher task (a slow callback applies
    back-pressure up to ``queue_size`` messages; an exception in it is logged and the next
    event is delivered). On EOF, a socket error, a refused login or a missed ``Ping`` it
    reconnects after ``reconnect_min * 2**n`` seconds (jittered by -20 %..+20 %, clamped to
    ``[reconnect_min, reconnect_max]``); ``n`` goes back to 0 after every successful login.
    It never raises out of ``run()`` except on cancellation.

    ``await client.close()`` sends ``Logoff`` (if logged in), waits briefly for
    ``Response: Goodbye``, stops ``run()``, delivers the events already received (up to
    ``close_timeout``) and cancels and awaits every task ``run()`` created. A closed client
    stays closed.

    Injectable for tests: ``sleep`` (the reconnect backoff wait), ``rand`` (the jitter, a
    float in [0, 1)), ``clock`` (monotonic seconds, for :attr:`last_received` and uptimes).
    Events received while disconnected are lost: AMI does not replay them.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        on_event: OnEvent,
        *,
        events: str | None = "call,agent",
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        ping_interval: float = 20.0,
        ping_timeout: float = 10.0,
        action_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        close_timeout: float = 2.0,
        queue_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < reconnect_min <= reconnect_max:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")
        self.host, self.port = host, port
        self.username, self._secret = username, secret
        self.events = events
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.action_timeout, self.connect_timeout = action_timeout, connect_timeout
        self.close_timeout = close_timeout
        self._on_event = on_event
        self._clock, self._sleep, self._rand = clock, sleep, rand
        self._queue: asyncio.Queue[AmiMessage] = asyncio.Queue(maxsize=queue_size)
        self._pending: dict[str, asyncio.Future[AmiMessage]] = {}
        self._ids = itertools.count(1)
        self._id_prefix = f"cc-{os.getpid()}-{id(self) & 0xFFFFFF:06x}"
        self._write_lock = asyncio.Lock()
        self._writer: asyncio.StreamWriter | None = None
        self._current: asyncio.Task[Any] | None = None  # the session or the backoff wait
        self._dispatcher: asyncio.Task[None] | None = None
        self._exited = asyncio.Event()
        self._ready = asyncio.Event()
        self._running = False
        self._stopping = False
        self._failures = 0
        self._logged_in = False
        # Read-only status for health checks and tests.
        self.banner: str | None = None
        self.connects = 0  # TCP connections made
        self.logins = 0  # successful logins
        self.login_failures = 0
        self.events_received = 0
        self.events_dispatched = 0
        self.last_error: str | None = None
        self.last_received: float | None = None  # clock() of the last bytes read

    def __repr__(self) -> str:
        state = "logged in" if self._logged_in else "stopped" if self._stopping else "offline"
        return f"<AmiClient {self.username}@{self.host}:{self.port} {state}>"

    @property
    def logged_in(self) -> bool:
        return self._logged_in

    async def wait_logged_in(self) -> None:
        """Return once a session is logged in (wrap it in ``asyncio.timeout``)."""
        await self._ready.wait()

    async def drain_events(self) -> None:
        """Return once every event received so far has been through ``on_event``. After
        ``await action("Ping")`` this covers every event sent before the Pong."""
        await self._queue.join()

    # ---- lifecycle

    async def run(self) -> None:
        if self._running:
            raise RuntimeError("AmiClient.run() is already running")
        if self._stopping:
            return
        self._running = True
        self._exited.clear()
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="ami-dispatch")
        try:
            while not self._stopping:
                self._current = asyncio.create_task(self._session(), name="ami-session")
                await asyncio.wait({self._current})
                session, self._current = self._current, None
                delay = None if self._stopping else self._next_delay()
                self._session_ended(session, delay)
                if delay is None or self._stopping:
                    break
                self._current = asyncio.create_task(self._pause(delay), name="ami-backoff")
                await asyncio.wait({self._current})
                self._current = None
        finally:
            await self._cancel(self._current)
            self._current = None
            if self._stopping and self._dispatcher is not None and not self._dispatcher.done():
                try:
                    async with asyncio.timeout(self.close_timeout):
                        await self._queue.join()
                except TimeoutError:
                    log.warning(
                        "AMI: %d received events not delivered at close", self._queue.qsize()
                    )
            await self._cancel(self._dispatcher)
            self._running = False
            self._exited.set()

    async def close(self) -> None:
        """Log off, stop :meth:`run` and wait for every task it started. Idempotent."""
        self._stopping = True
        if self._logged_in:
            try:
                reply = await self._send_action("Logoff", {}, self.close_timeout)
                log.info("AMI logoff: %s", reply.get("Message") or reply.get("Response"))
            except (AmiError, OSError) as exc:
                log.debug("AMI logoff failed: %s", exc)
        if self._current is not None:
            self._current.cancel()
        if self._running and asyncio.current_task() is not self._dispatcher:
            try:
                async with asyncio.timeout(self.close_timeout + 5.0):
                    await self._exited.wait()
            except TimeoutError:
                log.error("AMI client did not stop within %.1f s", self.close_timeout + 5.0)
        # Whatever run() left behind (it was cancelled from outside, or is stuck).
        await self._cancel(self._current)
        if asyncio.current_task() is not self._dispatcher:
            await self._cancel(self._dispatcher)

    # ---- actions

    async def action(
        self, name: str, *, reply_timeout: float | None = None, **fields: Any
    ) -> AmiMessage:
        """Send ``Action: name`` with ``fields`` (an ``ActionID`` is generated unless given)
        and return its response message, ``Response: Error`` included. Events the action
        causes (event lists, OriginateResponse) go to ``on_event``. Raises AmiNotConnected
        while not logged in, AmiTimeout after ``reply_timeout`` (default
        ``action_timeout``) and AmiConnectionLost if the session ends first."""
        if not self._logged_in:
            raise AmiNotConnected(f"not logged in to AMI at {self.host}:{self.port}")
        timeout = self.action_timeout if reply_timeout is None else reply_timeout
        return await self._send_action(name, fields, timeout)

    async def _send_action(self, name: str, fields: Mapping[str, Any], limit: float) -> AmiMessage:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AmiNotConnected(f"no AMI connection to {self.host}:{self.port}")
        fields = dict(fields)
        action_id = str(fields.pop("ActionID", None) or f"{self._id_prefix}-{next(self._ids)}")
        if action_id in self._pending:
            raise ValueError(f"ActionID {action_id!r} is already waiting for a response")
        data = encode_action(name, fields, action_id)
        fut: asyncio.Future[AmiMessage] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = fut
        try:
            async with self._write_lock:
                writer.write(data)
                await writer.drain()
            async with asyncio.timeout(limit):
                return await fut
        except TimeoutError:
            raise AmiTimeout(
                f"no response to {name} (ActionID {action_id}) within {limit:g} s"
            ) from None
        except (ConnectionError, OSError) as exc:
            raise AmiConnectionLost(f"{name}: {exc}") from exc
        finally:
            if self._pending.get(action_id) is fut:
                del self._pending[action_id]

    # ---- one TCP session

    async def _session(self) -> None:
        self.connects += 1
        async with asyncio.timeout(self.connect_timeout):
            reader, writer = await asyncio.open_connection(self.host, self.port)
        started = self._clock()
        self._writer = writer
        banner: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        read_task = asyncio.create_task(self._read_loop(reader, banner), name="ami-read")
        ping_task: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                self.banner = await banner
            if not self.banner.startswith(BANNER_PREFIX):
                log.warning("AMI %s:%d: unexpected banner %r", self.host, self.port, self.banner)
            fields = {"Username": self.username, "Secret": self._secret, "Events": self.events}
            reply = await self._send_action("Login", fields, self.action_timeout)
            if (reply.get("Response") or "").lower() != "success":
                raise AmiLoginError(reply.get("Message") or reply.get("Response") or "refused")
            self._logged_in = True
            self._ready.set()
            self.logins += 1
            self._failures = 0
            self.last_error = None
            log.info(
                "AMI logged in to %s:%d as %r (%s, events %s)",
                self.host,
                self.port,
                self.username,
                self.banner,
                self.events,
            )
            ping_task = asyncio.create_task(self._ping_loop(), name="ami-ping")
            done, _ = await asyncio.wait({read_task, ping_task}, return_when="FIRST_COMPLETED")
            for task in (ping_task, read_task):
                if task in done:
                    task.result()
            raise AmiConnectionLost("connection closed by the server")  # pragma: no cover
        finally:
            was_up = self._logged_in
            self._logged_in = False
            self._ready.clear()
            self._writer = None
            await self._cancel(ping_task)
            await self._cancel(read_task)
            self._fail_pending(AmiConnectionLost("AMI connection closed"))
            writer.close()
            try:
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
            except (TimeoutError, OSError):
                writer.transport.abort()
            if was_up:
                log.info("AMI session lasted %.1f s", self._clock() - started)

    async def _read_loop(self, reader: asyncio.StreamReader, banner: asyncio.Future[str]) -> None:
        framer = AmiFramer()
        why: AmiError = AmiConnectionLost("AMI connection closed")
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    if framer.pending:
                        log.warning("AMI: connection closed in the middle of a message")
                    raise AmiConnectionLost("connection closed by the server")
                self.last_received = self._clock()
                messages = framer.feed(data)
                if framer.banner is not None and not banner.done():
                    banner.set_result(framer.banner)
                for msg in messages:
                    await self._handle(msg)
        except AmiError as exc:
            why = exc
            raise
        except OSError as exc:
            why = AmiConnectionLost(f"AMI connection failed: {exc}")
            raise
        finally:
            if not banner.done():
                banner.set_exception(why)
            self._fail_pending(why)

    async def _handle(self, msg: AmiMessage) -> None:
        if "Event" in msg:
            self.events_received += 1
            await self._queue.put(msg)
            return
        if "Response" in msg:
            fut = self._pending.pop(msg.get("ActionID", ""), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            else:
                log.debug("AMI: response for no pending action: %r", dict(msg))
            return
        log.debug("AMI: ignoring a message with neither Event nor Response: %r", dict(msg))

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await self._send_action("Ping", {}, self.ping_timeout)
            except AmiTimeout:
                raise AmiTimeout(f"no reply to Ping within {self.ping_timeout:g} s") from None

    def _fail_pending(self, exc: AmiError) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)

    # ---- events

    async def _dispatch_loop(self) -> None:
        while True:
            msg = await self._queue.get()
            try:
                await self._on_event(msg)
            except Exception:
                log.exception(
                    "AMI on_event failed for %s (Linkedid %s)",
                    msg.get("Event"),
                    msg.get_ci("Linkedid"),
                )
            finally:
                self.events_dispatched += 1
                self._queue.task_done()

    # ---- reconnecting

    def _next_delay(self) -> float:
        base = self.reconnect_min * 2 ** min(self._failures, 32)
        self._failures += 1
        delay = min(base, self.reconnect_max) * (0.8 + 0.4 * self._rand())
        return max(self.reconnect_min, min(self.reconnect_max, delay))

    async def _pause(self, delay: float) -> None:
        await self._sleep(delay)

    def _session_ended(self, task: asyncio.Task[None], delay: float | None) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        self.last_error = f"{type(exc).__name__}: {exc}"
        if delay is None:
            log.debug("AMI session ended at close: %s", self.last_error)
            return
        where = f"{self.host}:{self.port}"
        if isinstance(exc, AmiLoginError):
            self.login_failures += 1
            log.error(
                "AMI login to %s as %r failed: %s (check manager.conf secret/permit); "
                "retrying in %.2f s",
                where,
                self.username,
                exc,
                delay,
            )
        elif isinstance(exc, AmiError | OSError | TimeoutError):
            log.warning("AMI connection to %s: %s; reconnecting in %.2f s", where, exc, delay)
        else:
            log.error(
                "AMI session to %s failed; reconnecting in %.2f s", where, delay, exc_info=exc
            )

    @staticmethod
    async def _cancel(task: asyncio.Future[Any] | None) -> None:
        """Cancel ``task`` and wait for it to finish, without taking on its exception (but a
        cancellation of the *calling* task still propagates)."""
        if task is None or task is asyncio.current_task():
            return
        if not task.done():
            task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: it was logged (or is irrelevant) already
