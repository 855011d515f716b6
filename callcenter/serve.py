"""``callcenter serve``: HTTP API, FastAGI and timers in one asyncio process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket

from aiohttp import web

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.config import Settings
from callcenter.web.app import init_app

log = logging.getLogger(__name__)
FASTAGI_ADDRESS = web.AppKey("fastagi_address", tuple)
#: how long a stopping instance lets its FastAGI dialogues finish (stop() waits longer: the
#: events the dialogues handed over are stored or spooled, up to fastagi.SETTLE_SECONDS, and
#: those still queued are written, up to 30 s more); 25 + 15 + 40 is within the systemd
#: unit's TimeoutStopSec=90
DRAIN_SECONDS = 25.0


async def prepare(settings: Settings, *, demo: bool = False, clock=None):
    """Build the container, migrate the database and seed demo data if asked."""
    container = bootstrap.build(settings, clock=clock)
    await check_helpdesk(container)
    if settings.database.auto_migrate:
        await db.upgrade(container.engine)
    if demo:
        from callcenter.demo import seed

        for line in await seed(container):
            print(line, flush=True)
    return container


async def check_helpdesk(container) -> None:
    """A helpdesk that answers and lacks the configured project, tracker, status or field
    stops the start with what is missing; one that cannot be reached now is only a warning
    (deliveries and polls wait for it)."""
    from callcenter.adapters.helpdesk import HelpdeskConfigError
    from callcenter.config import ConfigError

    resolve = getattr(container.helpdesk, "resolve", None)
    if resolve is None:
        return
    try:
        await resolve()
    except HelpdeskConfigError as exc:
        await container.close()
        raise ConfigError(
            "[helpdesk] " + "; ".join(exc.problems) + " (see `callcenter helpdesk check`)"
        ) from None
    except Exception as exc:  # not reachable now: not a reason to refuse calls
        log.warning(
            "helpdesk %s not reachable at start (%s: %s); tickets wait in the outbox",
            container.settings.helpdesk.url,
            type(exc).__name__,
            exc,
        )


def fastagi_container_factory(main):
    """A container of its own for the FastAGI thread (its engine and pool, built in that
    thread's loop), wired back to the main one: pushes to the screens and timers to arm go
    to the main loop's notifier and scheduler, counts to the same metrics."""
    main_loop = asyncio.get_running_loop()

    async def make():
        c = bootstrap.build(main.settings, clock=main.clock)
        c.metrics = main.metrics
        c.ivr.on_locked = main.ivr.on_locked
        c.notifier.publish = lambda msg: main_loop.call_soon_threadsafe(main.notifier.publish, msg)

        def on_timer(when, kind, key) -> None:
            main_loop.call_soon_threadsafe(main.scheduler.add, when, kind, key)

        c.calls.on_timer = c.tickets.on_timer = c.voicemail.on_timer = on_timer
        if main.outbox is not None:  # a ticket made here is forwarded by the main worker
            c.voicemail.factory.on_outbox = lambda: main_loop.call_soon_threadsafe(main.outbox.wake)
        return c

    return make


async def fastagi_context(app):
    """The FastAGI server lives exactly as long as the web app (an owned resource), on its
    own thread, loop and database pool (``FastAgiThread``): nothing the web side does can
    hold a caller."""
    from callcenter.telephony.fastagi import SETTLE_SECONDS, FastAgiThread
    from callcenter.web.keys import CONTAINER

    container = app[CONTAINER]
    s = container.settings.fastagi
    # SIGTERM drains: no new dialogue here (Asterisk tries the next instance), those in
    # progress finish (a dialogue with voicemail takes the longest), then the thread stops
    thread = FastAgiThread(
        fastagi_container_factory(container), s.host, s.port, drain_seconds=DRAIN_SECONDS
    )
    host, port = await asyncio.to_thread(thread.start)
    app[FASTAGI_ADDRESS] = (host, port)
    container.fastagi_listening = thread.listening
    print(f"FastAGI on agi://{host}:{port}/collect_certificate", flush=True)
    try:
        yield
    finally:
        await asyncio.to_thread(thread.stop, DRAIN_SECONDS + SETTLE_SECONDS + 40)


async def _demo_calls(container) -> None:
    """With --demo, a simulated caller dials in every 10-30 s whatever the earlier calls do,
    so calls overlap and the screens always have something to show."""
    import random

    from callcenter.telephony import simulator

    s = container.settings.fastagi
    rng = random.Random()
    calls: set[asyncio.Task] = set()  # owned: cancelled and awaited when the service stops

    async def one() -> None:
        numbers, contacts = simulator.demo_numbers(container.clock.now())
        try:
            await simulator.run(s.host, s.port, 1, 1, "mixed", 1.0, numbers, contacts)
        except OSError as exc:
            log.warning("demo call failed: %s", exc)

    print(
        "demo: a simulated caller dials in every 10-30 s over FastAGI, calls overlapping "
        "(IVR, queue, an agent answers, talk, hang-up); outside Moscow working hours they "
        "hear the closed-line message",
        flush=True,
    )
    try:
        while True:
            await asyncio.sleep(rng.uniform(10, 30))
            task = asyncio.create_task(one(), name="demo-call")
            calls.add(task)
            task.add_done_callback(calls.discard)
    finally:
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)


def _owned_task(name: str, factory):
    """A cleanup context running one background task, cancelled and awaited on shutdown."""

    async def context(app):
        from callcenter.web.keys import CONTAINER

        task = asyncio.create_task(factory(app[CONTAINER]), name=name)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return context


timers_context = _owned_task("timers", lambda c: c.scheduler.run())
outbox_context = _owned_task("outbox", lambda c: c.outbox.run())
answers_context = _owned_task("helpdesk-answers", lambda c: c.answers.run())
demo_calls_context = _owned_task("demo-calls", _demo_calls)
bridge_context = _owned_task("notes-bridge", lambda c: c.bridge.run())
retention_context = _owned_task("retention", lambda c: c.retention.run_daily(c.clock))


async def _trim_heap(_container) -> None:
    from callcenter.adapters import heap

    await heap.trim_every()


#: the C heap's free pages back to the system every minute (adapters/heap.py)
heap_context = _owned_task("heap-trim", _trim_heap)


async def ami_context(app):
    """The AMI client feeds QueueCallerJoin/AgentConnect/Abandon/Hangup into the call log."""
    from callcenter.adapters.ami import AmiClient
    from callcenter.adapters.ami_events import SupportLine, member_pause, queue_pause
    from callcenter.domain.errors import DomainError
    from callcenter.web.keys import CONTAINER

    container = app[CONTAINER]
    a = container.settings.ami
    line = SupportLine((a.queues or container.settings.ivr.queue).split(","))

    async def on_event(ev) -> None:
        body = line.take(ev)
        if body is None:
            pause = member_pause(ev)
            if pause is not None:  # paused on the phone: the agent's page follows
                try:
                    await container.desk.on_member_pause(*pause, container.clock.now())
                except DomainError as exc:
                    log.warning("AMI QueueMemberPause not taken: %s", exc.message)
            return
        try:
            await container.calls.record(body, container.clock.now())
        except DomainError as exc:
            log.warning("AMI event %s not taken: %s", ev.get("Event"), exc.message)

    client = AmiClient(a.host, a.port, a.username, a.secret, on_event)
    container.desk.pauser = queue_pause(client)
    task = asyncio.create_task(client.run(), name="ami")
    try:
        yield
    finally:
        container.desk.pauser = None
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def events_context(app):
    """Events still being written when the service stops are written before it goes
    (first in, so cleaned up last: after FastAGI and AMI have stopped adding)."""
    from callcenter.web.keys import CONTAINER

    yield
    try:
        await asyncio.wait_for(app[CONTAINER].calls.drain(), 30)
    except TimeoutError:
        log.error("events still unwritten after 30 s at shutdown (database down?)")


def background_contexts(container, *, demo: bool = False) -> list:
    """Cleanup contexts for the timers, the outbox, FastAGI and other owned tasks."""
    contexts = [events_context, timers_context, heap_context]
    if container.bridge is not None:  # PostgreSQL: notes to and from the other instances
        contexts.append(bridge_context)
    if container.outbox is not None:
        contexts.append(outbox_context)
    if container.answers is not None:
        contexts.append(answers_context)
    if container.settings.retention.personal_data_months > 0:
        contexts.append(retention_context)
    if container.settings.ami.enabled:
        contexts.append(ami_context)
    if container.settings.fastagi.enabled:
        contexts.append(fastagi_context)
        if demo:
            contexts.append(demo_calls_context)
    return contexts


async def serve(settings: Settings, *, demo: bool = False) -> None:
    from callcenter import logs

    logs.configure(settings.logging.level, settings.logging.format)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _check_ports(settings)  # before seeding: a second `serve --demo` must not touch the data
    lock = single_instance_lock(settings.database.url)  # held until the process ends
    try:
        await _serve(settings, demo=demo)
    finally:
        if lock is not None:
            lock.close()


async def _serve(settings: Settings, *, demo: bool) -> None:
    container = await prepare(settings, demo=demo)
    app = init_app(container, extra_contexts=background_contexts(container, demo=demo))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http.host, settings.http.port)
    try:
        await site.start()
        # what start-up built (modules, tables, the engine) lives as long as the process:
        # out of the collector's sight, a full collection under load costs a few ms, not 50-100
        gc.collect()
        gc.freeze()
        url = f"http://{settings.http.host}:{settings.http.port}"
        from callcenter.telephony import sdnotify

        sdnotify.notify("READY=1")  # (the FastAGI thread said so too; with it off, only here)
        print(
            f"callcenter serving on {url} (database: {_safe_url(settings.database.url)})",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        from callcenter import memtrace

        memtrace.install(loop)  # CALLCENTER_TRACEMALLOC: heap snapshots on SIGUSR2, off by default
        await stop.wait()
    finally:
        await runner.cleanup()
        await container.close()


def single_instance_lock(database_url: str):
    """SQLite serves one instance: an exclusive lock on ``<file>.serve-lock`` beside the
    database, held as long as the process (the kernel drops it if the process dies, even by
    ``kill -9``). A second ``serve`` on the same file stops at once with one line; the
    command-line tools (backups, imports) are not refused. None for PostgreSQL, where
    several instances share the database (the notes relayed by ``adapters/pg_notify.py``)."""
    import fcntl
    from pathlib import Path

    from sqlalchemy.engine import make_url

    u = make_url(database_url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    if u.database.startswith("file:"):
        return None
    path = Path(u.database).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(f"{path}.serve-lock", "a+")  # held for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise OSError(
            f"[database] {path} is already served by another callcenter serve: SQLite serves "
            "one instance (several instances need PostgreSQL)"
        ) from None
    return handle


def _check_ports(settings: Settings) -> None:
    """Fail at once, in one line, if the HTTP or FastAGI port is taken (OSError reaches the
    CLI's one-line handler); the real bind follows immediately after."""
    wanted = [("http", settings.http.host, settings.http.port)]
    if settings.fastagi.enabled:
        wanted.append(("fastagi", settings.fastagi.host, settings.fastagi.port))
    for section, host, port in wanted:
        if not port:
            continue  # 0: the system picks a free one
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise OSError(f"[{section}] host {host!r}: {exc}") from None
        family, _, _, _, addr = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(addr)
            except OSError as exc:
                raise OSError(
                    f"[{section}] port {port} on {host} is not free ({exc.strerror}); "
                    "is another callcenter serve running? Set another port with "
                    f"CALLCENTER_{section.upper()}_PORT"
                ) from None


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
