"""Two instances on one PostgreSQL, each with its own container, web app and relay of notes
(``adapters/pg_notify.py``): a note published on A reaches B's sockets, the agent's pop
included; a mapping change on A is honoured by B at once; a lost connection is made again
and every socket on that instance gets a fresh desk."""

from __future__ import annotations

import asyncio
import contextlib
import json

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.adapters.pg_notify import APPLICATION, MAX_PAYLOAD, dsn_of, encode
from callcenter.config import Settings
from callcenter.services.notifier import Notifier
from callcenter.web.app import init_app
from tests.conftest import PG_SKIP, PG_URL, reset_postgres
from tests.integration.desk_people import PASSWORD, cookie
from tests.integration.test_agent_desk import _next, _open, _popped, connect

pytestmark = pytest.mark.postgres


def test_payload_is_small_and_plain():
    from datetime import UTC, datetime

    note = {"type": "ticket_created", "ticket_id": 7, "due_at": datetime(2026, 3, 17, tzinfo=UTC)}
    note |= {"state": object(), "_seq": 3}
    out = json.loads(encode(note, "me"))
    assert out == {
        "type": "ticket_created",
        "ticket_id": 7,
        "due_at": "2026-03-17T00:00:00+00:00",
        "_origin": "me",
    }
    huge = {"type": "supervisor_alert", "call_id": "1.2", "error": "ж" * 10_000}
    out = json.loads(encode(huge, "me"))
    assert out == {"type": "supervisor_alert", "call_id": "1.2", "_origin": "me"}
    assert len(encode(huge, "me").encode()) < MAX_PAYLOAD


@pytest.fixture
async def pair(clock, tmp_path):
    """Instances A and B on one PostgreSQL database, relays running."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    await reset_postgres(PG_URL)
    s = Settings().replace(database={"url": PG_URL}, agi={"spool_dir": str(tmp_path / "spool")})
    a = bootstrap.build(s, clock=clock)
    b = bootstrap.build(s, clock=clock)
    await db.upgrade(a.engine)
    tasks = [asyncio.create_task(c.bridge.run()) for c in (a, b)]
    for c in (a, b):
        await asyncio.wait_for(c.bridge.connected.wait(), 10)
    yield a, b
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t
    await a.close()
    await b.close()


async def test_a_note_published_on_a_reaches_b_once(pair):
    a, b = pair
    async with b.notifier.subscribe() as qb, a.notifier.subscribe() as qa:
        a.notifier.publish({"type": "window_met", "call_id": "X.1"})
        got = await asyncio.wait_for(qb.get(), 10)
        assert (got["type"], got["call_id"]) == ("window_met", "X.1")
        local = qa.get_nowait()  # A's own socket had it at once, and only once
        assert local["call_id"] == "X.1"
        b.notifier.publish({"type": "window_met", "call_id": "X.2"})
        assert (await asyncio.wait_for(qa.get(), 10))["call_id"] == "X.2"
        # nothing echoed back to its origin
        await asyncio.sleep(0)
        assert qa.empty() and (await asyncio.wait_for(qb.get(), 1))["call_id"] == "X.2"
        assert qb.empty()
    assert a.bridge.received == 1 and b.bridge.received == 1


async def test_pop_and_countdown_reach_a_socket_on_the_other_instance(pair, clock):
    a, b = pair
    await a.auth.add_user("иванова", "agent", PASSWORD, clock.now(), display_name="Иванова М.")
    await a.auth.add_user("петров", "agent", PASSWORD, clock.now(), display_name="Петров П.")
    await a.desk.set_interfaces("иванова", ["PJSIP/101"], clock.now())
    await a.desk.set_interfaces("петров", ["PJSIP/102"], clock.now())
    s = await b.auth.open_session("иванова", PASSWORD, clock.now())
    p = await b.auth.open_session("петров", PASSWORD, clock.now())
    async with TestClient(TestServer(init_app(b))) as client_b:
        ws, desk = await _open(client_b, cookie(s.cookie))
        other, _ = await _open(client_b, cookie(p.cookie))
        assert desk["call"] is None
        await connect(a, clock, "A.1", "PJSIP/101", cert=None)  # events posted to A
        msg = await _popped(ws, "A.1")
        assert msg["call"]["window"]["remaining_seconds"] == 600.0
        # the warning fired by A's scheduler, with its window read on B
        clock.advance(480)
        await a.scheduler.fire_due()
        msg = await _next(ws)
        assert (msg["type"], msg["call_id"]) == ("window_warning", "A.1")
        assert msg["window"]["warned_at"] is not None
        # Petrov saw none of it: his next note is about his own call
        await connect(a, clock, "B.1", "PJSIP/102", cert=None)
        await _popped(other, "B.1")

        # the mapping moved on A: B honours it at once (its owner cache of 30 s dropped)
        assert await b.desk.owner("B.1") == "петров"
        await a.desk.set_interfaces("петров", [], clock.now())
        await a.desk.set_interfaces("иванова", ["PJSIP/101", "PJSIP/102"], clock.now())
        for _ in range(100):
            if b.desk._owners == {}:
                break
            await asyncio.sleep(0.05)
        assert await b.desk.owner("B.1") == "иванова"
        await ws.close()
        await other.close()


async def test_lost_connection_is_made_again_and_screens_refreshed(pair, clock):
    a, b = pair
    async with b.notifier.subscribe() as qb:
        conn = await asyncpg.connect(dsn_of(PG_URL))
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = $1",
                APPLICATION,
            )
            assert killed == 2  # A's and B's listeners
        finally:
            await conn.close()
        got = await asyncio.wait_for(qb.get(), 15)
        assert got["type"] == "resync"
        await asyncio.wait_for(a.bridge.connected.wait(), 15)
        await asyncio.wait_for(b.bridge.connected.wait(), 15)
        assert a.bridge.connections == 2 and b.bridge.connections == 2
        a.notifier.publish({"type": "window_met", "call_id": "after.1"})
        got = await asyncio.wait_for(qb.get(), 10)
        assert (got["type"], got["call_id"]) == ("window_met", "after.1")


async def test_sqlite_has_no_relay(tmp_path, clock):
    url = f"sqlite+aiosqlite:///{tmp_path}/x.sqlite3"
    c = bootstrap.build(Settings().replace(database={"url": url}), clock=clock)
    try:
        assert c.bridge is None and c.notifier.relay is None
        assert isinstance(c.notifier, Notifier)
    finally:
        await c.close()


async def test_a_mapping_changed_by_the_command_line_is_told_to_the_instances(pair, clock):
    a, b = pair
    await a.auth.add_user("сидоров", "agent", PASSWORD, clock.now())
    await a.desk.set_interfaces("сидоров", ["PJSIP/103"], clock.now())
    await asyncio.sleep(0.5)
    await b.desk._directory_owner("PJSIP/103")  # B's directory cached (30 s)
    assert b.desk._directory is not None
    cli = bootstrap.build(a.settings, clock=clock)  # as `callcenter users interfaces` does
    try:
        assert cli.bridge is not None and not cli.bridge.connected.is_set()
        await cli.desk.set_interfaces("сидоров", ["PJSIP/104"], clock.now())
    finally:
        await cli.close()  # the relay is not running: the change goes out as it closes
    for _ in range(100):
        if b.desk._directory is None:
            break
        await asyncio.sleep(0.05)
    assert b.desk._directory is None
    assert await b.desk._directory_owner("PJSIP/104") == "сидоров"
