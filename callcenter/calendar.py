"""Working-time calendar of the support line: when it is open and when an answer is due.

Rules (the support regulation):

* A working day runs from 09:00 to 18:00 Moscow time (Europe/Moscow; UTC+3 with no DST since
  2014, but historical offsets are honoured for earlier instants).
* Weekends and Russian public holidays are days off, *with transfers*: substituted days off are
  off and Saturdays made working (e.g. 2025-11-01) are working. The source is
  ``holidays.RU().is_working_day``; plain ``date in holidays.RU()`` misses working Saturdays.
* ``CalendarOverrides`` layers local decisions on top: extra days off, extra working days and
  short days that end early (e.g. a pre-holiday day ending at 17:00). The ``holidays`` package
  does not know the statutory one-hour pre-holiday shortening; put such days in ``short_days``.
* A *working hour* is an astronomical hour inside working time. An answer due N working hours
  after receipt is due at the END of the N-th working hour: 15:00 on a Friday before a working
  Saturday plus 12 hours is 18:00 that Saturday, not 09:00 of the next working day. A request
  received outside working time starts its clock at the next opening.

Every method takes aware datetimes in any zone and answers in the calendar's zone; naive
datetimes raise ``CalendarError`` because only the caller knows what zone they were meant in.

Working days are precomputed lazily, one year at a time, as sorted arrays of opening and closing
instants (integer microseconds since the epoch) plus a running total of working microseconds, so
``add_working_hours`` and ``working_seconds_between`` are two bisections however far apart the
instants are. Integer microseconds keep the arithmetic exact at datetime resolution.
"""

from __future__ import annotations

import math
import re
import threading
import tomllib
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from numbers import Real
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import holidays

from callcenter.domain.instants import MOSCOW

__all__ = ["MOSCOW", "CalendarError", "CalendarOverrides", "WorkCalendar", "load_overrides"]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_SECOND = 1_000_000
_US_PER_HOUR = 3600 * _US_PER_SECOND
_MIN_YEAR = max(holidays.RU.start_year, date.min.year + 1)
_MAX_YEAR = min(holidays.RU.end_year, date.max.year - 1)
_OVERRIDE_KEYS = ("days_off", "working_days", "short_days")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_RE = re.compile(r"\d{2}:\d{2}(:\d{2})?")


class CalendarError(ValueError):
    """Bad calendar input: a malformed overrides file, a naive datetime, negative hours."""


def _date_set(values: Iterable[date], where: str) -> frozenset[date]:
    """Catch a lone string passed where a collection of dates belongs, before it splits."""
    if isinstance(values, str | bytes):
        raise CalendarError(f"{where}: expected a collection of dates, got {values!r}")
    return frozenset(_check_date(d, where) for d in values)


def _check_date(value: object, where: str) -> date:
    """Accept only a plain date, so a datetime cannot smuggle in a time of day or zone."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise CalendarError(f"{where}: expected a date, got {value!r}")
    return value


def _check_time(value: object, where: str) -> time:
    """Accept only a naive wall-clock time; the calendar's zone gives it meaning."""
    if not isinstance(value, time) or value.tzinfo is not None:
        raise CalendarError(f"{where}: expected a time of day without a zone, got {value!r}")
    return value


@dataclass(frozen=True)
class CalendarOverrides:
    """Local amendments to the statutory calendar (a new decree, an extra working Saturday)."""

    days_off: frozenset[date] = frozenset()
    working_days: frozenset[date] = frozenset()
    short_days: Mapping[date, time] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    def __post_init__(self) -> None:
        """Normalise to immutable containers and refuse contradictions early."""
        days_off = _date_set(self.days_off, "days_off")
        working = _date_set(self.working_days, "working_days")
        short = {
            _check_date(d, "short_days"): _check_time(t, f"short_days[{d}]")
            for d, t in dict(self.short_days).items()
        }
        if clash := sorted(days_off & working):
            raise CalendarError(f"{clash[0].isoformat()} is in both days_off and working_days")
        if clash := sorted(days_off & short.keys()):
            raise CalendarError(f"{clash[0].isoformat()} is in both days_off and short_days")
        object.__setattr__(self, "days_off", days_off)
        object.__setattr__(self, "working_days", working)
        object.__setattr__(self, "short_days", MappingProxyType(short))


def _parse_date(value: Any, where: str) -> date:
    """Take a TOML local date or a strict YYYY-MM-DD string; anything else names its key."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE_RE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise CalendarError(f"{where}: {value!r} is not a valid date (expected YYYY-MM-DD)")


def _parse_time(value: Any, where: str) -> time:
    """Take a TOML local time or a strict HH:MM[:SS] string; anything else names its key."""
    if isinstance(value, time) and value.tzinfo is None:
        return value
    if isinstance(value, str) and _TIME_RE.fullmatch(value):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    raise CalendarError(f"{where}: {value!r} is not a valid time (expected HH:MM)")


def _parse_dates(doc: dict[str, Any], key: str, path: Path) -> list[date]:
    """A missing list is empty; a scalar where a list belongs is an error, not a one-item list."""
    raw = doc.get(key, [])
    if not isinstance(raw, list):
        raise CalendarError(f"{path}: {key} must be a list of dates, got {raw!r}")
    return [_parse_date(v, f"{path}: {key}[{i}]") for i, v in enumerate(raw)]


def load_overrides(path: str | Path) -> CalendarOverrides:
    """Read a TOML overrides file, failing with the offending key so an operator can fix it."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalendarError(f"{path}: cannot read overrides file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CalendarError(f"{path}: overrides file is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CalendarError(f"{path}: invalid TOML: {exc}") from exc
    for key in doc:
        if key not in _OVERRIDE_KEYS:
            raise CalendarError(
                f"{path}: unknown key {key!r} (expected one of {', '.join(_OVERRIDE_KEYS)})"
            )
    days_off = _parse_dates(doc, "days_off", path)
    working_days = _parse_dates(doc, "working_days", path)
    raw_short = doc.get("short_days", {})
    if not isinstance(raw_short, dict):
        raise CalendarError(f"{path}: short_days must be a table of date = time, got {raw_short!r}")
    short_days = {
        _parse_date(k, f"{path}: short_days key"): _parse_time(v, f"{path}: short_days.{k}")
        for k, v in raw_short.items()
    }
    try:
        return CalendarOverrides(frozenset(days_off), frozenset(working_days), short_days)
    except CalendarError as exc:
        raise CalendarError(f"{path}: {exc}") from None


class _Table(NamedTuple):
    """One immutable snapshot of the precomputed working days, swapped whole when extended."""

    first_year: int
    last_year: int
    lo: int
    hi: int
    base: int
    starts: list[int]
    ends: list[int]
    cum_end: list[int]


def _bad_instant(value: object, name: str) -> CalendarError:
    """Explain why an instant was refused, naive datetimes being the usual culprit."""
    if isinstance(value, datetime):
        return CalendarError(
            f"{name} must be timezone-aware, got naive {value.isoformat()}; attach a zone"
        )
    return CalendarError(f"{name} must be an aware datetime, got {type(value).__name__}")


def _to_us(at: datetime, name: str) -> int:
    """Exact microseconds since the epoch; aware subtraction also rejects naive input for free."""
    try:
        d = at - _EPOCH
    except TypeError:
        raise _bad_instant(at, name) from None
    return (d.days * 86_400 + d.seconds) * _US_PER_SECOND + d.microseconds


_MIN_US = _to_us(datetime(date.min.year + 1, 1, 1, tzinfo=UTC), "min")
_MAX_US = _to_us(datetime(date.max.year - 1, 1, 1, tzinfo=UTC), "max")


def _range_error(year: int) -> CalendarError:
    """One wording for every request outside the years the holiday data covers."""
    return CalendarError(
        f"year {year} is outside the supported calendar range {_MIN_YEAR}..{_MAX_YEAR}"
    )


def _year_in_range(x: int) -> bool:
    """Guard datetime conversion so an absurd instant gets a CalendarError, not OverflowError."""
    return _MIN_US <= x < _MAX_US


class WorkCalendar:
    """Working time of the support line, answering in ``tz`` whatever zone the input is in."""

    def __init__(
        self,
        *,
        day_start: time = time(9),
        day_end: time = time(18),
        overrides: CalendarOverrides | None = None,
        tz: ZoneInfo = MOSCOW,
    ) -> None:
        day_start = _check_time(day_start, "day_start")
        day_end = _check_time(day_end, "day_end")
        if day_start >= day_end:
            raise CalendarError(f"day_start {day_start} must be before day_end {day_end}")
        overrides = overrides if overrides is not None else CalendarOverrides()
        if not isinstance(overrides, CalendarOverrides):
            raise CalendarError(f"overrides must be CalendarOverrides, got {overrides!r}")
        for d, end in overrides.short_days.items():
            if not day_start < end <= day_end:
                raise CalendarError(
                    f"short day {d.isoformat()} ends at {end}, "
                    f"outside the working day {day_start}-{day_end}"
                )
        self._day_start = day_start
        self._day_end = day_end
        self._overrides = overrides
        self._tz = tz
        self._holidays = holidays.RU()
        self._table: _Table | None = None
        self._lock = threading.Lock()

    @property
    def tz(self) -> ZoneInfo:
        """The zone answers are given in."""
        return self._tz

    @property
    def overrides(self) -> CalendarOverrides:
        """The amendments in force, for diagnostics."""
        return self._overrides

    def is_working_day(self, d: date) -> bool:
        """Overrides win over the statutory calendar, which already includes transfers."""
        d = _check_date(d, "is_working_day")
        if not _MIN_YEAR <= d.year <= _MAX_YEAR:
            raise _range_error(d.year)
        if d in self._overrides.days_off:
            return False
        if d in self._overrides.working_days:
            return True
        return self._holidays.is_working_day(d)

    def working_hours_of(self, d: date) -> tuple[datetime, datetime] | None:
        """Opening and closing instants of ``d`` in ``tz``, or None when the line is closed."""
        if not self.is_working_day(d):
            return None
        end = self._overrides.short_days.get(d, self._day_end)
        return (
            datetime.combine(d, self._day_start, tzinfo=self._tz),
            datetime.combine(d, end, tzinfo=self._tz),
        )

    def is_open(self, at: datetime) -> bool:
        """True within [opening, closing) of a working day: closing time itself is closed."""
        x = _to_us(at, "at")
        t = self._table
        if t is None or not t.lo <= x < t.hi:
            t = self._cover(x)
        i = bisect_right(t.starts, x) - 1
        return i >= 0 and x < t.ends[i]

    def next_opening(self, at: datetime) -> datetime:
        """When a request received at ``at`` starts being handled: ``at`` itself if open."""
        x = _to_us(at, "at")
        t = self._table
        if t is None or not t.lo <= x < t.hi:
            t = self._cover(x)
        i = bisect_right(t.starts, x)
        if i > 0 and x < t.ends[i - 1]:
            return at.astimezone(self._tz)
        while i >= len(t.starts):
            t = self._extend_forward(t)
            i = bisect_right(t.starts, x)
        return self._from_us(t.starts[i])

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """Due time of an answer: the end of the ``hours``-th working hour after ``start``."""
        x = _to_us(start, "start")
        if isinstance(hours, bool) or not isinstance(hours, Real):
            raise CalendarError(f"hours must be a number, got {hours!r}")
        if not math.isfinite(hours) or hours < 0:
            raise CalendarError(f"hours must be a finite number >= 0, got {hours!r}")
        span = round(hours * _US_PER_HOUR)
        if span == 0:
            return self.next_opening(start)
        t = self._table
        if t is None or not t.lo <= x < t.hi:
            t = self._cover(x)
        target = self._worked_until(t, x) + span
        while not t.cum_end or target > t.cum_end[-1]:
            t = self._extend_forward(t)
        j = bisect_left(t.cum_end, target)
        return self._from_us(t.ends[j] - (t.cum_end[j] - target))

    def working_seconds_between(self, a: datetime, b: datetime) -> float:
        """Working time elapsed in [a, b), in seconds, for measuring how late an answer was."""
        xa = _to_us(a, "a")
        xb = _to_us(b, "b")
        if xb <= xa:
            return 0.0
        t = self._table
        if t is None or not (t.lo <= xa and xb <= t.hi):
            self._cover(xa)
            t = self._cover(xb - 1)
        return (self._worked_until(t, xb) - self._worked_until(t, xa)) / _US_PER_SECOND

    @staticmethod
    def _worked_until(t: _Table, x: int) -> int:
        """Running total of working microseconds at instant ``x`` (origin arbitrary, x covered)."""
        i = bisect_right(t.starts, x) - 1
        if i < 0:
            return t.base
        end = t.ends[i]
        return t.cum_end[i] if x >= end else t.cum_end[i] - (end - x)

    def _from_us(self, x: int) -> datetime:
        """Back from epoch microseconds to an aware datetime in ``tz``."""
        return (_EPOCH + timedelta(microseconds=x)).astimezone(self._tz)

    def _year_bound(self, year: int) -> int:
        """Epoch microseconds of local midnight opening ``year``."""
        return _to_us(datetime(year, 1, 1, tzinfo=self._tz), "year bound")

    def _year_block(self, year: int) -> tuple[list[int], list[int]]:
        """Opening and closing instants of every working day of ``year``, in order."""
        tz = self._tz
        short = self._overrides.short_days
        starts: list[int] = []
        ends: list[int] = []
        d = date(year, 1, 1)
        one = timedelta(days=1)
        while d.year == year:
            if self.is_working_day(d):
                starts.append(_to_us(datetime.combine(d, self._day_start, tzinfo=tz), "open"))
                end = short.get(d, self._day_end)
                ends.append(_to_us(datetime.combine(d, end, tzinfo=tz), "close"))
            d += one
        return starts, ends

    def _build(self, first: int, last: int, old: _Table | None) -> _Table:
        """A table for years [first, last] reusing ``old``, whose years must lie inside."""
        if not (_MIN_YEAR <= first and last <= _MAX_YEAR):
            raise _range_error(first if first < _MIN_YEAR else last)
        if old is None:
            old = _Table(first, first - 1, 0, 0, 0, [], [], [])
        starts, ends, cum = list(old.starts), list(old.ends), list(old.cum_end)
        base = old.base
        for year in range(old.first_year - 1, first - 1, -1):
            s, e = self._year_block(year)
            total = sum(e) - sum(s)
            running = base - total
            block_cum = []
            for si, ei in zip(s, e, strict=True):
                running += ei - si
                block_cum.append(running)
            starts[:0], ends[:0], cum[:0] = s, e, block_cum
            base -= total
        running = cum[-1] if cum else base
        for year in range(old.last_year + 1, last + 1):
            s, e = self._year_block(year)
            for si, ei in zip(s, e, strict=True):
                running += ei - si
                cum.append(running)
            starts += s
            ends += e
        return _Table(
            first,
            last,
            self._year_bound(first),
            self._year_bound(last + 1),
            base,
            starts,
            ends,
            cum,
        )

    def _cover(self, x: int) -> _Table:
        """Extend the table so that instant ``x`` falls inside it."""
        with self._lock:
            t = self._table
            if t is not None and t.lo <= x < t.hi:
                return t
            if _year_in_range(x):
                year = self._from_us(x).year
            else:
                year = date.min.year if x < _MIN_US else date.max.year
            if t is None:
                t = self._build(year, year, None)
            else:
                t = self._build(min(year, t.first_year), max(year, t.last_year), t)
            self._table = t
            return t

    def _extend_forward(self, t: _Table) -> _Table:
        """Add the year after ``t`` so a due time or next opening beyond it can be found."""
        with self._lock:
            current = self._table or t
            if current.last_year > t.last_year:
                return current
            current = self._build(current.first_year, current.last_year + 1, current)
            self._table = current
            return current
