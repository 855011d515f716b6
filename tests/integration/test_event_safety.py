"""Data safety: instants far from now are refused, repeats without ``at`` are stored once,
and no stored state can keep a timer failing forever."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.domain.events import InstantRange
from callcenter.services.call_log import with_calendar_years
from callcenter.services.scheduler import MAX_ATTEMPTS, Scheduler


def timezone_at(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "at",
    [
        "1970-01-01T00:00:00+00:00",
        "9999-12-31T23:59:59+00:00",
        "2026-03-17T11:10:00+03:00",  # ten minutes ahead of the service's clock
        "2026-03-01T11:00:00+03:00",  # sixteen days back
    ],
)
async def test_an_instant_far_from_now_is_a_422_naming_at_and_nothing_is_stored(
    client, pbx_token, at
):
    body = {"event": "agent_connected", "call_id": "70.1", "agent": "PJSIP/1", "at": at}
    r = await client.post("/api/v1/events", json=body, headers=_auth(pbx_token))
    assert r.status == 422, await r.text()
    answer = await r.json()
    assert list(answer["fields"]) == ["at"]
    calls = await client.get("/api/v1/calls/70.1", headers=_auth(pbx_token))
    assert calls.status in (403, 404)  # the pbx may not read calls; either way no 500


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    at=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, *(timezone_at(h) for h in (-12, -1, 3, 14))]),
    )
    | st.datetimes(
        min_value=datetime(2026, 3, 10), max_value=datetime(2026, 3, 18), timezones=st.just(UTC)
    )
)
async def test_any_instant_gives_201_or_a_422_naming_at_never_a_5xx(client, pbx_token, clock, at):
    body = {"event": "call_started", "call_id": "74.1", "at": at.isoformat()}
    r = await client.post("/api/v1/events", json=body, headers=_auth(pbx_token))
    lag = (clock.now() - at).total_seconds()
    believable = -300 <= lag <= 7 * 86400
    if believable:
        assert r.status in (200, 201), await r.text()
    else:
        assert r.status == 422, await r.text()
        assert list((await r.json())["fields"]) == ["at"]


async def test_a_poisoned_call_ends_normally_once_its_bad_instant_is_refused(
    client, pbx_token, container, clock
):
    """The issue's case: 1970 refused, then the call's real events and its end go through."""
    cid = "70.2"
    base = {"call_id": cid, "agent": "PJSIP/1"}
    bad = {**base, "event": "agent_connected", "at": "1970-01-01T00:00:00+00:00"}
    r = await client.post("/api/v1/events", json=bad, headers=_auth(pbx_token))
    assert r.status == 422
    for body in (
        {**base, "event": "agent_connected", "at": clock.now().isoformat()},
        {"event": "call_ended", "call_id": cid, "at": clock.now().isoformat()},
    ):
        r = await client.post("/api/v1/events", json=body, headers=_auth(pbx_token))
        assert r.status == 201, await r.text()
    assert container.scheduler.parked == set()


async def test_the_same_event_without_at_twice_is_stored_once(client, pbx_token, container, clock):
    body = {"event": "call_ended", "call_id": "71.1", "hangup_by": "caller"}
    first = await client.post("/api/v1/events", json=body, headers=_auth(pbx_token))
    clock.advance(2)  # received later: the receipt time is not the event's identity
    again = await client.post("/api/v1/events", json=body, headers=_auth(pbx_token))
    assert (first.status, again.status) == (201, 200)
    assert (await again.json())["duplicate"] is True
    events = await container.calls.events("71.1")
    assert len(events) == 1
    assert events[0].at == clock.now() - timedelta(seconds=2)  # the first receipt


async def _poison(container, clock, cid: str) -> None:
    """Store what the refused range used to let in: an answer in 1970 (the switch's clock
    booted without NTP), through a call log told to believe anything."""
    log = container.calls.log
    strict = log.instants
    log.instants = InstantRange(past=timedelta(days=366 * 100), future=timedelta(days=1))
    try:
        await container.calls.record(
            {
                "event": "agent_connected",
                "call_id": cid,
                "agent": "PJSIP/1",
                "at": datetime(1970, 1, 1, 3, tzinfo=UTC).isoformat(),
            },
            clock.now(),
        )
    finally:
        log.instants = strict


async def test_a_timer_that_cannot_fire_is_parked_reported_once_and_not_retried(
    container, clock, caplog
):
    cid = "72.1"
    sched = container.scheduler
    await _poison(container, clock, cid)
    sched.add(datetime(1970, 1, 1, 3, 10, tzinfo=UTC), "window_deadline", cid)
    metrics = []
    sched.on_parked = metrics.append
    caplog.set_level(logging.INFO, logger="callcenter.services.scheduler")
    async with container.notifier.subscribe() as q:
        fires = 0
        for _ in range(MAX_ATTEMPTS * 3):
            await sched.fire_due()
            clock.advance(3600)  # past any backoff
            fires += 1
            if ("window_deadline", cid) in sched.parked:
                break
        pushed = [q.get_nowait() for _ in range(q.qsize())]
    assert ("window_deadline", cid) in sched.parked, fires
    retries = [r for r in caplog.records if "failed (" in r.getMessage()]
    assert len(retries) == MAX_ATTEMPTS - 1  # one line each, the first a WARNING
    assert [r.levelname for r in retries] == ["WARNING"] + ["INFO"] * (MAX_ATTEMPTS - 2)
    assert not any(r.exc_info for r in retries)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and cid in errors[0].getMessage() and errors[0].exc_info
    assert metrics == ["window_deadline"]
    alerts = [m for m in pushed if m["type"] == "supervisor_alert"]
    assert [a["kind"] for a in alerts] == ["timer_parked"] and alerts[0]["call_id"] == cid
    # the periodic reload does not arm it again, and nothing fires or logs any more
    caplog.clear()
    await sched.load()
    clock.advance(3600)
    await sched.fire_due()
    assert not [k for (_, _, k, key) in sched._heap if key == cid]
    assert not caplog.records
    # a state change (a use case arming it anew) tries it afresh
    sched.add(clock.now(), "window_deadline", cid)
    assert ("window_deadline", cid) not in sched.parked


class _Failing:
    """The timing use cases of a database that fails ``failures`` times, then answers."""

    def __init__(self, exc: Exception, failures: int) -> None:
        self.exc, self.left, self.tries = exc, failures, 0

    async def fire_deadline(self, call_id, now):
        self.tries += 1
        if self.left:
            self.left -= 1
            raise self.exc
        return True

    async def pending_timers(self):
        return [(datetime(2026, 3, 17, 8, tzinfo=UTC), "window_deadline", "73.1")]


async def test_an_outage_is_retried_with_backoff_for_as_long_as_it_lasts(clock):
    timing = _Failing(OSError("connection refused"), MAX_ATTEMPTS * 2)
    sched = Scheduler(timing, None, clock, is_outage=lambda exc: isinstance(exc, OSError))
    await sched.load()
    delays = []
    for _ in range(MAX_ATTEMPTS * 2 + 1):
        before = clock.now()
        await sched.fire_due()
        await sched.load()  # the resync does not add a second, immediate try
        if sched.pending:
            due = sched._heap[0][0]
            delays.append((due - before).total_seconds())
            clock.at = due
    assert timing.tries == MAX_ATTEMPTS * 2 + 1 and sched.fired == 1
    assert sched.parked == set()
    assert delays[:4] == [5, 10, 20, 40] and max(delays) == 300


def test_the_calendar_years_are_found_through_its_public_api():
    first, last = with_calendar_years(InstantRange()).years
    assert first <= 2000 and last >= 2099
