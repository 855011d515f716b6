"""Event shapes the store could not take are refused up front, with the field named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.domain.errors import ValidationError
from callcenter.domain.events import InstantRange, parse_event
from callcenter.services.call_log import with_calendar_years

NOW = datetime(2026, 3, 17, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_instant_that_cannot_be_stored_is_a_422_not_a_500(raw):
    with pytest.raises(ValidationError) as err:
        parse_event({"event": "call_started", "call_id": "1.2", "at": raw}, NOW)
    assert "at" in err.value.details["fields"]


def test_the_edges_that_can_be_stored_are_taken_when_the_range_allows_them():
    anything = InstantRange(past=timedelta(days=800_000), future=timedelta(days=3_000_000))
    ev = parse_event(
        {"event": "call_started", "call_id": "1.2", "at": "0001-01-01T05:00:00+01:00"},
        NOW,
        anything,
    )
    assert ev.at.astimezone(UTC).year == 1


SERVICE = with_calendar_years(InstantRange())  # the defaults, as bootstrap builds them


@pytest.mark.parametrize(
    "raw",
    [
        "1970-01-01T00:00:00+00:00",  # a switch that booted without its clock
        "9999-12-31T23:59:59+00:00",
        "2026-03-10T07:59:59+00:00",  # a week and a second back
        "2026-03-17T08:05:01+00:00",  # five minutes and a second ahead
    ],
)
def test_an_instant_far_from_the_service_clock_is_refused_naming_at(raw):
    with pytest.raises(ValidationError) as err:
        parse_event(
            {"event": "agent_connected", "call_id": "1.2", "agent": "a", "at": raw}, NOW, SERVICE
        )
    assert list(err.value.details["fields"]) == ["at"]
    assert (
        "clock" in err.value.details["fields"]["at"] or "years" in err.value.details["fields"]["at"]
    )


@pytest.mark.parametrize(
    "raw", ["2026-03-10T08:00:00+00:00", "2026-03-17T08:05:00+00:00", "2026-03-17T11:04:00+03:00"]
)
def test_the_edges_of_the_skew_are_taken(raw):
    ev = parse_event({"event": "call_started", "call_id": "1.2", "at": raw}, NOW, SERVICE)
    assert ev.at == datetime.fromisoformat(raw)


def test_the_calendar_years_bound_the_range_whatever_the_skew():
    wide = with_calendar_years(InstantRange(past=timedelta(days=366 * 200)))
    first, last = wide.years
    assert 1900 < first <= 2026 <= last < 9999
    at = datetime(first - 1, 12, 31, 12, tzinfo=UTC)
    problem = wide.problem(at, NOW)
    assert problem is not None and "years" in problem


@given(offset=st.integers(min_value=-(10**6), max_value=10**6))
def test_an_instant_is_taken_exactly_when_it_is_within_the_skew(offset):
    at = NOW + timedelta(seconds=offset)
    body = {"event": "call_started", "call_id": "1.2", "at": at.isoformat()}
    inside = -7 * 86400 <= offset <= 300
    try:
        parse_event(body, NOW, SERVICE)
    except ValidationError as exc:
        assert not inside and "at" in exc.details["fields"]
    else:
        assert inside


def _ended(at: str | None = None, **data) -> dict:
    body = {"event": "call_ended", "call_id": "7.1", "hangup_by": "caller", **data}
    return body if at is None else {**body, "at": at}


def test_an_event_without_at_has_one_key_whatever_its_receipt_time():
    first = parse_event(_ended(), NOW)
    again = parse_event(_ended(), NOW + timedelta(seconds=3))
    assert first.at != again.at
    assert first.dedup_key() == again.dedup_key()
    other = parse_event(_ended(hangup_by="agent"), NOW)
    assert other.dedup_key() != first.dedup_key()  # its fields differ: another event


def test_the_attempt_tells_two_checks_without_at_apart():
    def check(attempt):
        body = {"event": "certificate_checked", "call_id": "7.1", "status": "UNKNOWN"}
        return parse_event({**body, "attempt": attempt}, NOW).dedup_key()

    assert check(1) != check(2)


def test_with_at_the_instant_is_in_the_key_as_before():
    a = parse_event(_ended("2026-03-17T07:00:00+00:00"), NOW)
    b = parse_event(_ended("2026-03-17T07:00:00+00:00", source="agi"), NOW)
    c = parse_event(_ended("2026-03-17T07:00:01+00:00"), NOW)
    assert a.dedup_key() == b.dedup_key() != c.dedup_key()
    assert a.dedup_key() != parse_event(_ended(), NOW).dedup_key()


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_checks_at_one_instant_decide_by_their_attempt(order):
    """Two IVR checks stamped with the same instant (a coarse clock, a frozen test clock):
    the later attempt decides the call's status, whichever was stored first."""
    from callcenter.domain.calls import project, timeline

    # call 2.1: by their keys alone, attempt 2 sorts before attempt 1 at this instant
    base = {"event": "certificate_checked", "call_id": "2.1", "at": NOW.isoformat()}
    checks = [
        parse_event({**base, "certificate": number, "status": status, "attempt": n}, NOW)
        for n, number, status in ((1, "5550001", "UNKNOWN"), (2, "1234567", "VALID"))
    ]
    events = [checks[i] for i in order]
    assert [e.data["attempt"] for e in timeline(events)] == [1, 2]
    rec = project("2.1", events)
    assert (rec.certificate_status, rec.certificate_number) == ("VALID", "1234567")
