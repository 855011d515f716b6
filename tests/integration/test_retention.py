"""Personal-data retention: calls across three years, the job run twice; only the personal
fields of the old calls (and their tickets) change, every timing figure stays."""

from __future__ import annotations

import wave
from datetime import date, datetime, timedelta
from io import BytesIO

import pytest

from callcenter.calendar import MOSCOW
from callcenter.domain.certificates import Certificate, HolderType
from callcenter.services.retention import months_before

CERT = "7654321"
#: personal fields, as the API shows them; everything else is a figure that must not move
CALL_PERSONAL = {"caller_number", "caller_name", "organisation", "description", "subject",
                 "outcome_note"}  # fmt: skip
TICKET_PERSONAL = {"full_name", "organisation", "description", "answer", "has_recording",
                   "attachments", "requester", "subject"}  # fmt: skip
FINAL = datetime(2026, 3, 17, 11, 0, tzinfo=MOSCOW)  # a Tuesday


def wav(seconds: float = 1.0) -> bytes:
    buf = BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * int(8000 * seconds))
    return buf.getvalue()


def moments() -> list[datetime]:
    """Every two months from three years back, at 11:00 on a weekday (Moscow)."""
    out, at = [], FINAL.replace(year=2023)
    while at < FINAL - timedelta(days=7):
        day = at
        while day.weekday() >= 5 or (day.month, day.day) in {(1, d) for d in range(1, 9)}:
            day += timedelta(days=1)
        out.append(day)
        at = months_before(at, -2)
    return out


async def seed_call(c, clock, i: int, at: datetime, kind: str) -> str:
    clock.at = at
    cid = f"17000{i:05d}.{i}"
    for body in (
        {"event": "call_started", "call_id": cid, "caller_number": f"7900{i:07d}"},
        {"event": "certificate_checked", "call_id": cid, "certificate": CERT, "status": "VALID"},
        {"event": "queued", "call_id": cid, "queue": "support"},
        {"event": "agent_connected", "call_id": cid, "agent": "PJSIP/101"},
    ):
        await c.calls.record({**body, "at": clock.now().isoformat()}, clock.now())
        clock.advance(20)
    await c.calls.set_identity(
        cid,
        clock.now(),
        caller_name="Иванов Иван Иванович",
        organisation="ООО «Ромашка»",
        description=f"Не ставится обновление, звонок {i}",
    )
    if kind == "met":
        clock.advance(120)
        await c.calls.record(
            {"event": "call_ended", "call_id": cid, "hangup_by": "caller"}, clock.now()
        )
    elif kind == "overrun":
        clock.advance(700)
        assert await c.calls.fire_deadline(cid, clock.now())
        await c.calls.record({"event": "call_ended", "call_id": cid}, clock.now())
    await c.calls.drain()
    return cid


@pytest.fixture
async def seeded(container, clock, tmp_path):
    c = container
    await c.registry.import_certificates(
        [
            Certificate(
                CERT,
                HolderType.PERSON,
                "Петров Пётр Петрович",
                "",
                "П",
                "5.0.1",
                date(2022, 1, 1),
                date(2027, 12, 31),
            )
        ],
        FINAL,
    )
    calls, tickets = [], []
    for i, at in enumerate(moments()):
        kind = ("met", "overrun", "open")[i % 3] if at < FINAL - timedelta(days=1) else "met"
        calls.append(await seed_call(c, clock, i, at, kind))
        clock.advance(3600)
        if i % 4 == 0:
            tk = await c.tickets.create_from_portal(
                clock.now(),
                full_name="Сидорова Анна Петровна",
                certificate=CERT,
                description=f"Прошу перезвонить ({i})",
                organisation="ИП Сидорова",
            )
            tickets.append(tk.id)
            await c.tickets.answer(tk.id, "Перезвонили, решено", clock.now() + timedelta(hours=1))
        if i % 5 == 1:
            clock.advance(60)
            vm = await c.voicemail.leave(
                call_id=f"vm-{i}", caller=f"7911{i:07d}", number=CERT, audio=wav(), now=clock.now()
            )
            tickets.append(vm.id)
    clock.at = FINAL
    return calls, tickets


async def snapshot(client, token, calls, tickets) -> dict:
    h = {"Authorization": f"Bearer {token}"}
    out = {"list": [], "calls": {}, "tickets": {}}
    offset = 0
    while True:
        r = await client.get(f"/api/v1/calls?limit=50&offset={offset}", headers=h)
        assert r.status == 200, await r.text()
        page = await r.json()
        out["list"] += page["items"]
        offset += 50
        if offset >= page["total"]:
            break
    for cid in calls:
        r = await client.get(f"/api/v1/calls/{cid}", headers=h)
        assert r.status == 200
        out["calls"][cid] = await r.json()
    for tid in tickets:
        r = await client.get(f"/api/v1/tickets/{tid}", headers=h)
        assert r.status == 200
        out["tickets"][tid] = await r.json()
    return out


def without(obj, keys: set[str]):
    """``obj`` with the personal keys removed at every depth."""
    if isinstance(obj, dict):
        return {k: without(v, keys) for k, v in obj.items() if k not in keys}
    if isinstance(obj, list):
        return [without(v, keys) for v in obj]
    return obj


async def test_retention_keeps_figures_and_clears_only_old_personal_data(
    container, clock, client, supervisor_token, seeded
):
    calls, tickets = seeded
    c = container
    before = await snapshot(client, supervisor_token, calls, tickets)
    cutoff = months_before(clock.now(), 12)
    old = {cid for cid, v in before["calls"].items() if v["started_at"] < cutoff.isoformat()}
    assert 10 <= len(old) < len(calls)  # three years: most old, some recent
    recordings = list(c.voicemail.recordings.folder.glob("voicemail-*.wav"))
    assert recordings

    dry = await c.retention.run(clock.now(), dry_run=True, months=12)
    assert dry.calls == len(old) and dry.recordings >= 1
    assert await snapshot(client, supervisor_token, calls, tickets) == before  # nothing moved

    async def started_keys() -> dict[str, str]:
        from sqlalchemy import select

        from callcenter.adapters import tables as t

        e = t.call_events.c
        async with c.uow() as uow:
            rows = await uow.session.execute(
                select(e.call_id, e.dedup_key).where(e.event == "call_started")
            )
        return dict(rows.all())

    async def oldest():
        async with c.uow() as uow:
            return await uow.retention.oldest(cutoff)

    keys_before = await started_keys()
    # the job walks from the oldest personal row, a week of history per transaction
    first_call = min(datetime.fromisoformat(v["started_at"]) for v in before["calls"].values())
    assert await oldest() == first_call
    first = await c.retention.run(clock.now(), months=12)
    second = await c.retention.run(clock.now(), months=12)
    keys_after = await started_keys()
    # an old event's key was a hash over its fields, the number included (phone numbers are
    # few enough to try them all): it is replaced; a recent event keeps its own
    assert {cid for cid in keys_before if keys_after[cid] != keys_before[cid]} == old
    assert (first.calls, first.events, first.tickets) == (dry.calls, dry.events, dry.tickets)
    assert first.events == len(old)
    assert second.changed == 0 and second.recordings == 0  # idempotent
    assert await oldest() is None
    after = await snapshot(client, supervisor_token, calls, tickets)

    # every figure the same: the list, each call, each ticket, personal fields aside
    assert without(after, CALL_PERSONAL | TICKET_PERSONAL) == without(
        before, CALL_PERSONAL | TICKET_PERSONAL
    )
    for cid, call in after["calls"].items():
        if cid in old:
            assert call["caller_number"] is None
            assert call["caller_name"] == call["organisation"] == call["description"] == ""
            assert call["started_at"] == before["calls"][cid]["started_at"]
        else:  # a recent call: not one byte changed
            assert call == before["calls"][cid]
            assert call["caller_name"] == "Иванов Иван Иванович"  # Cyrillic round-trips
    for tid, tk in after["tickets"].items():
        was = before["tickets"][tid]
        if was["received_at"] < cutoff.isoformat():
            assert tk["full_name"] == tk["organisation"] == tk["description"] == ""
            assert tk["has_recording"] is False
            assert tk["received_at"] == was["received_at"] and tk["due_at"] == was["due_at"]
            assert tk["status"] == was["status"]
        else:
            assert tk == was
    left = set(c.voicemail.recordings.folder.glob("voicemail-*.wav"))
    assert len(left) == len(recordings) - first.recordings

    # the call's record is recomputed from its events: a late event of an old call (a
    # replayed spool) must not bring the caller number back
    victim = sorted(old)[0]
    events = await c.calls.events(victim)
    assert all("caller_number" not in e.data for e in events)
    started = datetime.fromisoformat(before["calls"][victim]["started_at"])
    clock.at = started + timedelta(minutes=5)
    await c.calls.record(
        {"event": "certificate_checked", "call_id": victim, "certificate": CERT,
         "status": "VALID", "attempt": 2, "at": (started + timedelta(seconds=30)).isoformat()},
        clock.now(),
    )  # fmt: skip
    await c.calls.drain()
    clock.at = FINAL
    again = await snapshot(client, supervisor_token, [victim], [])
    assert again["calls"][victim]["caller_number"] is None
    assert again["calls"][victim]["caller_name"] == ""
