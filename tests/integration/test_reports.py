"""The supervisor's reports against a known seed: every figure computed by hand below.

The seed spans a weekend, the working Saturday 2025-11-01 (Monday 3 and Tuesday 4 November
2025 are days off), the day off 2026-01-09 and a night-time portal request. Rows are written
into the call log's tables as the projection leaves them; due times come from the calendar.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert

from callcenter.adapters import tables as t
from callcenter.calendar import MOSCOW
from callcenter.domain.errors import ValidationError
from callcenter.services.reports import parse_period

# "now" for the report: Tuesday 2026-01-13 11:30 Moscow time
NOW = datetime(2026, 1, 13, 11, 30, tzinfo=MOSCOW)


def msk(*parts) -> datetime:
    return datetime(*parts, tzinfo=MOSCOW)


def s(at: datetime, seconds: float) -> datetime:
    return at + timedelta(seconds=seconds)


def call(call_id, started, *, queued=None, connected=None, ended=None, agent=None, **more):
    return {
        "call_id": call_id,
        "caller_number": "+7495" + call_id[-7:].rjust(7, "0"),
        "started_at": started,
        "queued_at": queued,
        "connected_at": connected,
        "ended_at": ended,
        "agent": agent,
        "certificate_number": "1234567",
        "certificate_status": "VALID",
        "updated_at": started,
        "organisation": "ООО «Ромашка»",
        "abandoned": None,
        **more,
    }


C1 = msk(2025, 10, 31, 10, 0)  # Friday
C2 = msk(2025, 10, 31, 11, 0)
C3 = msk(2025, 11, 1, 12, 0)  # the working Saturday
C4 = msk(2025, 11, 1, 13, 0)
C5 = msk(2025, 11, 1, 14, 0)
C6 = msk(2025, 11, 2, 10, 0)  # Sunday: the closed line
C7 = msk(2025, 11, 5, 9, 30)
C8 = msk(2025, 11, 5, 9, 40)
C9 = msk(2025, 11, 5, 10, 0)
C10 = msk(2026, 1, 9, 11, 0)  # a day off in 2026

CALLS = [
    # queue wait 10 s, talk 300 s, window met
    call("c1", C1, queued=s(C1, 30), connected=s(C1, 40), ended=s(C1, 340), agent="PJSIP/101"),
    # wait 30 s, talk 720 s, window extended then met
    call("c2", C2, queued=s(C2, 60), connected=s(C2, 90), ended=s(C2, 810), agent="PJSIP/102"),
    # wait 5 s, talk 720 s, escalated into ticket T1
    call("c3", C3, queued=s(C3, 20), connected=s(C3, 25), ended=s(C3, 745), agent="PJSIP/101"),
    call("c4", C4, queued=s(C4, 10), ended=s(C4, 70), abandoned="queue"),
    call("c5", C5, ended=s(C5, 20), abandoned="ivr"),
    call("c6", C6, ended=s(C6, 30), certificate_status="CLOSED"),
    call("c7", C7, ended=s(C7, 40), certificate_status="EXPIRED"),
    call("c8", C8, ended=s(C8, 40), certificate_status="UNKNOWN"),
    # wait 25 s, talk 720 s, overrun
    call("c9", C9, queued=s(C9, 5), connected=s(C9, 30), ended=s(C9, 750), agent="PJSIP/102"),
    call("c10", C10, ended=s(C10, 30), certificate_status="CLOSED"),
]


def window(call_id, connected, status):
    return {
        "call_id": call_id,
        "opened_at": connected,
        "deadline_at": s(connected, 600),
        "status": status,
        "closed_at": s(connected, 600),
        "length_seconds": 600,
    }


WINDOWS = [
    window("c1", s(C1, 40), "met"),
    window("c2", s(C2, 90), "met"),
    window("c3", s(C3, 25), "escalated"),
    window("c9", s(C9, 30), "overrun"),
]


async def seed(container) -> None:
    cal = container.calendars.for_policy(await container.policy.in_force_at(NOW))

    def ticket(source, received, answered=None, call_id=None):
        return {
            "source": source,
            "call_id": call_id,
            "certificate_number": "1234567",
            "description": "Не устанавливается ключ",
            "category": "install",
            "received_at": received,
            "due_at": cal.add_working_hours(received, 12),
            "status": "answered" if answered else "open",
            "answered_at": answered,
            "created_at": received,
        }

    tickets = [
        # T1: from c3 on the working Saturday; answered Wed 10:10:25 = 5h49m35s + 1h10m25s
        ticket("call", s(C3, 625), msk(2025, 11, 5, 10, 10, 25), "c3"),
        # T2: portal at night; due Fri 12:00, answered Fri 13:00: 9 h + 4 h, breached
        ticket("portal", msk(2025, 11, 5, 23, 30), msk(2025, 11, 7, 13, 0)),
        # T3: portal on a holiday; due Tue 2026-01-13 12:00: within the next working hour
        ticket("portal", msk(2026, 1, 8, 15, 0)),
        # T4: voicemail on the day off, answered Monday 11:00: 2 working hours
        ticket("voicemail", msk(2026, 1, 9, 10, 0), msk(2026, 1, 12, 11, 0)),
        # T5: portal, never answered, due 2025-10-29 13:00: breached now
        ticket("portal", msk(2025, 10, 28, 10, 0)),
    ]
    assert tickets[2]["due_at"] == msk(2026, 1, 13, 12, 0)
    assert tickets[1]["due_at"] == msk(2025, 11, 7, 12, 0)
    async with container.engine.begin() as conn:
        await conn.execute(insert(t.calls), CALLS)
        await conn.execute(insert(t.oral_windows), WINDOWS)
        await conn.execute(
            insert(t.window_extensions),
            [{"call_id": "c2", "at": s(C2, 500), "seconds": 300, "reason": "сложный", "by": "a"}],
        )
        await conn.execute(insert(t.tickets), tickets)
        await conn.execute(
            insert(t.reviews),
            [
                {"kind": "abuse", "call_id": "c9", "note": "грубил", "created_by": "a",
                 "created_at": msk(2025, 11, 5, 10, 15)},
                {"kind": "complaint", "call_id": "c1", "note": "", "created_by": "a",
                 "created_at": msk(2025, 10, 31, 10, 10)},
            ],
        )  # fmt: skip


@pytest.fixture
async def seeded(container, clock):
    clock.at = NOW
    await seed(container)
    return container


def period(by, first="2025-10-27", last="2026-01-13"):
    return parse_period({"from": first, "to": last, "by": by}, NOW.date())


EMPTY_TICKETS = {
    "tickets_call": 0,
    "tickets_portal": 0,
    "tickets_voicemail": 0,
    "answered_in_time": 0,
    "breached": 0,
    "due_soon": 0,
    "median_hours": None,
}


async def test_report_by_week_matches_the_hand_count(seeded):
    rep = await seeded.reports.report(period("week"))
    rows = {r.key: r for r in rep.rows}
    assert list(rows) == ["2025-10-27", "2025-11-03", "2026-01-05"]

    w1 = rows["2025-10-27"].figures
    assert w1 == {
        "offered": 6,
        "answered": 3,
        "queued": 4,
        "abandoned_ivr": 1,
        "abandoned_queue": 1,
        "refused": 0,
        "closed": 1,
        "windows": 3,
        "met": 2,
        "extended": 1,
        "overrun": 0,
        "escalated": 1,
        "within_pct": 33.3,
        "service_level_pct": 50.0,
        "asa": 15.0,
        "aht": 580.0,
        "p90": 720.0,
        "abandon_rate_pct": 25.0,
        "tickets_call": 1,
        "tickets_portal": 1,
        "tickets_voicemail": 0,
        "answered_in_time": 1,
        "breached": 1,
        "due_soon": 0,
        "median_hours": 7.0,
        "abuse": 0,
        "complaints": 1,
    }
    w2 = rows["2025-11-03"]
    assert w2.refused_by == {"EXPIRED": 1, "UNKNOWN": 1}
    assert w2.figures == {
        "offered": 3,
        "answered": 1,
        "queued": 1,
        "abandoned_ivr": 0,
        "abandoned_queue": 0,
        "refused": 2,
        "closed": 0,
        "windows": 1,
        "met": 0,
        "extended": 0,
        "overrun": 1,
        "escalated": 0,
        "within_pct": 0.0,
        "service_level_pct": 0.0,
        "asa": 25.0,
        "aht": 720.0,
        "p90": 720.0,
        "abandon_rate_pct": 0.0,
        **EMPTY_TICKETS,
        "tickets_portal": 1,
        "breached": 1,
        "median_hours": 13.0,
        "abuse": 1,
        "complaints": 0,
    }
    w3 = rows["2026-01-05"].figures
    assert w3["offered"] == 1 and w3["closed"] == 1 and w3["answered"] == 0
    assert w3["within_pct"] is None and w3["service_level_pct"] is None and w3["p90"] is None
    assert {k: w3[k] for k in EMPTY_TICKETS} == {
        **EMPTY_TICKETS,
        "tickets_portal": 1,
        "tickets_voicemail": 1,
        "answered_in_time": 1,
        "due_soon": 1,
        "median_hours": 2.0,
    }

    total = rep.total
    assert total.refused_by == {"EXPIRED": 1, "UNKNOWN": 1}
    assert total.figures == {
        "offered": 10,
        "answered": 4,
        "queued": 5,
        "abandoned_ivr": 1,
        "abandoned_queue": 1,
        "refused": 2,
        "closed": 2,
        "windows": 4,
        "met": 2,
        "extended": 1,
        "overrun": 1,
        "escalated": 1,
        "within_pct": 25.0,
        "service_level_pct": 40.0,
        "asa": 17.5,
        "aht": 615.0,
        "p90": 720.0,
        "abandon_rate_pct": 20.0,
        "tickets_call": 1,
        "tickets_portal": 3,
        "tickets_voicemail": 1,
        "answered_in_time": 2,
        "breached": 2,
        "due_soon": 1,
        "median_hours": 7.0,
        "abuse": 1,
        "complaints": 1,
    }


async def test_report_by_day_and_by_agent(seeded):
    rep = await seeded.reports.report(period("day"))
    days = {r.key: r.figures for r in rep.rows}
    # the working Saturday: c3 answered, c4 abandoned in the queue, c5 in the IVR; T1 received
    sat = days["2025-11-01"]
    assert (sat["offered"], sat["answered"], sat["abandoned_queue"], sat["abandoned_ivr"]) == (
        3,
        1,
        1,
        1,
    )
    assert (sat["tickets_call"], sat["median_hours"]) == (1, 7.0)
    assert days["2025-11-02"]["closed"] == 1  # Sunday
    assert days["2025-11-05"]["tickets_portal"] == 1  # 23:30 Moscow is still the 5th
    assert days["2025-10-28"]["offered"] == 0 and days["2025-10-28"]["breached"] == 1

    rep = await seeded.reports.report(period("agent"))
    agents = {r.key: r.figures for r in rep.rows}
    assert set(agents) == {"", "PJSIP/101", "PJSIP/102"}
    a = agents["PJSIP/101"]
    assert (a["offered"], a["met"], a["escalated"], a["within_pct"]) == (2, 1, 1, 50.0)
    assert (a["service_level_pct"], a["asa"], a["aht"], a["p90"]) == (100.0, 7.5, 510.0, 678.0)
    assert (a["tickets_call"], a["answered_in_time"], a["median_hours"], a["complaints"]) == (
        1,
        1,
        7.0,
        1,
    )
    b = agents["PJSIP/102"]
    assert (b["offered"], b["extended"], b["overrun"], b["abuse"]) == (2, 1, 1, 1)
    nobody = agents[""]
    assert (nobody["offered"], nobody["refused"], nobody["closed"]) == (6, 2, 2)
    assert nobody["tickets_portal"] == 3 and nobody["tickets_voicemail"] == 1


async def test_threshold_changes_the_service_level(seeded):
    rep = await seeded.reports.report(
        parse_period({"from": "2025-10-27", "to": "2025-11-09", "threshold": "30"}, NOW.date())
    )
    assert rep.total.figures["service_level_pct"] == 80.0  # 10, 30, 5, 25 s of 5 queued


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2025-13-01"}, "from"),
        ({"from": "2025-11-02", "to": "2025-11-01"}, "to"),
        ({"by": "month"}, "by"),
        ({"threshold": "0"}, "threshold"),
        ({"threshold": "２０"}, "threshold"),
        ({"from": "2020-01-01", "to": "2025-01-01"}, "to"),
    ],
)
def test_bad_periods_name_the_field(query, field):
    with pytest.raises(ValidationError) as err:
        parse_period(query, NOW.date())
    assert err.value.code == "invalid_query" and field in err.value.details["fields"]


async def test_a_page_of_the_call_log_and_its_count(seeded):
    from callcenter.services.call_filters import parse_call_filters

    f = parse_call_filters({"from": "2025-10-27", "to": "2026-01-13", "sort": "caller_number"})
    rows, total = await seeded.reports.calls_page(f, 3, 0)
    # "+74950000c9" sorts below "+7495000c10": text order, newest first on ties
    assert total == 10 and [r["call_id"] for r in rows] == ["c10", "c9", "c8"]
    rows, total = await seeded.reports.calls_page(f, 3, 9, count_limit=4)
    assert total == 4 and [r["call_id"] for r in rows] == ["c1"]
    f = parse_call_filters({"window": "met", "organisation": "ромашка", "dir": "asc"})
    rows, total = await seeded.reports.calls_page(f, 50, 0)
    assert total == 2 and [r["call_id"] for r in rows] == ["c1", "c2"]
    assert {r["route"] for r in rows} == {"queued"}


async def test_the_talk_time_chart_counts_whole_minutes(seeded):
    rep = await seeded.reports.report(period("week"))
    charts = await seeded.reports.charts(rep)
    minutes = charts["talk_minutes"]
    # c1 talked 300 s (the 5-6 minute bucket), c2, c3 and c9 720 s (12-13)
    assert len(minutes) == 20 and minutes[5] == 1 and minutes[12] == 3 and sum(minutes) == 4
    # (ISO weekday, Moscow hour, calls): Wed 5 Nov 09:30, 09:40, 10:00; Fri 31 Oct 10:00,
    # 11:00 and Fri 9 Jan 11:00; the working Saturday 12, 13, 14; Sunday 10:00
    assert sorted(charts["heatmap"]) == [
        (3, 9, 2),
        (3, 10, 1),
        (5, 10, 1),
        (5, 11, 2),
        (6, 12, 1),
        (6, 13, 1),
        (6, 14, 1),
        (7, 10, 1),
    ]


def _expected_tickets(rows, by, now, soon, cal):
    """The ticket figures as the report defined them before the database counted them: one
    ticket at a time, in Python (the reference the SQL must agree with)."""
    import statistics

    out: dict[str, dict] = {}
    hours: dict[str, list[float]] = {}

    def key_of(at):
        local = at.astimezone(MOSCOW).date()
        if by == "week":
            local -= timedelta(days=local.weekday())
        return local.isoformat()

    for tk in rows:
        for key in (key_of(tk["received_at"]), ""):
            f = out.setdefault(key, {name: 0 for name in EMPTY_TICKETS if name != "median_hours"})
            source = tk["source"] if tk["source"] in ("portal", "voicemail") else "call"
            f["tickets_" + source] += 1
            answered, due = tk["answered_at"], tk["due_at"]
            if answered is not None:
                hours.setdefault(key, []).append(
                    cal.working_seconds_between(tk["received_at"], answered) / 3600
                )
            if tk["status"] == "withdrawn":
                continue
            if answered is not None:
                f["answered_in_time" if answered <= due else "breached"] += 1
            elif due <= now:
                f["breached"] += 1
            elif due <= soon:
                f["due_soon"] += 1
    for key, f in out.items():
        xs = hours.get(key)
        f["median_hours"] = round(statistics.median(xs), 2) if xs else None
    return out


@pytest.mark.parametrize("seed_", [1, 2, 3])
async def test_ticket_figures_agree_with_one_ticket_at_a_time(container, clock, seed_):
    """Random tickets (every source, open, answered early or late, withdrawn, due around
    "now" and the next working hour, received at night and on days off): the report's
    per-group and total ticket figures equal the ticket-by-ticket count."""
    import random

    rnd = random.Random(seed_)
    clock.at = NOW
    cal = container.calendars.for_policy(await container.policy.in_force_at(NOW))
    soon = cal.add_working_hours(NOW, 1)
    first = msk(2025, 12, 20, 0, 0)
    rows = []
    for i in range(300):
        received = first + timedelta(minutes=rnd.randrange(26 * 24 * 60))
        due = rnd.choice(
            [
                cal.add_working_hours(received, 12),
                NOW + timedelta(minutes=rnd.randrange(-90, 90)),
                soon + timedelta(seconds=rnd.choice([-1, 0, 1])),
                NOW,
            ]
        )
        answered = rnd.choice([None, received + timedelta(minutes=rnd.randrange(1, 4000)), due])
        status = rnd.choice(["withdrawn"] if rnd.random() < 0.15 else ["open", "answered"])
        rows.append(
            {
                "source": rnd.choice(["call", "portal", "voicemail"]),
                "call_id": None,
                "certificate_number": "1234567",
                "description": f"№{i}",
                "category": "install",
                "received_at": received,
                "due_at": due,
                "status": status,
                "answered_at": answered,
                "created_at": received,
            }
        )
    async with container.engine.begin() as conn:
        await conn.execute(insert(t.tickets), rows)
    for by in ("day", "week"):
        report = await container.reports.report(period(by, "2025-12-20", "2026-01-14"))
        got = {r.key: {n: r.figures[n] for n in EMPTY_TICKETS} for r in report.rows}
        got[""] = {n: report.total.figures[n] for n in EMPTY_TICKETS}
        assert got == _expected_tickets(rows, by, NOW, soon, cal), by


async def test_a_window_filter_finds_a_window_opened_after_the_period(container, clock):
    """The window filter reads windows by their opening (the period plus a day): a call
    started at 23:58 on the period's last day and answered after midnight is still found,
    by the history page and by the report page's call log alike."""
    from callcenter.services.call_filters import parse_call_filters

    clock.at = NOW
    late = msk(2025, 11, 30, 23, 58)
    answered = msk(2025, 12, 1, 0, 3)
    early = msk(2025, 11, 1, 0, 0, 30)
    rows = [
        call("late", late, queued=s(late, 5), connected=answered, ended=s(answered, 900)),
        call("early", early, queued=s(early, 5), connected=s(early, 9), ended=s(early, 700)),
        call("before", msk(2025, 10, 31, 23, 50), queued=msk(2025, 10, 31, 23, 51),
             connected=msk(2025, 11, 1, 0, 1), ended=msk(2025, 11, 1, 0, 12)),
    ]  # fmt: skip
    windows = [
        window("late", answered, "overrun"),
        window("early", s(early, 9), "overrun"),
        window("before", msk(2025, 11, 1, 0, 1), "overrun"),  # opened in, started before
    ]
    async with container.engine.begin() as conn:
        await conn.execute(insert(t.calls), rows)
        await conn.execute(insert(t.oral_windows), windows)
    f = parse_call_filters({"from": "2025-11-01", "to": "2025-11-30", "window": "overrun"})
    page, total = await container.reports.calls_page(f, 50, 0)
    assert ([r["call_id"] for r in page], total) == (["late", "early"], 2)
    history = await container.supervisor.history(f, 50, 0)
    assert [r["call_id"] for r in history.items] == ["late", "early"]
    assert history.total == 2
