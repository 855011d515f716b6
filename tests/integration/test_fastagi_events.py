"""A FastAGI dialogue hands its events over and ends without waiting for their write; the
server's stop waits for every event handed over, stored or spooled; the caller-ID shortcut
is read while Asterisk plays the greeting (issue 14)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from callcenter.adapters.repositories import _SQLITE_WRITERS, _TaskLock
from callcenter.domain.certificates import Certificate, Contact, HolderType, luhn_complete
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


async def test_the_caller_id_shortcut_is_read_before_the_greeting_is_answered(container, clock):
    """The flow asks for the caller's certificates after the greeting; the server reads them
    as the dialogue starts, while Asterisk (here: nobody) has not answered its first command."""
    number = luhn_complete("100000000001")
    today = clock.now().date()
    holder = Contact("Иванов Иван Иванович", "+79001112233")
    cert = Certificate(number, HolderType.PERSON, holder.full_name, "", "П", "5.0.1",
                       today - timedelta(days=30), today + timedelta(days=300),
                       contacts=[holder])  # fmt: skip
    await container.registry.import_certificates([cert], clock.now())
    read = asyncio.Event()
    reader = container.registry.reader
    real = reader.by_phone

    async def by_phone(phone: str):  # the real read, and a sign that it was made
        try:
            return await real(phone)
        finally:
            read.set()

    reader.by_phone = by_phone
    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                b"agi_network: yes\nagi_network_script: collect_certificate\n"
                b"agi_channel: PJSIP/trunk-00000001\nagi_uniqueid: 1795480800.1\n"
                b"agi_callerid: 89001112233\n\n"
            )
            await writer.drain()
            first = await asyncio.wait_for(reader.readline(), 5)
            assert first.startswith(b"GET VARIABLE"), first  # unanswered from here on
            await asyncio.wait_for(read.wait(), 5)
            assert container.registry._cache.get(number)[0]  # what the shortcut will use
        finally:
            writer.close()


async def test_an_event_spooled_after_its_budget_but_also_written_is_stored_once(
    container, settings, monkeypatch
):
    """Overload: an event's write takes longer than the dialogue's report budget, so a copy
    goes to the spool, yet the write itself is not cancelled (group commit owns it) and
    completes. The spool's copy, sent later, is the same event: stored once, not twice (the
    load test at half speed stored call_started and agent_connected twice)."""
    from callcenter.telephony import fastagi
    from callcenter.telephony.fastagi import flush_spool, service_spool

    monkeypatch.setattr(fastagi, "REPORT_BUDGET", 0.2)
    call_id = "1795480700.2"
    spool = service_spool(settings)
    async with held_writes(container) as release:
        async with fastagi_server(container, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            res = await run_fastagi(
                "127.0.0.1", port, "call_ended", Caller(uniqueid=call_id, actions=[Hangup()])
            )
            assert res.agistatus == "SUCCESS", res.timeline
            for _ in range(200):  # the budget runs out: a copy is kept in the spool
                if list(spool.entries(10)):
                    break
                await asyncio.sleep(0.05)
            assert len(list(spool.entries(10))) == 1
            release()  # the write waiting in group commit goes through
        # the server's stop waited for it: stored once
        assert [e.event for e in await container.calls.events(call_id)] == ["call_ended"]
    assert await flush_spool(container, spool) == 1  # the copy: sent, recognised as stored
    events = await container.calls.events(call_id)
    assert [e.event for e in events] == ["call_ended"]
