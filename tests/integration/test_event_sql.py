"""The call log's driver SQL stores exactly what SQLAlchemy Core would, on both databases."""

from __future__ import annotations

import contextlib
import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from callcenter.adapters import event_sql
from callcenter.adapters import tables as t
from callcenter.domain.events import parse_event
from tests.wire import wire


def call_events(call_id: str, clock) -> list[dict]:
    t0 = clock.now()

    def at(seconds: float) -> str:
        return (t0 + timedelta(seconds=seconds)).isoformat()

    return [
        {"event": "call_started", "call_id": call_id, "caller_number": "79001234567", "at": at(0)},
        {
            "event": "certificate_checked",
            "call_id": call_id,
            "certificate": "1234567",
            "status": "VALID",
            "attempt": 2,
            "at": at(20.5),
        },
        {"event": "queued", "call_id": call_id, "queue": "поддержка", "at": at(21)},
        {
            "event": "agent_connected",
            "call_id": call_id,
            "agent": "PJSIP/101",
            "agent_name": "Иванова Мария",
            "at": at(50.123456),
        },
        {"event": "call_ended", "call_id": call_id, "hangup_by": "agent", "at": at(170)},
    ]


async def record_all(container, clock, bodies) -> None:
    for body in bodies:
        await container.calls.record(body, clock.now())


async def test_the_fast_statements_are_the_ones_in_use(container):
    async with container.calls._uow() as uow:
        log = await uow.call_log()
    assert type(log).__name__ in ("SqliteEvents", "PostgresEvents")


async def test_driver_sql_and_core_build_the_same_call(container, clock, monkeypatch):
    bodies = call_events("1795480100.1", clock)
    random.Random(7).shuffle(bodies)
    await record_all(container, clock, bodies)
    monkeypatch.setattr(event_sql, "DRIVER_SQL", False)
    await record_all(container, clock, [{**b, "call_id": "1795480100.2"} for b in bodies])
    fast = wire(await container.calls.get("1795480100.1"), container)
    core = wire(await container.calls.get("1795480100.2"), container)
    assert fast["queue"] == "поддержка" and fast["agent_name"] == "Иванова Мария"
    assert fast["connected_at"] == (clock.now() + timedelta(seconds=50.123456)).isoformat()
    assert fast["window"]["status"] == "met"
    for key in ("call_id", "window", "events"):
        fast.pop(key, None), core.pop(key, None)
    assert fast == core
    read_fast = await container.calls.events("1795480100.1")
    read_core = await container.calls.events("1795480100.2")
    assert [(e.event, e.at, e.data) for e in read_fast] == [
        (e.event, e.at, e.data) for e in read_core
    ]


@pytest.mark.parametrize("first_fast", [True, False])
async def test_one_call_written_by_both_paths(container, clock, monkeypatch, first_fast):
    bodies = call_events("1795480200.1", clock)
    monkeypatch.setattr(event_sql, "DRIVER_SQL", first_fast)
    await record_all(container, clock, bodies[:3])
    monkeypatch.setattr(event_sql, "DRIVER_SQL", not first_fast)
    await record_all(container, clock, bodies[3:])
    await record_all(container, clock, bodies[:2])  # repeats: stored once, whatever path
    call = wire(await container.calls.get("1795480200.1"), container)
    assert call["certificate"] == "1234567" and call["agent"] == "PJSIP/101"
    assert call["ended_at"] == (clock.now() + timedelta(seconds=170)).isoformat()
    assert len(await container.calls.events("1795480200.1")) == 5


@pytest.mark.parametrize("driver_first", [True, False])
@pytest.mark.parametrize("commit", [True, False])
async def test_driver_sql_commits_and_rolls_back_with_the_unit_of_work(
    container, clock, driver_first, commit
):
    """The driver statements and SQLAlchemy's share one transaction, whichever runs first
    (on PostgreSQL the first statement is the one that begins it)."""
    now = clock.now()
    event = parse_event({"event": "call_started", "call_id": "1795480300.1"}, now)

    async def through_sqlalchemy(uow) -> None:
        await uow.lockouts.add_failure("1795480300.1", "79001234567", "42", "NOT_FOUND", now)

    with contextlib.suppress(LookupError):
        async with container.uow() as uow:
            if not driver_first:
                await through_sqlalchemy(uow)
            log = await uow.call_log()
            assert type(log).__name__ in ("SqliteEvents", "PostgresEvents")
            assert await log.insert_events([(event, now)]) == {event.dedup_key()}
            await log.lock_calls(["1795480300.1"], now)
            assert len((await log.history(["1795480300.1"]))["1795480300.1"]) == 1
            if driver_first:
                await through_sqlalchemy(uow)
            if not commit:
                raise LookupError("the unit of work fails after the driver statements")
            await uow.commit()
    async with container.uow() as uow:
        failures = (await uow.session.execute(select(func.count(t.ivr_failures.c.id)))).scalar()
    assert len(await container.calls.events("1795480300.1")) == (1 if commit else 0)
    assert failures == (1 if commit else 0)


async def test_a_batch_waiting_for_a_call_reads_what_the_holder_committed(container, clock):
    """PostgreSQL: a batch whose call is locked by another batch reads the call's history
    only once it holds the lock, so it sees the events the other committed meanwhile (one
    statement that stored, locked and read would have read before the wait)."""
    if container.engine.dialect.name != "postgresql":
        pytest.skip("SQLite units of work take turns: no batch waits inside another's")
    import asyncio

    from sqlalchemy import text

    now, cid = clock.now(), "1795480400.1"
    first = parse_event({"event": "call_started", "call_id": cid}, now)
    second = parse_event({"event": "queued", "call_id": cid, "queue": "support"}, now)

    async def waiting_batch():
        async with container.uow() as uow:
            log = await uow.call_log()
            assert await log.insert_events([(second, now)]) == {second.dedup_key()}
            await log.lock_calls([cid], now)
            history = await log.history([cid])
            await uow.commit()
        return [e.event for e in history[cid]]

    async with container.uow() as holder:
        log = await holder.call_log()
        await log.insert_events([(first, now)])  # holds the call's row lock until commit
        other = asyncio.create_task(waiting_batch())
        async with container.engine.connect() as conn:
            for _ in range(200):  # until the other batch waits for the lock (<= 10 s)
                waiting = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock'"
                    )
                )
                if waiting:
                    break
                await asyncio.sleep(0.05)
        assert waiting == 1 and not other.done()
        await holder.commit()
    assert await other == ["call_started", "queued"]
