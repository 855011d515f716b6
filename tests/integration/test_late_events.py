"""A call's own clock decides its window, however late and in whatever order its events come.

Issue 8 §4: events posted together after the fact (a spool flushed after an outage, an AMI
reconnect, an import) used to open a window whose deadline had passed, fire it at once and
escalate a call that had ended in time. Here the same call's events are posted in every order
and every split in time, on real SQLite and PostgreSQL, with the timers fired between posts.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.adapters import tables as t
from callcenter.domain.errors import ValidationError
from tests.wire import wire

WINDOW = 600
GAPS = (0, 1, 4, 6, 30, 700, 3600)  # seconds between posts: inside and beyond the 5 s grace


def call_events(call_id: str, t0, talk: int) -> list[dict]:
    def at(s: float) -> str:
        return (t0 + timedelta(seconds=s)).isoformat()

    return [
        {"event": "call_started", "call_id": call_id, "at": at(-40), "caller_number": "79001"},
        {"event": "queued", "call_id": call_id, "at": at(-10), "queue": "support"},
        {"event": "agent_connected", "call_id": call_id, "at": at(0), "agent": "PJSIP/101"},
        {"event": "call_ended", "call_id": call_id, "at": at(talk), "hangup_by": "caller"},
    ]


async def live_tickets(c, call_id: str) -> int:
    async with c.uow() as uow:
        rows = await uow.session.execute(
            select(t.tickets.c.status).where(t.tickets.c.call_id == call_id)
        )
        return sum(1 for (status,) in rows if status != "withdrawn")


async def post_all(c, clock, events, order, gaps, start_late: bool) -> list[dict]:
    """Post in ``order``, ``gaps`` seconds apart, firing due timers before each post."""
    from datetime import datetime

    pushed = []
    async with c.notifier.subscribe() as q:
        if start_late:
            clock.advance(3600 + 900)  # an hour after the call, as a spool flush would
        for i, gap in zip(order, gaps, strict=True):
            clock.advance(gap)
            happened = datetime.fromisoformat(events[i]["at"])
            if clock.now() < happened:  # never posted before it happened
                clock.advance((happened - clock.now()).total_seconds())
            await c.scheduler.fire_due()
            await c.calls.record(events[i], clock.now())
        clock.advance(3 * 3600)
        await c.scheduler.fire_due()
        while not q.empty():
            pushed.append(q.get_nowait())
    return pushed


@pytest.mark.parametrize("talk", [240, 600, 660])
async def test_spool_flush_an_hour_later_keeps_the_calls_own_outcome(container, clock, talk):
    """The issue's case: answer at T, end at T + talk, posted a second apart an hour later."""
    cid = f"late.{talk}"
    t0 = clock.now()
    events = call_events(cid, t0, talk)
    pushed = await post_all(container, clock, events, [0, 1, 2, 3], [0, 0, 1, 1], True)
    call = wire(await container.calls.get(cid), container)
    in_time = talk <= WINDOW
    assert call["window"]["status"] == ("met" if in_time else "overrun")
    assert call["outcome"] == (None if in_time else "escalated")
    assert await live_tickets(container, cid) == (0 if in_time else 1)
    assert not [m for m in pushed if m["type"] == "window_warning"]  # the call had ended


async def test_an_end_in_time_known_after_the_overrun_withdraws_the_ticket(container, clock):
    """Too late for the grace: the ticket is withdrawn, kept with its reason, not deleted."""
    cid = "late.withdraw"
    t0 = clock.now()
    started, queued, connected, ended = call_events(cid, t0, 240)
    clock.advance(3600)
    for e in (started, queued, connected):
        await container.calls.record(e, clock.now())
    clock.advance(6)
    assert await container.scheduler.fire_due() == 1  # the overrun (no end known), no warning
    call = wire(await container.calls.get(cid), container)
    assert (call["window"]["status"], call["outcome"]) == ("overrun", "escalated")
    tid = call["ticket"]["id"]
    clock.advance(600)
    async with container.notifier.subscribe() as q:
        await container.calls.record(ended, clock.now())
        kinds = [q.get_nowait()["type"] for _ in range(q.qsize())]
    assert "ticket_withdrawn" in kinds
    call = wire(await container.calls.get(cid), container)
    assert (call["window"]["status"], call["outcome"]) == ("met", None)
    assert call["window"]["closed_at"] == ended["at"]
    ticket = wire(await container.tickets.get(tid), container)
    assert ticket["status"] == "withdrawn"
    assert ticket["withdrawn_reason"] and "ended at" in ticket["withdrawn_reason"]
    assert (wire(await container.tickets.search(clock.now(), status="open"), container))[
        "total"
    ] == 0
    assert (wire(await container.tickets.search(clock.now(), status="withdrawn"), container))[
        "total"
    ] == 1
    # the same end again changes nothing
    assert (await container.calls.record(ended, clock.now()))[1] is False
    clock.advance(30 * 86400)
    assert await container.scheduler.fire_due() == 0  # no 75 % / 90 % warning of a withdrawn one
    with pytest.raises(ValidationError):  # a month later its instant is no longer believed
        await container.calls.record(ended, clock.now())
    assert (wire(await container.tickets.get(tid), container))["status"] == "withdrawn"


@pytest.mark.parametrize("sent", [False, True])
async def test_withdrawal_recalls_the_forwarding(settings, clock, sent):
    """Not yet sent: the message is cancelled. Sent: a cancellation follows it."""
    c = bootstrap.build(settings.replace(forwarding={"url": "http://127.0.0.1:9/"}), clock=clock)
    await db.upgrade(c.engine)
    try:
        cid = f"late.fwd.{int(sent)}"
        started, queued, connected, ended = call_events(cid, clock.now(), 240)
        clock.advance(3600)
        for e in (started, queued, connected):
            await c.calls.record(e, clock.now())
        clock.advance(6)
        await c.scheduler.fire_due()
        tid = (wire(await c.calls.get(cid), c))["ticket"]["id"]
        if sent:
            async with c.uow() as uow:
                (msg,) = await uow.outbox.claim(clock.now(), clock.now(), 10)
                await uow.outbox.delivered(msg["id"], clock.now())
                await uow.commit()
        clock.advance(60)
        await c.calls.record(ended, clock.now())
        async with c.uow() as uow:
            rows = (
                await uow.session.execute(
                    select(t.outbox.c.topic, t.outbox.c.delivered_at, t.outbox.c.cancelled_at)
                    .where(t.outbox.c.idempotency_key.like(f"ticket-{tid}%"))
                    .order_by(t.outbox.c.id)
                )
            ).all()
            pending = await uow.outbox.stats()
        topics = [(r.topic, r.delivered_at is not None, r.cancelled_at is not None) for r in rows]
        if sent:
            assert topics == [("ticket.created", True, False), ("ticket.withdrawn", False, False)]
            assert pending == {"pending": 1}
        else:
            assert topics == [("ticket.created", False, True)]
            assert pending == {"pending": 0}
    finally:
        await c.close()


_case = st.tuples(
    st.sampled_from([60, 300, 540, 600, 601, 900]),
    st.permutations(range(4)),
    st.lists(st.sampled_from(GAPS), min_size=4, max_size=4),
    st.booleans(),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(case=_case)
async def test_every_order_and_split_gives_the_same_call(container, clock, case):
    talk, order, gaps, start_late = case
    cid = f"prop.{clock.now().timestamp():.0f}"
    t0 = clock.now()
    events = call_events(cid, t0, talk)
    pushed = await post_all(container, clock, events, list(order), gaps, start_late)
    call = wire(await container.calls.get(cid), container)
    in_time = talk <= WINDOW
    assert call["window"]["status"] == ("met" if in_time else "overrun"), case
    assert call["outcome"] == (None if in_time else "escalated"), case
    assert await live_tickets(container, cid) == (0 if in_time else 1), case
    ended_at = t0 + timedelta(seconds=talk)
    for m in pushed:  # a warning only ever while the call was, as far as we knew, going on
        if m["type"] == "window_warning" and m["call_id"] == cid:
            assert order.index(3) > order.index(2)
    assert call["ended_at"] == ended_at.isoformat()


async def test_the_sql_guard_waits_for_the_grace_too(container, clock):
    """A second instance's timer, or a stale one, cannot overrun a window recorded moments ago."""
    from callcenter.domain.calls import OralWindow, WindowStatus

    now = clock.now()
    async with container.uow() as uow:
        await uow.calls.lock("guard.1", now)
        await uow.windows.insert(
            OralWindow.open("guard.1", now - timedelta(hours=2), 600, 0, None, recorded_at=now)
        )
        early = now - timedelta(seconds=5)  # the deadline is long past, the recording is not
        assert not await uow.windows.transition(
            "guard.1", WindowStatus.OVERRUN, now, due_by=early, recorded_by=early
        )
        later = now + timedelta(seconds=1)
        assert await uow.windows.transition(
            "guard.1", WindowStatus.OVERRUN, now, due_by=later, recorded_by=later
        )
