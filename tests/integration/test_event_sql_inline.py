"""SQLite: a batch of the IVR's events is stored in one synchronous go on the loop thread
(``InlineSqliteEvents``), and anything it cannot do goes the unit of work's way unchanged."""

from __future__ import annotations

import sqlite3

import pytest

from callcenter.adapters import event_sql
from callcenter.domain.events import parse_event
from tests.integration.test_event_sql import call_events, record_all
from tests.wire import wire


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/callcenter.sqlite3"


@pytest.fixture
def outcomes(monkeypatch) -> list:
    """What each inline attempt answered: the new events' keys, or None (declined)."""
    seen: list = []
    record = event_sql.InlineSqliteEvents.record

    def counted(self, items, project):
        result = record(self, items, project)
        seen.append(result)
        return result

    monkeypatch.setattr(event_sql.InlineSqliteEvents, "record", counted)
    return seen


def path_of(settings) -> str:
    return settings.database.url.split("///", 1)[1]


async def test_ivr_events_go_inline_and_build_what_core_builds(
    container, clock, monkeypatch, outcomes
):
    bodies = call_events("1795480400.1", clock)
    await record_all(container, clock, bodies[:3])  # call_started, certificate_checked, queued
    assert len(outcomes) == 3 and all(outcomes)
    await record_all(container, clock, bodies[:3])  # repeats: stored once, committed inline
    assert len(outcomes) == 6 and outcomes[3:] == [set(), set(), set()]
    monkeypatch.setattr(event_sql, "DRIVER_SQL", False)
    await record_all(container, clock, [{**b, "call_id": "1795480400.2"} for b in bodies[:3]])
    assert len(outcomes) == 6  # Core: no inline writer at all
    inline = wire(await container.calls.get("1795480400.1"), container)
    core = wire(await container.calls.get("1795480400.2"), container)
    assert inline["queue"] == "поддержка" and inline["certificate"] == "1234567"
    for key in ("call_id", "events"):
        inline.pop(key, None), core.pop(key, None)
    assert inline == core
    assert len(await container.calls.events("1795480400.1")) == 3


async def test_an_answered_call_is_declined_and_gets_its_window(container, clock, outcomes):
    bodies = call_events("1795480500.1", clock)
    await record_all(container, clock, bodies[:4])  # ... agent_connected
    assert outcomes[-1] is None  # declined, nothing written: the unit of work did it all
    call = wire(await container.calls.get("1795480500.1"), container)
    assert call["window"]["status"] == "open" and call["agent"] == "PJSIP/101"
    await record_all(container, clock, bodies[4:])  # call_ended: the window's, declined too
    assert outcomes[-1] is None
    call = wire(await container.calls.get("1795480500.1"), container)
    assert call["window"]["status"] == "met"
    assert len(await container.calls.events("1795480500.1")) == 5


async def test_a_database_locked_elsewhere_never_stalls_the_loop(
    container, clock, settings, outcomes
):
    """Another process writing (an import): the inline writer declines at once, and the
    unit of work's connection, which waits off the loop, stores the event once it can."""
    bodies = call_events("1795480600.1", clock)
    await record_all(container, clock, bodies[:1])  # the inline writer is open
    other = sqlite3.connect(path_of(settings), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        writer = event_sql.inline_sqlite(container.engine)
        event = parse_event(bodies[1], clock.now())
        assert writer.record([(event, clock.now())], lambda history: []) is None
        other.execute("ROLLBACK")
    finally:
        other.close()
    await record_all(container, clock, bodies[1:3])
    assert [e.event for e in await container.calls.events("1795480600.1")] == [
        "call_started",
        "certificate_checked",
        "queued",
    ]


async def test_checkpoints_run_off_the_loop_and_stop_with_the_engine(
    container, clock, monkeypatch, settings
):
    monkeypatch.setattr(event_sql.InlineSqliteEvents, "CHECKPOINT_EVERY", 2)
    for i in range(4):
        await record_all(container, clock, call_events(f"1795480700.{i}", clock)[:1])
    writer = event_sql.inline_sqlite(container.engine)
    assert writer._checkpointing is not None
    assert writer._checkpointing.result() is None  # ran, on its own thread, without error
    conn = sqlite3.connect(path_of(settings))
    try:  # what it wrote, committed, is what another connection reads
        (n,) = conn.execute("SELECT count(*) FROM call_events").fetchone()
    finally:
        conn.close()
    assert n == 4
    await container.engine.dispose()
    assert writer._conn is None and writer._checkpointer is None


async def test_none_for_a_database_in_memory_or_another_dialect():
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    try:
        assert event_sql.inline_sqlite(engine) is None
    finally:
        await engine.dispose()
