"""Window deadlines falling due in the same tick fire together: one transaction per batch,
each window still closed and escalated at its own deadline, exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.adapters import tables as t
from callcenter.services.scheduler import Scheduler
from tests.integration.test_timing import GRACE, call_to_agent, romashka
from tests.wire import wire

N = 12


@pytest.fixture
async def cert(container, clock):
    await container.registry.import_certificates([romashka()], clock.now())


async def open_windows(c, clock, n: int = N) -> list[str]:
    """n answered calls, the k-th answered k seconds after the first (so k seconds later due)."""
    return [await call_to_agent(c, clock, f"batch.{k}", offset=k) for k in range(n)]


class Statements:
    """Counts the SQL statements an engine sends (one per round trip, executemany included)."""

    def __init__(self, engine) -> None:
        self.n = 0
        self.engine = engine.sync_engine

    def _count(self, *args) -> None:
        self.n += 1

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


async def test_deadlines_due_together_escalate_in_one_batch_each_at_its_own_deadline(
    container, clock, cert
):
    first = clock.now()
    ids = await open_windows(container, clock)
    # the last call ends in time: its window is met, its deadline timer changes nothing
    await container.calls.record(
        {
            "event": "call_ended",
            "call_id": ids[-1],
            "at": (first + timedelta(seconds=60)).isoformat(),
        },
        clock.now(),
    )
    clock.advance(480 + N)
    assert await container.scheduler.fire_due() == N - 1  # the warnings, one by one
    clock.advance(120 + GRACE)  # every deadline's timer is due in this one tick
    async with container.notifier.subscribe() as q:
        with Statements(container.engine) as sql:
            assert await container.scheduler.fire_due() == N - 1
        notes = [q.get_nowait() for _ in range(q.qsize())]
    # one batch: a handful of statements for all eleven windows (one by one, ten each)
    assert sql.n < N - 1
    created = [m for m in notes if m["type"] == "ticket_created"]
    assert sorted(m["call_id"] for m in created) == sorted(ids[:-1])
    assert sorted(m["call_id"] for m in notes if m["type"] == "window_overrun") == sorted(ids[:-1])
    for k, cid in enumerate(ids[:-1]):
        call = wire(await container.calls.get(cid), container)
        deadline = (first + timedelta(seconds=600 + k)).isoformat()
        assert call["window"]["status"] == "overrun"
        assert call["window"]["closed_at"] == deadline  # the call's clock, not the fire's
        assert call["outcome"] == "escalated"
        ticket = call["ticket"]
        assert ticket["received_at"] == deadline
        # Tuesday 11:10 + 12 working hours = Wednesday 14:10 Moscow, k seconds later
        assert ticket["due_at"] == f"2026-03-18T14:10:{k:02d}+03:00"
        assert ticket["organisation"] == "ООО «Ромашка»"
        assert ticket["escalation_reason"] == "overrun"
    met = wire(await container.calls.get(ids[-1]), container)
    assert met["window"]["status"] == "met" and met["ticket"] is None
    # the tickets' own 75 % and 90 % warnings are armed
    assert container.scheduler.pending >= 2 * (N - 1)
    # fired again, by this scheduler's use case or another one's after a restart: nothing more
    again = await container.calls.fire_deadlines(ids, clock.now())
    assert again == dict.fromkeys(ids, False)
    other = Scheduler(container.calls, container.tickets, clock)
    await other.load()
    assert await other.fire_due() == 0
    assert (await container.tickets.search(clock.now())).total == N - 1


async def test_a_batch_leaves_windows_not_yet_due_or_closed_by_the_agent_alone(
    container, clock, cert
):
    ids = await open_windows(container, clock, 3)
    await container.calls.set_outcome(ids[0], "resolved", "PJSIP/101", clock.now())
    clock.advance(600 + GRACE + 1)  # due: the first two; the third one second later
    changed = await container.calls.fire_deadlines(ids, clock.now())
    assert changed == {ids[0]: False, ids[1]: True, ids[2]: False}
    first = wire(await container.calls.get(ids[0]), container)
    assert first["outcome"] == "resolved" and first["ticket"] is None  # resolved orally
    assert first["window"]["status"] == "met"
    assert wire(await container.calls.get(ids[2]), container)["window"]["status"] == "open"
    clock.advance(1)
    assert await container.calls.fire_deadlines(ids, clock.now()) == {
        ids[0]: False,
        ids[1]: False,
        ids[2]: True,
    }
    assert (await container.tickets.search(clock.now())).total == 2


async def test_a_batch_forwards_each_new_ticket_through_the_outbox(settings, clock):
    c = bootstrap.build(
        settings.replace(forwarding={"url": "http://127.0.0.1:9/tickets"}), clock=clock
    )
    await db.upgrade(c.engine)
    try:
        await c.registry.import_certificates([romashka()], clock.now())
        ids = await open_windows(c, clock, 3)
        clock.advance(600 + 3 + GRACE)
        assert await c.scheduler.fire_due() == 3
        async with c.engine.connect() as conn:
            rows = (await conn.execute(select(t.outbox).order_by(t.outbox.c.id))).mappings().all()
        tickets = {cid: wire(await c.calls.get(cid), c)["ticket"]["id"] for cid in ids}
        assert sorted(r["idempotency_key"] for r in rows) == sorted(
            f"ticket-{tid}" for tid in tickets.values()
        )
        assert {r["topic"] for r in rows} == {"ticket.created"}
    finally:
        await c.close()


class _Batching:
    """Timing use cases whose batch fails; ``bad`` fails alone too, the others fire."""

    def __init__(self, exc: Exception, bad: str | None = None) -> None:
        self.exc, self.bad = exc, bad
        self.batches = 0
        self.alone: list[str] = []

    async def fire_deadlines(self, call_ids, now):
        self.batches += 1
        raise self.exc

    async def fire_deadline(self, call_id, now):
        self.alone.append(call_id)
        if call_id == self.bad:
            raise self.exc
        return True

    async def pending_timers(self):
        due = datetime(2026, 3, 17, 8, tzinfo=UTC)
        return [(due, "window_deadline", cid) for cid in ("a", "b", "c")]


async def test_a_failing_batch_fires_one_by_one_and_parks_only_the_bad_window(clock):
    timing = _Batching(ValueError("stored data the use case cannot take"), bad="b")
    sched = Scheduler(timing, None, clock, max_attempts=1)
    await sched.load()
    assert await sched.fire_due() == 2
    assert timing.batches == 1 and sorted(timing.alone) == ["a", "b", "c"]
    assert sched.parked == {("window_deadline", "b")}
    assert len(sched.lag_seconds) == 3


async def test_a_batch_in_an_outage_retries_every_window_later(clock):
    timing = _Batching(OSError("connection refused"))
    sched = Scheduler(timing, None, clock, is_outage=lambda exc: isinstance(exc, OSError))
    await sched.load()
    assert await sched.fire_due() == 0
    assert timing.alone == [] and sched.parked == set()
    assert sched.pending == 3  # each re-armed for its retry
    clock.advance(5)
    sched.timing = _Answering()  # the database is back
    assert await sched.fire_due() == 3
    assert sched.pending == 0 and sched.fired == 3


class _Answering:
    async def fire_deadlines(self, call_ids, now):
        return dict.fromkeys(call_ids, True)


class _Held:
    """Batches that wait for ``go``; records what each batch held."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.batches: list[list[str]] = []

    async def fire_deadlines(self, call_ids, now):
        self.batches.append(list(call_ids))
        await self.go.wait()
        return dict.fromkeys(call_ids, True)

    async def pending_timers(self):
        return []


async def test_deadlines_due_while_a_batch_is_written_go_in_the_next_one(clock):
    timing = _Held()
    sched = Scheduler(timing, None, clock)
    due = clock.now()
    for key in ("a", "b"):
        sched.add(due, "window_deadline", key)
    first = sched._start_due()
    await asyncio.sleep(0)
    assert timing.batches == [["a", "b"]]
    for key in ("c", "d", "a"):  # "a" again, armed by a resync while its batch is in flight
        sched.add(due, "window_deadline", key)
    assert sched._start_due() == []  # the running drainer takes them next
    timing.go.set()
    assert sum(await asyncio.gather(*first)) == 4
    assert timing.batches == [["a", "b"], ["c", "d"]]
    assert sched.fired == 4 and len(sched.lag_seconds) == 4
