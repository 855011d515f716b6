"""A database that drops connections under load: every answer is 2xx or 503, nothing
acknowledged is lost, and the AGI side sends the 503s again.

PostgreSQL backends are terminated for real (``pg_terminate_backend``) while events are
posted concurrently over HTTP; the process AGI's client and spool are driven against a real
socket that answers 503.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import exc as sa
from sqlalchemy import text

from callcenter.adapters import db
from callcenter.telephony import ivr as flows
from callcenter.telephony.process_agi import resolve
from callcenter.telephony.service_client import ServiceClient
from callcenter.telephony.spool import Spool
from tests.conftest import PG_URL
from tests.integration.test_agi_client import one_shot_server

KILL = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def _killer(stop: asyncio.Event, kills: list[int]) -> None:
    """Terminate every other backend of the database, again and again, from its own engine."""
    engine = db.create_engine(PG_URL, pool_size=1)
    try:
        while not stop.is_set():
            try:
                async with engine.connect() as conn:
                    n = (await conn.execute(text(KILL))).scalar_one()
                    await conn.commit()
                kills.append(n)
            except Exception:  # the killer may be killed by another test's killer: go on
                pass
            await asyncio.sleep(0.03)
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_backends_killed_under_load_give_2xx_or_503_and_lose_nothing(
    settings, client, pbx_token, container, clock
):
    if not settings.database.url.startswith("postgresql"):
        pytest.skip("terminating backends needs PostgreSQL")
    headers = {"Authorization": f"Bearer {pbx_token}"}
    at = clock.now() - timedelta(seconds=30)
    answers: dict[int, list[str]] = {}
    stop = asyncio.Event()
    kills: list[int] = []
    killer = asyncio.create_task(_killer(stop, kills))

    async def post(i: int) -> None:
        body = {
            "event": "call_started",
            "call_id": f"777.{i}",
            "caller_number": "79001234567",
            "at": (at + timedelta(milliseconds=i)).isoformat(),
        }
        async with client.post("/api/v1/events", json=body, headers=headers) as r:
            answers.setdefault(r.status, []).append(body["call_id"])
            await r.read()

    try:
        for start in range(0, 3000, 100):
            await asyncio.gather(*(post(i) for i in range(start, start + 100)))
    finally:
        stop.set()
        await killer
    assert sum(kills) > 0, "no backend was terminated: the test proved nothing"
    assert set(answers) <= {200, 201, 503}, {k: len(v) for k, v in answers.items()}
    assert answers.get(503), "no request met a killed connection: the test proved nothing"
    ok = answers.get(201, []) + answers.get(200, [])
    async with container.engine.connect() as conn:
        stored = set((await conn.execute(text("SELECT call_id FROM call_events"))).scalars().all())
    assert set(ok) <= stored, sorted(set(ok) - stored)[:10]
    # the service is healthy afterwards: a normal event goes through
    async with client.post(
        "/api/v1/events",
        json={"event": "call_started", "call_id": "777.done", "at": at.isoformat()},
        headers=headers,
    ) as r:
        assert r.status == 201, await r.text()


def test_a_dropped_backend_is_an_outage_not_a_bug():
    """The errors a terminated backend leaves behind, as the driver and SQLAlchemy raise
    them, are outages (503); a value the column refuses is not."""
    from asyncpg import exceptions as pg

    state = pg.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    )
    wrapped = sa.InternalError("INSERT ...", {}, state)  # what SQLAlchemy raises
    assert db.is_unavailable(state)
    assert db.is_unavailable(wrapped)
    chained = RuntimeError("writing the batch failed")
    chained.__cause__ = wrapped
    assert db.is_unavailable(chained)
    assert db.is_unavailable(sa.InvalidRequestError("This connection is closed"))
    assert not db.is_unavailable(sa.InvalidRequestError("A value is required"))
    assert db.is_unavailable(pg.AdminShutdownError("terminating connection"))
    assert db.is_unavailable(pg.DeadlockDetectedError("deadlock detected"))
    assert db.is_unavailable(pg.TooManyConnectionsError("too many clients"))
    assert db.is_unavailable(sqlite3.OperationalError("database is locked"))
    # a value the driver refuses derives from its InterfaceError: still the data's fault
    bad = pg.DataError("invalid input for query argument $1")
    assert not db.is_unavailable(bad)
    assert not db.is_unavailable(sa.InterfaceError("INSERT ...", {}, bad))
    assert not db.is_unavailable(sa.IntegrityError("INSERT ...", {}, Exception("dup")))
    assert not db.is_unavailable(KeyError("bug"))


async def test_the_process_agi_spools_a_503_and_sends_it_again(tmp_path):
    """A 503 is kept in the spool, a flush against a 503 keeps it, a flush that gets 201
    sends it; nothing is set aside as rejected."""
    server, url, seen = await one_shot_server(
        [
            (503, {"error": "database_unavailable"}),
            (503, {"error": "database_unavailable"}),
            (201, {"stored": True}),
        ]
    )
    try:
        spool = Spool(str(tmp_path), owner=url)
        report = flows.Report({"event": "call_ended", "call_id": "55.1", "hangup_by": "caller"})
        client = ServiceClient(url, "t")
        got = await asyncio.to_thread(resolve, report, client, spool)
        assert got is flows.SERVICE_DOWN
        kept = list(spool.entries())
        assert len(kept) == 1 and kept[0][1]["call_id"] == "55.1"
        client.close()
        again = ServiceClient(url, "t")
        assert await asyncio.to_thread(spool.flush, again) == 0
        again.close()
        assert len(list(spool.entries())) == 1  # the second 503: kept, not rejected
        last = ServiceClient(url, "t")
        assert await asyncio.to_thread(spool.flush, last) == 1
        last.close()
        assert list(spool.entries()) == []
        assert not list(tmp_path.glob("*.rejected"))
    finally:
        server.close()
        await server.wait_closed()
    # the same event three times, with the instant it was first stamped with
    assert len(seen) == 3 and len({s["at"] for s in seen}) == 1
