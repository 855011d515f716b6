"""The call log's filters, parsed once from a query string: the history page, its CSV export
and the reports' links to the calls behind a figure all read the same ``CallFilter``.

Bad input is a ``ValidationError`` with code ``invalid_query`` naming each bad field, never a
500 and never a silently ignored filter.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from callcenter.domain.calls import Outcome, WindowStatus
from callcenter.domain.errors import ValidationError
from callcenter.domain.instants import InstantError, parse_instant

#: how a call left the IVR: to the queue, the closed line, refused, or the caller hung up
ROUTES = ("queued", "closed", "refused", "abandoned_ivr", "abandoned_queue")
WINDOW_STATUSES = tuple(s.value for s in WindowStatus)
OUTCOMES = tuple(o.value for o in Outcome)
#: sortable columns (the history table's), newest first by default
SORTS = ("started_at", "agent", "caller_number", "certificate", "window_status", "outcome")
DEFAULT_SORT = "started_at"
_TEXT_MAX = 100
_PHONE = re.compile(r"[0-9+*#]{1,40}")


@dataclass(frozen=True)
class CallFilter:
    """What a supervisor narrows the call log to; ``None`` or empty: no condition."""

    start: datetime | None = None
    end: datetime | None = None  # exclusive
    agent: str = ""  # the queue member interface, exact
    certificate: str = ""  # exact number
    organisation: str = ""  # a part of the organisation, case-insensitive
    caller: str = ""  # a part of the calling number
    window_status: str = ""
    outcome: str = ""
    route: str = ""
    sort: str = DEFAULT_SORT
    descending: bool = True
    #: the raw ``from``/``to`` as typed, to show them back in the form and in links
    raw_from: str = ""
    raw_to: str = ""

    def query(self, **override: str) -> str:
        """The filter as a query string (for paging and sorting links, and the export)."""
        values = {
            "from": self.raw_from,
            "to": self.raw_to,
            "agent": self.agent,
            "certificate": self.certificate,
            "organisation": self.organisation,
            "caller": self.caller,
            "window": self.window_status,
            "outcome": self.outcome,
            "route": self.route,
            "sort": self.sort if self.sort != DEFAULT_SORT else "",
            "dir": "" if self.descending else "asc",
            **override,
        }
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def active(self) -> bool:
        blank = CallFilter()
        return any(
            getattr(self, f.name) != getattr(blank, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("sort", "descending", "raw_from", "raw_to")
        )


def parse_call_filters(query: Mapping[str, str]) -> CallFilter:
    """A ``CallFilter`` from query parameters (``from``, ``to``, ``agent``, ``certificate``,
    ``organisation``, ``caller``, ``window``, ``outcome``, ``route``, ``sort``, ``dir``)."""
    problems: dict[str, str] = {}

    def text(name: str) -> str:
        value = (query.get(name) or "").strip()
        if len(value) > _TEXT_MAX or not value.isprintable():
            problems[name] = f"at most {_TEXT_MAX} printable characters"
            return ""
        return value

    def instant(name: str, end: bool) -> datetime | None:
        raw = text(name)
        if not raw:
            return None
        try:
            return parse_instant(raw, naive_is_moscow=True, date_allowed=True, end_of_day=end)
        except InstantError as exc:
            problems[name] = f"{exc}, or a date (YYYY-MM-DD)"
            return None

    def one_of(name: str, allowed: tuple[str, ...]) -> str:
        value = text(name)
        if value and value not in allowed:
            problems[name] = "one of " + ", ".join(allowed)
            return ""
        return value

    start, end = instant("from", False), instant("to", True)
    if start and end and end <= start:
        problems["to"] = "must not be before 'from'"
    caller = text("caller")
    if caller and not _PHONE.fullmatch(caller):
        problems["caller"] = "digits, '+', '*' or '#'"
    direction = one_of("dir", ("asc", "desc"))
    f = CallFilter(
        start=start,
        end=end,
        agent=text("agent"),
        certificate=text("certificate"),
        organisation=text("organisation"),
        caller=caller,
        window_status=one_of("window", WINDOW_STATUSES),
        outcome=one_of("outcome", OUTCOMES),
        route=one_of("route", ROUTES),
        sort=one_of("sort", SORTS) or DEFAULT_SORT,
        descending=direction != "asc",
        raw_from=(query.get("from") or "").strip() if "from" not in problems else "",
        raw_to=(query.get("to") or "").strip() if "to" not in problems else "",
    )
    if problems:
        raise ValidationError(
            "; ".join(f"{k} {v}" for k, v in problems.items()),
            code="invalid_query",
            fields=problems,
        )
    return f
