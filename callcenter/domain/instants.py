"""Instants: the one time zone of the regulation, and the one parser and formatter of them.

Every instant that leaves the service is Moscow time with its offset. Every instant that comes
in (an event's ``at``, a query's ``from``/``to``, the CLI's ``--received``) goes through
:func:`parse_instant`, whose rules are explicit: ISO 8601 with a ``T`` or a space, ``Z`` or
an offset; without an offset only where the caller says so (then Moscow time); a bare date
only where the caller documents a date filter (then Moscow midnight). Anything else is
refused with the form that was expected.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: the regulation counts in Moscow time (working hours, due times, every answer)
MOSCOW = ZoneInfo("Europe/Moscow")

INSTANT_FORM = "an ISO 8601 date-time with an offset, e.g. 2026-03-17T11:00:00+03:00"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LOST_PLUS = re.compile(r" (\d{2}(?::?\d{2})?)$")  # '+03:00' in a URL query decodes to ' 03:00'


class InstantError(ValueError):
    """Not an instant of the expected form; the message says which form was expected."""


def format_instant(value: datetime | None) -> str | None:
    """Moscow time with its offset, as the regulation counts and the README promises."""
    return value.astimezone(MOSCOW).isoformat() if value is not None else None


def parse_instant(
    raw: object,
    *,
    naive_is_moscow: bool = False,
    date_allowed: bool = False,
    end_of_day: bool = False,
) -> datetime:
    """An aware datetime from text, by the rules above; InstantError otherwise.

    ``date_allowed``: a bare date is that day's Moscow midnight (``end_of_day``: the next
    day's, an exclusive end). Without it a bare date is refused, never taken as midnight.
    """
    if not isinstance(raw, str) or not raw:
        raise InstantError(f"must be {INSTANT_FORM}")
    if len(raw) == 10 and _DATE.match(raw):
        if not date_allowed:
            raise InstantError(f"must be {INSTANT_FORM}, not a bare date")
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise InstantError("must be a real date (YYYY-MM-DD)") from None
        if not date.min < day < date.max:  # its midnight, or the day after, must exist in UTC
            raise InstantError("is out of the range of storable instants")
        if end_of_day:
            day += timedelta(days=1)
        return datetime.combine(day, time(0), MOSCOW)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        fixed = _LOST_PLUS.sub(r"+\1", raw)
        try:
            value = datetime.fromisoformat(fixed) if fixed != raw else None
        except ValueError:
            value = None
        if value is None:
            raise InstantError(f"must be {INSTANT_FORM}") from None
    if value.tzinfo is None:
        if not naive_is_moscow:
            raise InstantError(f"must be {INSTANT_FORM}: the offset is missing")
        value = value.replace(tzinfo=MOSCOW)
    if not 1 < value.year < 9999:  # an offset may push it past year 1 or 9999: not storable
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise InstantError("is out of the range of storable instants") from None
    return value
