"""The FastAGI server inside ``callcenter serve``: the same flows, driven with asyncio.

``AGI(agi://HOST:4573/collect_certificate)`` and ``/agent_connected``, ``/call_ended``.
Service actions are answered in-process by the use cases, not over HTTP. Facts from the
transcripts this relies on: the environment may arrive in several reads (04), ``HANGUP`` is
written after a caller hangup *and* at the end of every session (fact 7), and Asterisk has no
inactivity timeout (fact 9), so the server bounds every wait itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator

from callcenter.domain.errors import DomainError
from callcenter.domain.log_context import bind_call
from callcenter.telephony import agi
from callcenter.telephony import ivr as flows
from callcenter.telephony.spool import Spool

log = logging.getLogger(__name__)
REPLY_TIMEOUT = 120.0  # the longest a prompt plus digit entry can take
ENV_TIMEOUT = 10.0  # the default of [fastagi] idle_timeout_seconds
MAX_LINE = 64 * 1024  # a longer line is not AGI: the connection is closed
#: the default of [fastagi] step_budget_seconds: the most a caller waits on one service
#: answer (working time, the caller-ID shortcut, a voicemail); the lookup has its own
#: [ivr] lookup_timeout_seconds. Asterisk never times out a FastAGI session (fact 18), so a
#: frozen database must cost a caller one budget, not the call
STEP_BUDGET = 1.5
REPORT_BUDGET = 10.0  # an event not stored by then goes to the spool (stamped: a retry dedups)
#: the most the server's stop waits for the events its dialogues handed over: each is stored
#: or spooled within REPORT_BUDGET, and the spool's write is a local file
SETTLE_SECONDS = REPORT_BUDGET + 5.0
SPOOL_FLUSH_SECONDS = 15.0  # how often events kept during an outage are tried again
#: the most the start waits to open its database connections before the first call (a
#: database away at start costs this once; its calls then go on without it, as ever)
WARM_BUDGET = 3.0


class InProcessResolver:
    """Answers the flows' service actions with the use cases of this process."""

    def __init__(self, container, spool: Spool | None = None) -> None:
        self.c = container
        self.lookup_timeout = container.settings.ivr.lookup_timeout_seconds
        self.spool = spool
        #: events handed over (:meth:`hand_over`) and not yet stored or spooled: a dialogue
        #: does not wait for them, the server's stop does (:meth:`settle`)
        self.pending: set[asyncio.Task] = set()

    def hand_over(self, action: flows.Report) -> None:
        """Record the event in the background: it joins the next group commit, or the spool
        if the database cannot take it (:meth:`_report`). The caller need not wait for the
        write, nor Asterisk's channel, which goes on to the queue meanwhile."""
        task = asyncio.ensure_future(self._timed_report(action))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _timed_report(self, action: flows.Report):
        started = time.perf_counter()
        try:
            return await self(action)
        finally:  # no longer in a dialogue's time: its own figure, so a slow write shows
            self.c.metrics.sample(
                "callcenter_fastagi_event_write_seconds",
                "Time from a FastAGI dialogue handing over an event to it being stored "
                "(or spooled); the dialogue does not wait for it.",
                time.perf_counter() - started,
            )

    def read_ahead(self, script: str, env: dict[str, str], budget: float) -> dict:
        """What a dialogue of ``script`` will ask and can be read as it starts, while
        Asterisk plays the greeting: the caller-ID shortcut's certificates. Each answer is
        a task (bounded by ``budget``) that the dialogue's question then takes; the read is
        one the flow would make anyway, unless the caller types a number over the greeting
        or the line is closed."""
        caller = flows.caller_number(env) if script == "collect_certificate" else None
        if caller is None:
            return {}
        action = flows.CallerCertificates(caller)
        task = asyncio.ensure_future(self._within(action, budget))
        task.add_done_callback(_retrieved)  # not asked for in the end: no warning at exit
        return {action: task}

    async def _within(self, action, budget: float):
        async with asyncio.timeout(budget):
            return await self(action)

    async def settle(self) -> int:
        """Wait until every event handed over so far is stored or spooled, for up to
        :data:`SETTLE_SECONDS`; how many are still unsettled then."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_SECONDS):
                while self.pending:
                    await asyncio.wait(list(self.pending))
        return len(self.pending)

    async def __call__(self, action):
        c = self.c
        bind_call(getattr(action, "call_id", None))  # this dialogue's lines name its call
        if isinstance(action, flows.Report):
            return await self._report(action.event)
        try:
            if isinstance(action, flows.WorkingTime):
                try:
                    is_open, nxt = await c.ivr.working_time(c.clock.now())
                except Exception as exc:  # the policy book is in the database: decide locally
                    log.warning("working time from the local calendar (%s)", exc)
                    is_open, nxt = c.ivr.local_working_time(c.clock.now())
                return flows.OpenState(is_open, nxt)
            if isinstance(action, flows.Voicemail):
                return await self._voicemail(action)
            if isinstance(action, flows.CallerCertificates):
                found = await c.ivr.caller_certificates(action.caller, c.clock.now())
                return [flows.Hint(h["number"], h["status"]) for h in found]
            if isinstance(action, flows.Check):
                started = time.perf_counter()
                async with asyncio.timeout(self.lookup_timeout):  # no extra task, unlike wait_for
                    result = await c.ivr.check(
                        action.call_id, action.caller, action.number, c.clock.now()
                    )
                c.metrics.observe_lookup(time.perf_counter() - started, "fastagi")
                return result["status"]
        except Exception as exc:
            if c.is_outage(exc):  # expected while the database is away: one line, no traceback
                log.warning(
                    "service action %s: database unavailable (%s); the IVR goes on without it",
                    type(action).__name__,
                    exc,
                )
            else:
                log.exception("service action %s failed", type(action).__name__)
            return flows.SERVICE_DOWN
        raise TypeError(f"unknown action {action!r}")

    async def _voicemail(self, action: flows.Voicemail) -> int | None:
        """The recording Asterisk wrote (this host, or a folder shared with it) becomes a
        ticket; the file is removed once the ticket holds its copy."""
        try:
            audio = await asyncio.to_thread(_read, action.path)
        except OSError as exc:
            log.warning("voicemail of call %s: cannot read %s (%s)", action.call_id,
                        action.path, exc)  # fmt: skip
            return None
        c = self.c
        now = c.clock.now()
        try:
            ticket = await c.voicemail.leave(
                call_id=action.call_id, caller=action.caller, number=action.number,
                audio=audio, now=now,
            )  # fmt: skip
        except DomainError as exc:
            log.warning("voicemail of call %s refused: %s", action.call_id, exc.message)
            return None
        except Exception as exc:
            if self.spool is None or not c.is_outage(exc):
                raise
            # the database away: the message waits in the spool (its file where Asterisk
            # wrote it) and becomes a ticket, dated when it was left, once it is back
            log.warning("voicemail of call %s kept for later: %s", action.call_id, exc)
            message = {"call_id": action.call_id, "caller": action.caller,
                       "number": action.number, "path": action.path}  # fmt: skip
            await asyncio.to_thread(self.spool.keep, {"at": now.isoformat(), "voicemail": message})
            return flows.KEPT
        with contextlib.suppress(OSError):
            await asyncio.to_thread(os.unlink, action.path)
        return ticket.id

    def without_service(self, action):
        """The answer when the service cannot be waited for: working time from the base
        policy's calendar, nothing else."""
        if isinstance(action, flows.WorkingTime):
            now = self.c.clock.now()
            return flows.OpenState(*self.c.ivr.local_working_time(now))
        return flows.SERVICE_DOWN

    async def _report(self, body: dict):
        """Record an event; if the database cannot take it now, keep it in the spool (as the
        process AGI does), stamped with when it happened, for :func:`flush_spool`."""
        now = self.c.clock.now()
        # stamped with when it happened, as the process AGI stamps its events: the write
        # outlives a timeout here (group commit owns it), so the copy spooled below must be
        # the same event (the same dedup key), or both are stored once the write completes
        body = {"at": now.isoformat(), **body}
        try:
            async with asyncio.timeout(REPORT_BUDGET):  # a frozen database: spool it
                stored, _ = await self.c.calls.record(body, now)
            return stored
        except DomainError as exc:
            log.warning("FastAGI event refused: %s (%s)", exc.message, body.get("event"))
            return None
        except Exception as exc:
            log.warning("FastAGI event kept for later (%s): %s", type(exc).__name__, exc)
            if self.spool is not None:  # stamped: sent later, it is still the same event
                await asyncio.to_thread(self.spool.keep, body)
            return flows.SERVICE_DOWN


def _retrieved(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


async def flush_spool(container, spool: Spool, limit: int = 200) -> int:
    """Record spooled events in-process, oldest first; stop at the first failure."""
    sent = 0
    for path, event in spool.entries(limit):
        try:
            if "voicemail" in event:
                await _hand_over(container, event)
            else:
                await container.calls.record(event, container.clock.now())
        except OSError as exc:  # a kept message whose recording is gone: a person must look
            log.warning("kept voicemail unreadable, set aside: %s", exc)
            spool.settle(path, sent=False)
            continue
        except DomainError as exc:
            log.warning("spooled event refused for good, kept aside: %s", exc.message)
            spool.settle(path, sent=False)
            continue
        except Exception as exc:
            log.info("spool flush stopped: %s", exc)
            break
        spool.settle(path, sent=True)
        sent += 1
    if sent:
        log.info("spool: %d late event(s) recorded", sent)
    return sent


async def _hand_over(container, entry: dict) -> None:
    """A message kept while the database was away becomes its ticket, dated when it was
    left (the call's own clock), and its recording moves to the ticket."""
    from callcenter.domain.instants import parse_instant

    message = entry["voicemail"]
    audio = await asyncio.to_thread(_read, message["path"])
    await container.voicemail.leave(
        call_id=message["call_id"], caller=message.get("caller"), number=message["number"],
        audio=audio, now=parse_instant(entry["at"]),
    )  # fmt: skip
    with contextlib.suppress(OSError):
        await asyncio.to_thread(os.unlink, message["path"])


async def _flush_now_and_then(container, spool: Spool) -> None:
    while True:
        await asyncio.sleep(SPOOL_FLUSH_SECONDS)
        try:
            await flush_spool(container, spool)
        except Exception:
            log.exception("spool flush failed")


class NotAgi(Exception):
    """The peer is not speaking AGI: what was wrong, for one WARNING line (no traceback);
    ``reason`` is the metric's label (``idle``, ``line_too_long``, ``garbage``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Session:
    """One FastAGI connection: read the env, run the named flow, close.

    Asterisk writes its environment at once (two TCP reads at most), so a peer that sends
    none within ``idle_timeout`` seconds, or a line longer than :data:`MAX_LINE`, or lines
    that are not AGI, is not Asterisk: :class:`NotAgi` says which, and the connection ends.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        resolve,
        options: flows.IvrOptions,
        metrics=None,
        idle_timeout: float = ENV_TIMEOUT,
        peer: str = "?",
        step_budget: float = STEP_BUDGET,
        lookup_budget: float = 3.0,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.step_budget, self.lookup_budget = step_budget, lookup_budget
        #: a service answer ran past its budget: the rest of the call goes without it
        self.service_down = False
        self.peer = peer
        self.idle_timeout = idle_timeout
        self.resolve, self.options, self.metrics = resolve, options, metrics
        self.parser = agi.ReplyParser()
        self.hangup_seen = False
        self.busy = 0.0  # seconds spent here between a reply and the next command
        #: events handed over by this session when the resolver cannot take them itself
        #: (a plain function): awaited at the session's end
        self.reports: list[asyncio.Task] = []
        #: answers being read ahead of the flow's question (InProcessResolver.read_ahead)
        self.ahead: dict[object, asyncio.Task] = {}

    async def run(self) -> flows.Outcome | None:
        try:
            async with asyncio.timeout(self.idle_timeout):
                env = await self._read_env()
        except TimeoutError:
            raise NotAgi(
                f"no complete AGI environment within {self.idle_timeout:g} s (idle)", "idle"
            ) from None
        except agi.AgiProtocolError as exc:
            raise NotAgi(f"not an AGI environment: {exc}", "garbage") from None
        script = env.get("agi_network_script", "").split("?", 1)[0].strip("/")
        factory = flows.FLOWS.get(script)
        if factory is None:
            log.warning(
                "FastAGI %s: unknown script %r (channel %s)",
                self.peer,
                script,
                env.get("agi_channel"),
            )
            # Asterisk answers a VERBOSE at once: a peer that does not is held no longer than
            # an idle one
            await self._send(
                agi.verbose(f"callcenter: unknown FastAGI script {script!r}", 1),
                wait=self.idle_timeout,
            )
            return None
        started = time.perf_counter()
        flow = factory(env, self.options)
        read_ahead = getattr(self.resolve, "read_ahead", None)
        if read_ahead is not None:
            self.ahead = read_ahead(script, env, self.step_budget)
        outcome = await self._drive(flow)
        if self.metrics is not None:
            self.metrics.inc(
                "callcenter_fastagi_sessions_total",
                "FastAGI sessions by script.",
                script=script,
                route=outcome.route or "none",
            )
            self.metrics.sample(
                f"callcenter_fastagi_{script}_service_seconds",
                "Time the service itself spent on one FastAGI session (not waiting on Asterisk).",
                self.busy,
            )
        log.info(
            "call %s: %s done in %.0f ms: route=%s status=%s%s",
            outcome.call_id,
            script,
            (time.perf_counter() - started) * 1000,
            outcome.route,
            outcome.status,
            " (caller hung up)" if outcome.hung_up else "",
        )
        return outcome

    async def _drive(self, flow) -> flows.Outcome:
        mark = time.perf_counter()
        try:
            action = next(flow)
            while True:
                if isinstance(action, flows.Agi):
                    self.busy += time.perf_counter() - mark
                    result = await self._send(action.line)
                    mark = time.perf_counter()
                elif isinstance(action, flows.Report):
                    # the flow ignores a report's answer: the caller need not wait for the
                    # write, nor does the session's end. The resolver owns the write from
                    # here: stored with the next group commit or kept in the spool, and the
                    # server's stop waits for it (fastagi_server, InProcessResolver.settle)
                    hand_over = getattr(self.resolve, "hand_over", None)
                    if hand_over is not None:
                        hand_over(action)
                    else:
                        self.reports.append(asyncio.ensure_future(self.resolve(action)))
                    result = None
                else:
                    result = await self._ask(action)
                action = flow.send(result)
        except StopIteration as stop:
            return stop.value
        finally:
            if self.reports:  # a resolver without hand_over: its writes end with the session
                await asyncio.wait(self.reports, timeout=REPORT_BUDGET)
            self.busy += time.perf_counter() - mark

    async def _ask(self, action):
        """A service action within its budget. Once one ran out (a frozen database, a stalled
        pool), the rest of this call is answered without the service, at once."""
        ahead = self.ahead.pop(action, None)
        if not self.service_down:
            budget = self.lookup_budget if isinstance(action, flows.Check) else self.step_budget
            try:
                async with asyncio.timeout(budget):
                    return await (self.resolve(action) if ahead is None else ahead)
            except TimeoutError:
                self.service_down = True
                log.warning(
                    "FastAGI %s: %s took over %g s; this call goes on without the service",
                    self.peer,
                    type(action).__name__,
                    budget,
                )
        fallback = getattr(self.resolve, "without_service", None)
        return flows.SERVICE_DOWN if fallback is None else fallback(action)

    async def _read_env(self) -> dict[str, str]:
        parser = agi.EnvParser()
        while True:
            line = await self._readline()
            if not line:
                raise ConnectionError("connection closed before the AGI environment ended")
            if parser.feed_line(line.decode("utf-8", "replace")):
                return parser.env

    async def _readline(self) -> bytes:
        """One line; one longer than the stream's limit ends the session (:class:`NotAgi`)."""
        try:
            return await self.reader.readline()
        except ValueError:  # asyncio's LimitOverrunError, as readline reports it
            raise NotAgi(f"a line longer than {MAX_LINE} bytes", "line_too_long") from None

    async def _send(self, line: str, wait: float = REPLY_TIMEOUT) -> agi.AgiReply:
        """One command out, its reply in; a closed or silent peer counts as a dead channel."""
        if self.writer.is_closing():
            return flows.DEAD
        self.writer.write(line.encode("utf-8") if line.endswith("\n") else (line + "\n").encode())
        try:
            await self.writer.drain()
            async with asyncio.timeout(wait):  # wait_for would start a task per reply
                return await self._reply()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            return flows.DEAD

    async def _reply(self) -> agi.AgiReply:
        while True:
            raw = await self._readline()
            if not raw:
                return flows.DEAD
            try:
                got = self.parser.feed_line(raw.decode("utf-8", "replace"))
            except agi.AgiProtocolError as exc:
                raise NotAgi(f"not an AGI reply: {exc}", "garbage") from None
            if got is agi.HANGUP:
                self.hangup_seen = True  # the reply (-1 or 511) still follows, or EOF
                continue
            if isinstance(got, agi.AgiReply):
                return got


def _peer(writer: asyncio.StreamWriter) -> str:
    """``host:port`` of the other end, for the log."""
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def _refused(metrics, exc: NotAgi) -> None:
    """Count a connection that was not AGI, so ``/metrics`` shows a probe or a flood."""
    if metrics is not None:
        metrics.inc(
            "callcenter_fastagi_refused_total",
            "FastAGI connections closed because the peer did not speak AGI, by reason.",
            reason=exc.reason,
        )


def service_spool(settings) -> Spool:
    """This instance's spool: its folder is in the instance's own data directory, and what it
    keeps is marked with the instance's own address.

    The folder is ``[agi] spool_dir``, or else ``agi-spool`` beside the SQLite file (one
    ``serve`` per file), or ``var/agi-spool`` (the default data directory) on PostgreSQL. The
    owner is ``http://HOST:PORT`` of this instance's HTTP side, which no other instance on the
    host can hold at the same time, and which is the URL a process AGI of the same host posts
    to by default, so this instance also records what such scripts kept for it.
    """
    from sqlalchemy.engine import make_url

    folder = settings.agi.spool_dir
    if not folder:
        url = make_url(settings.database.url)
        on_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        folder = os.path.join(os.path.dirname(url.database) if on_file else "var", "agi-spool")
    return Spool(folder, owner=f"http://{settings.http.host}:{settings.http.port}")


@contextlib.asynccontextmanager
async def fastagi_server(
    container, host: str, port: int, *, drain_seconds: float = 0.0
) -> AsyncIterator[asyncio.Server]:
    """Serve FastAGI until the context ends: it stops accepting at once, lets the dialogues
    in progress finish for up to ``drain_seconds`` (a restart's drain: Asterisk goes on to
    the next instance for new calls), then cancels and awaits what is left."""
    spool = service_spool(container.settings)
    resolve = InProcessResolver(container, spool)
    options = flows.IvrOptions.from_settings(container.settings, "fastagi")
    sessions: set[asyncio.Task] = set()
    flusher = asyncio.create_task(_flush_now_and_then(container, spool), name="fastagi-spool")

    idle = container.settings.fastagi.idle_timeout_seconds
    budgets = {
        "step_budget": container.settings.fastagi.step_budget_seconds,
        "lookup_budget": container.settings.ivr.lookup_timeout_seconds,
    }

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        sessions.add(task)
        peer = _peer(writer)
        try:
            session = Session(
                reader, writer, resolve, options, container.metrics, idle, peer, **budgets
            )
            await session.run()
        except NotAgi as exc:  # a probe, a scanner, a misconfigured client: not our bug
            log.warning("FastAGI %s: %s; connection closed", peer, exc)
            _refused(container.metrics, exc)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.info("FastAGI %s: session ended early: %s", peer, exc)
        except Exception:
            log.exception("FastAGI %s: session failed", peer)
        except asyncio.CancelledError:
            # the server is stopping: end quietly. Re-raised, asyncio's stream callback would
            # log the cancelled task as an ERROR with a traceback (it calls task.exception())
            log.info("FastAGI %s: session cut short: the service is stopping", peer)
        finally:
            sessions.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    try:
        async with asyncio.timeout(WARM_BUDGET):
            await container.warm()
    except Exception as exc:
        log.warning("FastAGI: database connections not opened at start (%s: %s)",
                    type(exc).__name__, exc)  # fmt: skip
    server = await asyncio.start_server(handle, host, port, limit=MAX_LINE)
    try:
        yield server
    finally:
        server.close()
        if drain_seconds > 0 and sessions:
            log.info("FastAGI draining: %d dialogue(s) in progress", len(sessions))
            await asyncio.wait(list(sessions), timeout=drain_seconds)
            if sessions:
                log.warning("FastAGI: %d dialogue(s) still running after the drain", len(sessions))
        for task in list(sessions):
            task.cancel()
        if sessions:
            await asyncio.gather(*sessions, return_exceptions=True)
        # the events the dialogues handed over (those cut short too) are stored or spooled
        # before the loop ends: a dialogue's end did not wait for them
        if left := await resolve.settle():
            log.error("FastAGI: %d event(s) neither stored nor spooled at stop", left)
        flusher.cancel()
        await server.wait_closed()


class FastAgiThread:
    """The FastAGI server on a thread of its own, with its own event loop and its own
    container (engine, connection pool, use cases) made by ``make_container`` in that loop.

    Nothing else the process does (pages, reports, imports, logins, the timers) runs on that
    loop, so none of it can stall a caller; what the server's use cases would push to the
    screens or arm as timers is handed to the main loop by ``make_container``'s wiring. The
    systemd watchdog is pinged from this loop (:mod:`callcenter.telephony.sdnotify`).
    """

    def __init__(
        self, make_container, host: str, port: int, *, environ=None, drain_seconds: float = 0.0
    ) -> None:
        self.make_container, self.host, self.port = make_container, host, port
        self.drain_seconds = drain_seconds
        self.environ = environ
        self.address: tuple[str, int] | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fastagi", daemon=True)

    def start(self, timeout: float = 60.0) -> tuple[str, int]:
        """Start serving; the address it listens on (raises what start-up raised)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the FastAGI thread did not start")
        if self._error is not None:
            raise self._error
        assert self.address is not None
        return self.address

    def listening(self) -> bool:
        """Serving now: started, its thread alive and not told to stop (readiness probe)."""
        return (
            self.address is not None
            and self._thread.is_alive()
            and self._stop is not None
            and not self._stop.is_set()
        )

    def stop(self, timeout: float = 40.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(), or logged once serving
            if not self._ready.is_set():
                self._error = exc
            else:
                log.exception("the FastAGI thread failed")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        from callcenter.telephony import sdnotify

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        container = await self.make_container()
        try:
            async with fastagi_server(
                container, self.host, self.port, drain_seconds=self.drain_seconds
            ) as server:
                self.address = server.sockets[0].getsockname()[:2]
                self._ready.set()
                sdnotify.notify("READY=1", self.environ)
                pinger = asyncio.create_task(sdnotify.watchdog(self.environ), name="watchdog")
                try:
                    await self._stop.wait()
                finally:
                    pinger.cancel()
                    sdnotify.notify("STOPPING=1", self.environ)
            try:
                await asyncio.wait_for(container.calls.drain(), 30)
            except TimeoutError:
                log.error("FastAGI events still unwritten after 30 s at shutdown")
        finally:
            await container.close()
