"""A FastAGI dialogue hands its events over and ends without waiting for their write; the
server's stop waits for every event handed over, stored or spooled (issue 14)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from callcenter.adapters.repositories import _SQLITE_WRITERS, _TaskLock
from callcenter.telephony.fastagi import fastagi_server
from tests.agi_peer import Caller, Hangup, run_fastagi


@contextlib.asynccontextmanager
async def held_writes(container) -> AsyncIterator[Callable[[], None]]:
    """No call event can be stored until the function yielded is called: on SQLite the
    engine's writer turn is held, on PostgreSQL the events' table is locked (reads go on)."""
    engine = container.engine
    if engine.dialect.name == "sqlite":
        lock = _SQLITE_WRITERS.setdefault(engine.sync_engine, _TaskLock())
        await lock.acquire()
        held = [True]

        def release() -> None:
            if held.pop():
                lock.release()

        try:
            yield release
        finally:
            if held:
                release()
        return
    async with engine.connect() as conn:
        await conn.exec_driver_sql("LOCK TABLE call_events IN EXCLUSIVE MODE")
        done = asyncio.Event()
        waiter = asyncio.ensure_future(done.wait())

        async def unlock() -> None:
            await waiter
            await conn.rollback()

        unlocking = asyncio.ensure_future(unlock())
        try:
            yield done.set
        finally:
            done.set()
            await unlocking


async def test_a_dialogue_ends_before_its_event_is_stored_and_the_stop_waits_for_it(container):
    call_id = "1795480700.1"
    async with held_writes(container) as release:
        served = fastagi_server(container, "127.0.0.1", 0)
        server = await served.__aenter__()
        port = server.sockets[0].getsockname()[1]
        res = await run_fastagi(
            "127.0.0.1", port, "call_ended", Caller(uniqueid=call_id, actions=[Hangup()])
        )
        assert res.agistatus == "SUCCESS", res.timeline  # over while its event waits
        assert await container.calls.events(call_id) == []
        stopping = asyncio.ensure_future(served.__aexit__(None, None, None))
        done, _ = await asyncio.wait([stopping], timeout=0.2)
        assert not done  # the stop waits for the event handed over...
        release()
        await asyncio.wait_for(stopping, 30)
    # ...so it is stored once the server is gone
    assert [e.event for e in await container.calls.events(call_id)] == ["call_ended"]
