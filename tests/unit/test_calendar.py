"""Example-based tests of the working-time calendar; every expected value is worked out by hand."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest

from callcenter.calendar import (
    MOSCOW,
    CalendarError,
    CalendarOverrides,
    WorkCalendar,
    load_overrides,
)

PLUS3 = timezone(timedelta(hours=3))
EXAMPLE_OVERRIDES = Path(__file__).parents[2] / "config" / "calendar-overrides.example.toml"


def msk(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=MOSCOW)


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar()


# --- working days -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2025, 11, 1), True),  # Saturday made working (transfer from 2025-11-03)
        (date(2024, 11, 2), True),  # Saturday made working
        (date(2024, 12, 28), True),  # Saturday made working
        (date(2025, 11, 3), False),  # Monday, substituted day off
        (date(2025, 11, 4), False),  # Unity Day
        (date(2025, 12, 31), False),  # Wednesday, substituted day off
        (date(2026, 1, 9), False),  # Friday, substituted day off
        (date(2026, 1, 12), True),  # first working day of 2026
        (date(2025, 6, 15), False),  # plain Sunday
        (date(2025, 6, 14), False),  # plain Saturday
        (date(2025, 6, 18), True),  # plain Wednesday
    ],
)
def test_is_working_day_follows_transfers(cal: WorkCalendar, day: date, working: bool) -> None:
    assert cal.is_working_day(day) is working


def test_membership_in_holidays_alone_would_miss_the_working_saturday() -> None:
    """Guards the premise: 2025-11-01 is not a holiday, yet a weekday test would call it off."""
    assert date(2025, 11, 1) not in holidays.RU(years=2025)
    assert date(2025, 11, 1).weekday() == 5


def test_working_hours_of(cal: WorkCalendar) -> None:
    opening, closing = cal.working_hours_of(date(2025, 11, 1))
    assert opening == msk(2025, 11, 1, 9) and closing == msk(2025, 11, 1, 18)
    assert opening.utcoffset() == closing.utcoffset() == timedelta(hours=3)
    assert cal.working_hours_of(date(2025, 11, 2)) is None
    assert cal.working_hours_of(date(2026, 1, 9)) is None


def test_is_working_day_rejects_a_datetime(cal: WorkCalendar) -> None:
    with pytest.raises(CalendarError, match="expected a date"):
        cal.is_working_day(msk(2025, 6, 18, 12))


# --- is_open ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "is_open"),
    [
        (msk(2025, 6, 16, 9), True),  # Monday 09:00 exactly
        (msk(2025, 6, 16, 8, 59, 59, 999_999), False),
        (msk(2025, 6, 16, 17, 59, 59), True),
        (msk(2025, 6, 16, 17, 59, 59, 999_999), True),
        (msk(2025, 6, 16, 18), False),  # 18:00 exactly is closed
        (msk(2025, 6, 16, 23), False),
        (msk(2025, 6, 15, 12), False),  # plain Sunday
        (msk(2025, 11, 1, 12), True),  # working Saturday
        (msk(2025, 11, 3, 12), False),  # substituted Monday
        (datetime(2025, 6, 16, 6, tzinfo=UTC), True),  # 09:00 Moscow
        (datetime(2025, 6, 16, 15, tzinfo=UTC), False),  # 18:00 Moscow
        (datetime(2025, 6, 16, 2, tzinfo=ZoneInfo("America/New_York")), True),  # 09:00 Moscow
    ],
)
def test_is_open(cal: WorkCalendar, at: datetime, is_open: bool) -> None:
    assert cal.is_open(at) is is_open


def test_historical_moscow_offset_is_honoured(cal: WorkCalendar) -> None:
    """In 2012 Moscow was UTC+4, so the line opened at 05:00 UTC, not 06:00."""
    assert cal.is_open(datetime(2012, 6, 1, 5, tzinfo=UTC))
    assert not cal.is_open(datetime(2012, 6, 1, 4, 59, tzinfo=UTC))
    assert not cal.is_open(datetime(2012, 6, 1, 14, tzinfo=UTC))


# --- next_opening -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (msk(2025, 6, 20, 18), msk(2025, 6, 23, 9)),  # Friday 18:00 -> Monday
        (msk(2025, 6, 20, 17, 30), msk(2025, 6, 20, 17, 30)),  # open: itself
        (msk(2025, 6, 17, 7, 15), msk(2025, 6, 17, 9)),  # early morning, same day
        (msk(2025, 10, 31, 18), msk(2025, 11, 1, 9)),  # Friday -> working Saturday
        (msk(2025, 11, 1, 18), msk(2025, 11, 5, 9)),  # over Sun, 3 Nov, 4 Nov
        (msk(2025, 12, 30, 18), msk(2026, 1, 12, 9)),  # over the New Year holidays
        (datetime(2025, 6, 20, 15, tzinfo=UTC), msk(2025, 6, 23, 9)),
    ],
)
def test_next_opening(cal: WorkCalendar, at: datetime, expected: datetime) -> None:
    got = cal.next_opening(at)
    assert got == expected
    assert got.tzinfo is MOSCOW


# --- add_working_hours --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("friday", "saturday"),
    [(date(2024, 11, 1), date(2024, 11, 2)), (date(2025, 10, 31), date(2025, 11, 1))],
)
def test_friday_before_working_saturday_is_due_at_saturday_close(
    cal: WorkCalendar, friday: date, saturday: date
) -> None:
    """3 hours on Friday + 9 on Saturday: due at the END of the 12th hour, 18:00 Saturday."""
    start = datetime.combine(friday, time(15), tzinfo=MOSCOW)
    assert cal.add_working_hours(start, 12) == datetime.combine(saturday, time(18), tzinfo=MOSCOW)


def test_full_day_from_opening_ends_at_closing_not_next_morning(cal: WorkCalendar) -> None:
    assert cal.add_working_hours(msk(2025, 6, 16, 9), 9) == msk(2025, 6, 16, 18)


def test_night_request_starts_at_next_opening(cal: WorkCalendar) -> None:
    assert cal.add_working_hours(msk(2025, 6, 17, 23), 1) == msk(2025, 6, 18, 10)
    assert cal.add_working_hours(msk(2025, 6, 18, 3), 9) == msk(2025, 6, 18, 18)
    assert cal.add_working_hours(msk(2025, 6, 20, 23), 12) == msk(2025, 6, 24, 12)


def test_new_year_holidays_are_skipped(cal: WorkCalendar) -> None:
    """30 Dec 17-18 (1 h); 31 Dec to 11 Jan off; 12 Jan 9 h (10); 13 Jan 09-11 (12)."""
    assert cal.add_working_hours(msk(2025, 12, 30, 17), 12) == msk(2026, 1, 13, 11)


def test_fractional_hours(cal: WorkCalendar) -> None:
    assert cal.add_working_hours(msk(2025, 6, 16, 17, 30), 0.75) == msk(2025, 6, 17, 9, 15)
    assert cal.add_working_hours(msk(2025, 6, 16, 9), 1 / 3600) == msk(2025, 6, 16, 9, 0, 1)


def test_zero_hours(cal: WorkCalendar) -> None:
    assert cal.add_working_hours(msk(2025, 6, 16, 12, 34, 56), 0) == msk(2025, 6, 16, 12, 34, 56)
    assert cal.add_working_hours(msk(2025, 6, 16, 18), 0) == msk(2025, 6, 17, 9)
    assert cal.add_working_hours(msk(2025, 6, 14, 12), 0.0) == msk(2025, 6, 16, 9)
    assert cal.add_working_hours(msk(2025, 6, 14, 12), 1e-12) == msk(2025, 6, 16, 9)


def test_long_horizon_crosses_into_next_year(cal: WorkCalendar) -> None:
    """From 2025-12-26 09:00: 26, 29, 30 Dec = 27 h, then 2026 from 12 Jan; 36 h = 12-15 Jan."""
    assert cal.add_working_hours(msk(2025, 12, 26, 9), 27) == msk(2025, 12, 30, 18)
    assert cal.add_working_hours(msk(2025, 12, 26, 9), 63) == msk(2026, 1, 15, 18)


def test_same_instant_in_any_zone_gives_the_same_answer_in_moscow(cal: WorkCalendar) -> None:
    in_utc = datetime(2025, 10, 31, 12, tzinfo=UTC)
    in_plus3 = datetime(2025, 10, 31, 15, tzinfo=PLUS3)
    in_ny = in_utc.astimezone(ZoneInfo("America/New_York"))
    answers = {cal.add_working_hours(t, 12) for t in (in_utc, in_plus3, in_ny)}
    assert answers == {msk(2025, 11, 1, 18)}
    (answer,) = answers
    assert answer.utcoffset() == timedelta(hours=3)
    assert answer.tzinfo is MOSCOW
    assert cal.add_working_hours(in_utc, 0).utcoffset() == timedelta(hours=3)
    assert cal.next_opening(in_utc).tzinfo is MOSCOW


@pytest.mark.parametrize("hours", [-1, -1e-9, math.nan, math.inf, "12", None])
def test_bad_hours_are_refused(cal: WorkCalendar, hours: object) -> None:
    with pytest.raises(CalendarError, match="hours"):
        cal.add_working_hours(msk(2025, 6, 16, 12), hours)  # type: ignore[arg-type]


def test_naive_datetimes_are_refused_by_every_method(cal: WorkCalendar) -> None:
    naive = datetime(2025, 6, 16, 12)
    calls = [
        lambda: cal.is_open(naive),
        lambda: cal.next_opening(naive),
        lambda: cal.add_working_hours(naive, 1),
        lambda: cal.working_seconds_between(naive, msk(2025, 6, 17)),
        lambda: cal.working_seconds_between(msk(2025, 6, 15), naive),
    ]
    for call in calls:
        with pytest.raises(CalendarError, match="timezone-aware") as info:
            call()
        assert "\n" not in str(info.value)


def test_a_date_is_not_an_instant(cal: WorkCalendar) -> None:
    with pytest.raises(CalendarError, match="aware datetime"):
        cal.is_open(date(2025, 6, 16))  # type: ignore[arg-type]


def test_years_outside_the_holiday_data_are_refused(cal: WorkCalendar) -> None:
    with pytest.raises(CalendarError, match="2101"):
        cal.is_open(datetime(2101, 6, 1, 12, tzinfo=UTC))
    with pytest.raises(CalendarError, match="2101"):
        cal.add_working_hours(msk(2100, 12, 30, 9), 100)


# --- working_seconds_between --------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "hours"),
    [
        (msk(2025, 6, 20, 17), msk(2025, 6, 23, 10), 2),  # over a weekend
        (msk(2025, 10, 31, 9), msk(2025, 11, 4, 9), 18),  # Fri + working Sat; 3 and 4 Nov off
        (msk(2025, 12, 30, 17), msk(2026, 1, 13, 11), 12),
        (msk(2025, 6, 16, 12), msk(2025, 6, 16, 12), 0),
        (msk(2025, 6, 16, 19), msk(2025, 6, 17, 8), 0),
        (msk(2025, 6, 17), msk(2025, 6, 16), 0),  # reversed
        (datetime(2025, 6, 16, 6, tzinfo=UTC), msk(2025, 6, 16, 9, 30), 0.5),
    ],
)
def test_working_seconds_between(cal: WorkCalendar, a: datetime, b: datetime, hours: float) -> None:
    assert cal.working_seconds_between(a, b) == hours * 3600


def test_working_seconds_over_whole_years(cal: WorkCalendar) -> None:
    """2025 has 247 working days of 9 hours (the official production calendar)."""
    assert cal.working_seconds_between(msk(2025, 1, 1), msk(2026, 1, 1)) == 247 * 9 * 3600


# --- overrides ----------------------------------------------------------------------------


def test_extra_day_off_is_skipped() -> None:
    cal = WorkCalendar(overrides=CalendarOverrides(days_off=frozenset({date(2025, 6, 18)})))
    assert not cal.is_working_day(date(2025, 6, 18))
    assert cal.add_working_hours(msk(2025, 6, 17, 17), 2) == msk(2025, 6, 19, 10)


def test_extra_working_saturday_is_used() -> None:
    cal = WorkCalendar(overrides=CalendarOverrides(working_days=frozenset({date(2025, 6, 21)})))
    assert cal.is_working_day(date(2025, 6, 21))
    assert cal.add_working_hours(msk(2025, 6, 20, 17), 2) == msk(2025, 6, 21, 10)
    assert cal.next_opening(msk(2025, 6, 20, 18)) == msk(2025, 6, 21, 9)


def test_short_day_ends_early() -> None:
    cal = WorkCalendar(overrides=CalendarOverrides(short_days={date(2025, 6, 17): time(17)}))
    assert cal.working_hours_of(date(2025, 6, 17)) == (msk(2025, 6, 17, 9), msk(2025, 6, 17, 17))
    assert cal.is_open(msk(2025, 6, 17, 16, 59))
    assert not cal.is_open(msk(2025, 6, 17, 17))
    assert cal.add_working_hours(msk(2025, 6, 17, 16), 1) == msk(2025, 6, 17, 17)
    assert cal.add_working_hours(msk(2025, 6, 17, 16), 2) == msk(2025, 6, 18, 10)
    assert cal.working_seconds_between(msk(2025, 6, 17), msk(2025, 6, 18)) == 8 * 3600


def test_short_day_on_a_day_off_is_ignored() -> None:
    cal = WorkCalendar(overrides=CalendarOverrides(short_days={date(2025, 6, 15): time(17)}))
    assert cal.working_hours_of(date(2025, 6, 15)) is None


def test_custom_working_day_bounds() -> None:
    cal = WorkCalendar(day_start=time(10), day_end=time(14))
    assert cal.add_working_hours(msk(2025, 6, 16, 13), 2) == msk(2025, 6, 17, 11)


def test_overrides_contradictions_are_refused() -> None:
    with pytest.raises(CalendarError, match="2025-06-18 is in both days_off and working_days"):
        CalendarOverrides(
            days_off=frozenset({date(2025, 6, 18)}), working_days=frozenset({date(2025, 6, 18)})
        )
    with pytest.raises(CalendarError, match="days_off and short_days"):
        CalendarOverrides(days_off={date(2025, 6, 18)}, short_days={date(2025, 6, 18): time(17)})
    with pytest.raises(CalendarError, match="collection of dates"):
        CalendarOverrides(days_off="2025-06-18")  # type: ignore[arg-type]


@pytest.mark.parametrize("end", [time(9), time(8), time(18, 0, 1)])
def test_short_day_must_end_inside_the_working_day(end: time) -> None:
    overrides = CalendarOverrides(short_days={date(2025, 6, 17): end})
    with pytest.raises(CalendarError, match="short day 2025-06-17"):
        WorkCalendar(overrides=overrides)


def test_day_must_start_before_it_ends() -> None:
    with pytest.raises(CalendarError, match="day_start"):
        WorkCalendar(day_start=time(18), day_end=time(9))


def test_overrides_are_immutable_and_hashable() -> None:
    o = CalendarOverrides(days_off=[date(2025, 6, 18)], short_days={date(2025, 6, 17): time(17)})
    assert o.days_off == frozenset({date(2025, 6, 18)})
    assert o == CalendarOverrides(
        days_off=frozenset({date(2025, 6, 18)}), short_days={date(2025, 6, 17): time(17)}
    )
    hash(o)
    with pytest.raises(TypeError):
        o.short_days[date(2025, 6, 19)] = time(16)  # type: ignore[index]


# --- load_overrides -----------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "overrides.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'days_off = ["2027-01-11", 2027-01-12]\n'
        'working_days = ["2027-06-19"]\n'
        "[short_days]\n"
        '"2027-02-20" = "17:00"\n'
        '"2027-06-11" = 16:30:00\n',
    )
    o = load_overrides(str(path))
    assert o.days_off == {date(2027, 1, 11), date(2027, 1, 12)}
    assert o.working_days == {date(2027, 6, 19)}
    assert dict(o.short_days) == {date(2027, 2, 20): time(17), date(2027, 6, 11): time(16, 30)}


def test_empty_overrides_file_is_fine(tmp_path: Path) -> None:
    assert load_overrides(write(tmp_path, "")) == CalendarOverrides()


def test_example_overrides_file_loads_and_names_only_working_days() -> None:
    o = load_overrides(EXAMPLE_OVERRIDES)
    cal = WorkCalendar(overrides=o)
    assert o.short_days
    for day, end in o.short_days.items():
        assert holidays.RU(years=day.year).is_working_day(day), day
        assert cal.working_hours_of(day)[1] == datetime.combine(day, end, tzinfo=MOSCOW)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('day_off = ["2027-01-11"]\n', "unknown key 'day_off'"),
        ('days_off = ["2027-01-11", "2027-13-01"]\n', r"days_off\[1\]: '2027-13-01'"),
        ('days_off = ["11.01.2027"]\n', r"days_off\[0\]: '11.01.2027' is not a valid date"),
        ('working_days = ["20270111"]\n', r"working_days\[0\]"),
        ('days_off = "2027-01-11"\n', "days_off must be a list"),
        ("days_off = [2027-01-11T10:00:00]\n", r"days_off\[0\]"),
        ('[short_days]\n"2027-02-20" = "5pm"\n', "short_days.2027-02-20: '5pm'"),
        ('[short_days]\n"2027-02-20" = "25:00"\n', "short_days.2027-02-20"),
        ('[short_days]\n"Feb 20" = "17:00"\n', "short_days key: 'Feb 20'"),
        ('short_days = ["2027-02-20"]\n', "short_days must be a table"),
        (
            'days_off = ["2027-01-11"]\nworking_days = ["2027-01-11"]\n',
            "2027-01-11 is in both days_off and working_days",
        ),
        ("days_off = [\n", "invalid TOML"),
    ],
)
def test_load_overrides_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CalendarError, match=message) as info:
        load_overrides(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_overrides_file(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="cannot read overrides file"):
        load_overrides(tmp_path / "absent.toml")


def test_concurrent_cache_extension_gives_the_same_answers() -> None:
    """Threads extending the year cache in both directions must not corrupt each other."""
    starts = [msk(year, 3, 2, 12) for year in (2050, 1995, 2090, 2001, 2070, 2030, 1999, 2099)]
    expected = [WorkCalendar().add_working_hours(s, 500) for s in starts]
    shared = WorkCalendar()
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda s: shared.add_working_hours(s, 500), starts))
    assert got == expected
