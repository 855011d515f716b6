"""``callcenter serve``: HTTP API, FastAGI and timers in one asyncio process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.config import Settings
from callcenter.web.app import init_app

log = logging.getLogger(__name__)


async def prepare(settings: Settings, *, demo: bool = False, clock=None):
    """Build the container, migrate the database and seed demo data if asked."""
    container = bootstrap.build(settings, clock=clock)
    if settings.database.auto_migrate:
        await db.upgrade(container.engine)
    if demo:
        from callcenter.demo import seed

        for line in await seed(container):
            print(line, flush=True)
    return container


async def fastagi_context(app):
    """The FastAGI server lives exactly as long as the web app (an owned resource)."""
    from callcenter.telephony.fastagi import fastagi_server
    from callcenter.web.keys import CONTAINER

    container = app[CONTAINER]
    s = container.settings.fastagi
    async with fastagi_server(container, s.host, s.port) as server:
        host, port = server.sockets[0].getsockname()[:2]
        print(f"FastAGI on agi://{host}:{port}/collect_certificate", flush=True)
        yield


async def demo_calls_context(app):
    """With --demo, a simulated switch places a call every so often, so calls flow."""
    import random

    from callcenter.telephony import simulator
    from callcenter.web.keys import CONTAINER

    container = app[CONTAINER]
    s = container.settings.fastagi

    async def loop() -> None:
        rng = random.Random()
        while True:
            await asyncio.sleep(rng.uniform(10, 30))
            numbers, contacts = simulator.demo_numbers(container.clock.now())
            try:
                await simulator.run(s.host, s.port, 1, 1, "mixed", 1.0, numbers, contacts)
            except OSError as exc:
                log.warning("demo call failed: %s", exc)

    task = asyncio.create_task(loop(), name="demo-calls")
    print("demo: a simulated call arrives every 10-30 s", flush=True)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def background_contexts(container, *, demo: bool = False) -> list:
    """Cleanup contexts for the FastAGI server and other owned background tasks."""
    contexts = []
    if container.settings.fastagi.enabled:
        contexts.append(fastagi_context)
        if demo:
            contexts.append(demo_calls_context)
    return contexts


async def serve(settings: Settings, *, demo: bool = False) -> None:
    logging.basicConfig(
        level=settings.logging.level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    container = await prepare(settings, demo=demo)
    app = init_app(container, extra_contexts=background_contexts(container, demo=demo))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http.host, settings.http.port)
    try:
        await site.start()
        url = f"http://{settings.http.host}:{settings.http.port}"
        print(
            f"callcenter serving on {url} (database: {_safe_url(settings.database.url)})",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        await container.close()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
