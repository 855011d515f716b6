"""The oral window, escalation, tickets and timers, in process with an injected clock."""

from __future__ import annotations

import asyncio
import random
from datetime import date, timedelta

import pytest

from callcenter.domain.certificates import Certificate, HolderType
from callcenter.domain.errors import Conflict, ValidationError
from callcenter.domain.policy import PolicyVersion
from tests.wire import wire

CERT = "1234567"
GRACE = 5  # [timers] grace_seconds: a deadline timer fires this long after the deadline


def romashka() -> Certificate:
    return Certificate(
        CERT,
        HolderType.ORGANISATION,
        "",
        "ООО «Ромашка»",
        "П",
        "5.0.1",
        date(2026, 1, 1),
        date(2026, 12, 31),
    )


@pytest.fixture
async def cert(container, clock):
    await container.registry.import_certificates([romashka()], clock.now())


async def call_to_agent(c, clock, call_id="1795483251.54", offset=0.0):
    at = (clock.now() + timedelta(seconds=offset)).isoformat()
    for body in (
        {"event": "call_started", "call_id": call_id, "caller_number": "79001234567"},
        {
            "event": "certificate_checked",
            "call_id": call_id,
            "certificate": CERT,
            "status": "VALID",
        },
        {"event": "queued", "call_id": call_id, "queue": "support"},
        {"event": "agent_connected", "call_id": call_id, "agent": "PJSIP/101"},
    ):
        await c.calls.record({**body, "at": at}, clock.now())
    return call_id


async def test_window_opens_at_answer_with_absolute_deadline(container, clock, cert):
    cid = await call_to_agent(container, clock)
    call = wire(await container.calls.get(cid), container)
    assert call["window"]["status"] == "open"
    assert call["window"]["deadline_at"] == (clock.now() + timedelta(seconds=600)).isoformat()
    assert call["window"]["warn_at"] == (clock.now() + timedelta(seconds=480)).isoformat()
    assert call["ticket"] is None
    assert container.scheduler.pending == 2  # warning and deadline armed


async def test_overrun_escalates_exactly_once(container, clock, cert):
    cid = await call_to_agent(container, clock)
    deadline = clock.now() + timedelta(seconds=600)
    clock.advance(600)
    # at the deadline: too late for the warning, too early for the overrun (it waits its grace)
    assert await container.scheduler.fire_due() == 0
    clock.advance(GRACE)
    assert await container.scheduler.fire_due() == 1
    call = wire(await container.calls.get(cid), container)
    assert call["window"]["status"] == "overrun"
    assert call["outcome"] == "escalated"
    ticket = call["ticket"]
    assert ticket["source"] == "call" and ticket["call_id"] == cid
    assert ticket["received_at"] == deadline.isoformat()  # dated at the deadline, not the fire
    # Tuesday 11:10 + 12 working hours = Wednesday 14:10 Moscow
    assert ticket["due_at"] == "2026-03-18T14:10:00+03:00"
    assert ticket["organisation"] == "ООО «Ромашка»"  # identity from the certificate
    # a duplicate fire, a second scheduler, a restart: nothing more
    assert await container.calls.fire_deadline(cid, clock.now()) is False
    from callcenter.services.scheduler import Scheduler

    other = Scheduler(container.calls, container.tickets, clock)
    await other.load()
    assert await other.fire_due() == 0
    await container.calls.record({"event": "call_ended", "call_id": cid}, clock.now())
    listed = wire(await container.tickets.search(clock.now()), container)
    assert listed["total"] == 1


async def test_call_ending_in_time_is_met(container, clock, cert):
    cid = await call_to_agent(container, clock)
    clock.advance(300)
    await container.calls.record(
        {"event": "call_ended", "call_id": cid, "hangup_by": "caller"}, clock.now()
    )
    clock.advance(400)
    assert await container.scheduler.fire_due() == 0
    call = wire(await container.calls.get(cid), container)
    assert call["window"]["status"] == "met"
    assert call["ticket"] is None
    assert call["timings"]["talk_seconds"] == 300


async def test_warning_is_pushed_once(container, clock, cert):
    async with container.notifier.subscribe() as q:
        cid = await call_to_agent(container, clock)
        clock.advance(480)
        assert await container.scheduler.fire_due() == 1
        assert await container.calls.fire_warning(cid, clock.now()) is False
        msgs = [q.get_nowait() for _ in range(q.qsize())]
    msgs = [m for m in msgs if m["type"] != "queue_changed"]  # the board's, of the queueing
    kinds = [m["type"] for m in msgs]
    # the agent's screen is told as the answer arrives, the window once it is stored
    assert kinds == ["call_connected", "window_opened", "window_warning"]
    assert msgs[0]["agent"] == msgs[2]["agent"] == "PJSIP/101"


async def test_extension_with_reason(container, clock, cert):
    cid = await call_to_agent(container, clock)
    clock.advance(500)
    with pytest.raises(ValidationError):
        wire(await container.calls.extend(cid, "  ", "operator", clock.now()), container)
    call = wire(
        await container.calls.extend(
            cid, "нужна проверка журнала", "operator", clock.now(), seconds=300
        ),
        container,
    )
    assert call["window"]["status"] == "extended"
    assert call["window"]["extensions"][0]["reason"] == "нужна проверка журнала"
    clock.advance(100)  # past the original deadline
    await container.scheduler.fire_due()
    assert (wire(await container.calls.get(cid), container))["window"]["status"] == "extended"
    clock.advance(300 + GRACE)
    await container.scheduler.fire_due()
    assert (wire(await container.calls.get(cid), container))["window"]["status"] == "overrun"
    with pytest.raises(Conflict):
        wire(await container.calls.extend(cid, "ещё", "operator", clock.now()), container)


async def test_agent_escalates_early(container, clock, cert):
    cid = await call_to_agent(container, clock)
    clock.advance(120)
    call = wire(
        await container.calls.escalate(
            cid,
            "operator",
            clock.now(),
            caller_name="Смирнова Анна Сергеевна",
            description="Не запускается модуль",
            category="recovery",
        ),
        container,
    )
    assert call["window"]["status"] == "escalated"
    assert call["ticket"]["full_name"] == "Смирнова Анна Сергеевна"
    assert call["ticket"]["category"] == "recovery"
    assert call["ticket"]["escalation_reason"] == "agent"
    with pytest.raises(Conflict):
        wire(await container.calls.escalate(cid, "operator", clock.now()), container)
    clock.advance(600)
    assert await container.scheduler.fire_due() == 0
    assert (wire(await container.tickets.search(clock.now()), container))["total"] == 1


async def test_outcomes(container, clock, cert):
    a = await call_to_agent(container, clock, "1.1")
    call = wire(
        await container.calls.set_outcome(a, "resolved", "operator", clock.now()), container
    )
    assert (call["outcome"], call["window"]["status"]) == ("resolved", "met")
    b = await call_to_agent(container, clock, "1.2")
    with pytest.raises(ValidationError):
        wire(await container.calls.set_outcome(b, "refused", "operator", clock.now()), container)
    call = wire(
        await container.calls.set_outcome(
            b, "refused", "operator", clock.now(), reason="identity_mismatch"
        ),
        container,
    )
    assert call["outcome_reason"] == "identity_mismatch"
    c = await call_to_agent(container, clock, "1.3")
    async with container.notifier.subscribe() as q:
        wire(
            await container.calls.set_outcome(
                c, "abusive", "operator", clock.now(), note="оскорбления"
            ),
            container,
        )
        alert = [
            m for m in [q.get_nowait() for _ in range(q.qsize())] if m["type"] == "supervisor_alert"
        ]
    assert alert and alert[0]["call_id"] == c
    await container.calls.complaint(c, "Оператор был груб", "supervisor", clock.now())
    kinds = sorted(r["kind"] for r in wire(await container.calls.reviews(), container))
    assert kinds == ["abuse", "complaint"]
    clock.advance(700)
    assert await container.scheduler.fire_due() == 0  # all closed: no tickets
    assert (wire(await container.tickets.search(clock.now()), container))["total"] == 0


async def test_policy_in_force_at_answer(container, clock, cert):
    later = clock.now().date() + timedelta(days=20)
    await container.policy.publish(
        PolicyVersion(effective_from=later, oral_window_seconds=900, warning_seconds=60),
        clock.now(),
    )
    old = await call_to_agent(container, clock, "2.1")
    clock.advance(21 * 86400)
    new = await call_to_agent(container, clock, "2.2")
    w_old = (wire(await container.calls.get(old), container))["window"]
    w_new = (wire(await container.calls.get(new), container))["window"]
    assert (w_old["length_seconds"], w_new["length_seconds"]) == (600, 900)


async def test_late_end_after_deadline_escalates(container, clock, cert):
    """call_ended arriving first, then agent_connected: overrun is still seen."""
    cid = "3.1"
    t0 = clock.now()
    clock.advance(800)  # (an end is never posted before it happened)
    await container.calls.record(
        {"event": "call_ended", "call_id": cid, "at": (t0 + timedelta(seconds=700)).isoformat()},
        clock.now(),
    )
    await container.calls.record(
        {"event": "agent_connected", "call_id": cid, "agent": "PJSIP/1", "at": t0.isoformat()},
        clock.now(),
    )
    call = wire(await container.calls.get(cid), container)
    assert call["window"]["status"] == "overrun"
    assert call["ticket"] is not None
    assert call["abandoned"] is None


def scripted_calls(t0):
    """Events of several kinds of call, all in the past relative to the replay clock."""

    def at(s):
        return (t0 + timedelta(seconds=s)).isoformat()

    ev = []
    for i, (talk, kind) in enumerate(
        [(120, "met"), (900, "overrun"), (None, "ivr"), (None, "queue"), (60, "met")]
    ):
        cid = f"9.{i}"
        ev.append(
            {
                "event": "call_started",
                "call_id": cid,
                "at": at(0),
                "caller_number": f"7900000000{i}",
            }
        )
        if kind == "ivr":
            ev.append(
                {
                    "event": "call_ended",
                    "call_id": cid,
                    "at": at(20),
                    "hangup_by": "caller",
                    "abandoned": "ivr",
                }
            )
            continue
        ev.append(
            {
                "event": "certificate_checked",
                "call_id": cid,
                "at": at(15),
                "certificate": CERT,
                "status": "VALID",
                "attempt": 1,
            }
        )
        ev.append({"event": "queued", "call_id": cid, "at": at(20), "queue": "support"})
        if kind == "queue":
            ev.append({"event": "call_ended", "call_id": cid, "at": at(80), "hangup_by": "caller"})
            continue
        ev.append({"event": "agent_connected", "call_id": cid, "at": at(30), "agent": "PJSIP/7"})
        ev.append(
            {"event": "call_ended", "call_id": cid, "at": at(30 + talk), "hangup_by": "agent"}
        )
    return ev


async def snapshot(c, clock):
    out = {}
    for item in (wire(await c.calls.search(limit=500), c))["items"]:
        full = wire(await c.calls.get(item["call_id"]), c)
        full.pop("events")
        if full["ticket"]:
            full["ticket"].pop("id")
        out[item["call_id"]] = full
    return out


async def test_replayed_twice_and_shuffled_gives_the_same_log(
    settings, tmp_path, clock, cert, container
):
    from callcenter import bootstrap
    from callcenter.adapters import db

    t0 = clock.now() - timedelta(hours=2)
    events = scripted_calls(t0)
    for e in events:
        await container.calls.record(e, clock.now())
    await container.scheduler.fire_due()
    expected = await snapshot(container, clock)
    assert expected["9.1"]["window"]["status"] == "overrun"
    assert expected["9.0"]["window"]["status"] == "met"
    assert expected["9.2"]["abandoned"] == "ivr" and expected["9.3"]["abandoned"] == "queue"

    if settings.database.url.startswith("sqlite"):
        other_settings = settings.replace(
            database={"url": f"sqlite+aiosqlite:///{tmp_path}/replay.sqlite3"}
        )
    else:
        pytest.skip("one PostgreSQL database per test: the SQLite run covers the replay")
    other = bootstrap.build(other_settings, clock=clock)
    await db.upgrade(other.engine)
    try:
        await other.registry.import_certificates([romashka()], clock.now())
        replay = events * 2
        random.Random(42).shuffle(replay)
        results = await asyncio.gather(*(other.calls.record(e, clock.now()) for e in replay))
        assert sum(new for _, new in results) == len(events)
        await other.scheduler.fire_due()
        got = await snapshot(other, clock)
        for cid in expected:
            for key in expected[cid]:
                assert got[cid][key] == expected[cid][key], (cid, key)
    finally:
        await other.close()


async def test_scheduler_loop_fires_with_an_injected_clock(container, clock, cert):
    task = asyncio.create_task(container.scheduler.run())
    try:
        cid = await call_to_agent(container, clock)
        clock.advance(600 + GRACE)
        container.scheduler.wake()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if (wire(await container.calls.get(cid), container))["window"]["status"] == "overrun":
                break
        assert (wire(await container.calls.get(cid), container))["ticket"] is not None
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --- portal tickets --------------------------------------------------------------------------


async def test_portal_ticket_needs_identity_and_certificate(container, clock, cert):
    from callcenter.web.schemas import PortalTicket, parse

    with pytest.raises(ValidationError) as err:
        parse(PortalTicket, {"description": "x"})
    assert set(err.value.details["fields"]) == {"full_name", "certificate"}
    with pytest.raises(ValidationError) as err:
        await container.tickets.create_from_portal(
            clock.now(), full_name="Иванов И. И.", certificate="9999999", description="x"
        )
    assert "UNKNOWN" in err.value.details["fields"]["certificate"]


async def test_portal_ticket_due_warnings_and_answer(container, clock, cert):
    # Friday 2025-10-31 15:00 before the working Saturday: due Saturday 18:00
    from callcenter.calendar import MOSCOW

    clock.at = __import__("datetime").datetime(2025, 10, 31, 15, 0, tzinfo=MOSCOW)
    await container.registry.import_certificates(
        [
            Certificate(
                CERT,
                HolderType.PERSON,
                "Иванов",
                "",
                "П",
                "5.0.1",
                date(2025, 1, 1),
                date(2025, 12, 31),
            )
        ],
        clock.now(),
    )
    t = wire(
        await container.tickets.create_from_portal(
            clock.now(),
            full_name="Иванов Иван Иванович",
            organisation="",
            certificate=CERT,
            description="Не ставится обновление",
            category="build_update",
        ),
        container,
    )
    assert t["due_at"] == "2025-11-01T18:00:00+03:00"
    assert t["warn75_at"] == "2025-11-01T15:00:00+03:00"  # 9 of 12 working hours
    assert t["status"] == "open" and t["deadline_met"] is None
    clock.at = __import__("datetime").datetime(2025, 11, 1, 15, 0, tzinfo=MOSCOW)
    assert await container.scheduler.fire_due() == 1
    answered = wire(
        await container.tickets.answer(t["id"], "Ответ: переустановите сборку", clock.now()),
        container,
    )
    assert answered["status"] == "answered" and answered["deadline_met"] is True
    with pytest.raises(Conflict):
        wire(await container.tickets.answer(t["id"], "ещё раз", clock.now()), container)


async def test_no_extension_once_the_deadline_has_passed(container, clock, cert):
    """Even before its timer fires, a run-out window cannot be revived by an extension."""
    cid = await call_to_agent(container, clock)
    clock.advance(700)  # the timer has not fired (nobody called fire_due)
    with pytest.raises(Conflict):
        wire(
            await container.calls.extend(cid, "ещё минуту", "operator", clock.now(), seconds=60),
            container,
        )
    call = wire(await container.calls.get(cid), container)
    assert call["window"]["status"] == "overrun"
    assert call["ticket"] is not None
    assert await container.scheduler.fire_due() == 0  # and the late timer adds nothing


async def test_zero_second_extension_is_refused(container, clock, cert):
    cid = await call_to_agent(container, clock)
    with pytest.raises(ValidationError):
        wire(
            await container.calls.extend(cid, "причина", "operator", clock.now(), seconds=0),
            container,
        )
