"""Property tests of the working-time calendar, including agreement with a day-by-day oracle."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.calendar import MOSCOW, CalendarOverrides, WorkCalendar

CAL = WorkCalendar()
RU = holidays.RU(years=range(2023, 2030))
ZONES = [
    UTC,
    timezone(timedelta(hours=3)),
    timezone(timedelta(hours=-9, minutes=-30)),
    MOSCOW,
    ZoneInfo("America/New_York"),
    ZoneInfo("Asia/Kolkata"),
    ZoneInfo("Pacific/Kiritimati"),
    ZoneInfo("Europe/London"),
]

instants = st.datetimes(
    min_value=datetime(2024, 1, 1),
    max_value=datetime(2027, 12, 31, 23, 59, 59),
    timezones=st.sampled_from(ZONES),
    allow_imaginary=False,
)
# Instants near opening and closing times are where off-by-one mistakes hide.
edge_instants = st.builds(
    lambda d, t, tz: datetime.combine(d, t, tzinfo=MOSCOW).astimezone(tz),
    st.dates(date(2024, 1, 1), date(2027, 12, 31)),
    st.sampled_from([time(0), time(8, 59, 59, 999_999), time(9), time(17, 59, 59), time(18)]),
    st.sampled_from(ZONES),
)
any_instant = st.one_of(instants, edge_instants)
hours = st.one_of(
    st.integers(0, 600),
    st.floats(0, 600, allow_nan=False, allow_infinity=False),
)
quarter_hours = st.integers(0, 600 * 4).map(lambda q: q / 4)

H = 3600.0


def reference_due(
    start: datetime,
    n_hours: float,
    days_off: frozenset[date] = frozenset(),
    working_days: frozenset[date] = frozenset(),
) -> datetime:
    """Walk day by day from the statutory calendar: slow, obvious, independent of the module."""
    local = start.astimezone(MOSCOW)
    remaining = timedelta(hours=n_hours)
    day = local.date()
    while True:
        working = day in working_days or (day not in days_off and RU.is_working_day(day))
        if working:
            begin = max(datetime.combine(day, time(9), tzinfo=MOSCOW), local)
            close = datetime.combine(day, time(18), tzinfo=MOSCOW)
            if begin < close:
                if remaining <= close - begin:
                    return begin + remaining
                remaining -= close - begin
        day += timedelta(days=1)


@settings(deadline=None)
@given(any_instant, hours)
def test_due_time_is_exactly_n_working_hours_away(t: datetime, n: float) -> None:
    due = CAL.add_working_hours(t, n)
    assert abs(CAL.working_seconds_between(t, due) - n * H) <= 1e-6


@settings(deadline=None)
@given(any_instant, hours)
def test_due_time_is_inside_working_time_in_moscow(t: datetime, n: float) -> None:
    due = CAL.add_working_hours(t, n)
    assert due.tzinfo is MOSCOW and due.utcoffset() == timedelta(hours=3)
    bounds = CAL.working_hours_of(due.date())
    assert bounds is not None
    assert bounds[0] <= due <= bounds[1]
    assert due >= t


@settings(deadline=None)
@given(any_instant, any_instant, hours)
def test_due_time_is_monotonic_in_start(t1: datetime, t2: datetime, n: float) -> None:
    t1, t2 = sorted((t1, t2))
    assert CAL.add_working_hours(t1, n) <= CAL.add_working_hours(t2, n)


@settings(deadline=None)
@given(any_instant, hours, hours)
def test_due_time_is_monotonic_in_hours(t: datetime, n1: float, n2: float) -> None:
    n1, n2 = sorted((n1, n2))
    assert CAL.add_working_hours(t, n1) <= CAL.add_working_hours(t, n2)


@settings(deadline=None)
@given(any_instant, any_instant, any_instant)
def test_working_seconds_are_additive(a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    ab = CAL.working_seconds_between(a, b)
    bc = CAL.working_seconds_between(b, c)
    assert ab >= 0 and bc >= 0
    assert abs(ab + bc - CAL.working_seconds_between(a, c)) <= 1e-6
    assert CAL.working_seconds_between(c, a) == 0


@settings(deadline=None)
@given(any_instant, hours)
def test_answer_does_not_depend_on_the_input_zone(t: datetime, n: float) -> None:
    as_utc = t.astimezone(UTC)
    as_plus3 = t.astimezone(timezone(timedelta(hours=3)))
    due = CAL.add_working_hours(as_utc, n)
    assert CAL.add_working_hours(as_plus3, n) == due
    assert CAL.add_working_hours(t, n) == due
    assert CAL.is_open(as_utc) is CAL.is_open(as_plus3) is CAL.is_open(t)


@settings(deadline=None)
@given(any_instant)
def test_is_open_and_next_opening_agree(t: datetime) -> None:
    opening = CAL.next_opening(t)
    assert CAL.is_open(opening)
    assert opening >= t
    if CAL.is_open(t):
        assert opening == t
    else:
        assert CAL.working_seconds_between(t, opening) == 0
        assert CAL.add_working_hours(t, 0) == opening


@settings(deadline=None)
@given(any_instant, quarter_hours)
def test_matches_day_by_day_oracle(t: datetime, n: float) -> None:
    assert CAL.add_working_hours(t, n) == reference_due(t, n)


weekend_days = st.dates(date(2024, 1, 1), date(2025, 12, 31)).filter(lambda d: d.weekday() >= 5)
weekdays = st.dates(date(2024, 1, 1), date(2025, 12, 31)).filter(lambda d: d.weekday() < 5)


@settings(deadline=None, max_examples=40)
@given(
    st.frozensets(weekdays, max_size=15),
    st.frozensets(weekend_days, max_size=15),
    st.datetimes(datetime(2024, 1, 1), datetime(2025, 12, 31), timezones=st.just(MOSCOW)),
    quarter_hours,
)
def test_overrides_match_oracle(
    days_off: frozenset[date], working: frozenset[date], t: datetime, n: float
) -> None:
    cal = WorkCalendar(overrides=CalendarOverrides(days_off=days_off, working_days=working))
    assert cal.add_working_hours(t, n) == reference_due(t, n, days_off, working)
