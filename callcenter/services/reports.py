"""The supervisor's reports: calls, the oral window, the queue, written tickets and reviews for
a period, by day, by week or by agent, with a total row.

Definitions (also shown on the page):

- *offered*: every call started in the period; *answered*: an agent connected;
  *queued*: the IVR put it in the queue; routes as in :mod:`call_filters`.
- *within 10 min* (%): windows met without an extension, of all windows opened.
- *service level* (%): queued calls answered within the threshold (default 20 s), of all
  queued calls; *ASA*: average queue wait of answered calls; *handle time*: talk time of
  answered, ended calls (average and 90th percentile, linear interpolation);
  *abandon rate* (%): abandoned in the queue, of all queued calls.
- tickets by receipt: *answered in time* (answered by the due time), *breached* (answered
  late, or open past its due time now), *due soon* (open, due within the next working hour),
  median **working** hours from receipt to answer (the working calendar, holidays and
  transferred days included); the oral window is counted in wall-clock minutes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from callcenter.calendar import MOSCOW
from callcenter.domain.errors import ValidationError
from callcenter.domain.instants import parse_instant
from callcenter.services.call_filters import CallFilter

GROUPINGS = ("day", "week", "agent")
#: longest period one report covers (a year and a day: a leap year's Jan 1 to Jan 1)
MAX_DAYS = 367
DEFAULT_THRESHOLD = 20
CALL_FIGURES = (
    "offered",
    "answered",
    "queued",
    "abandoned_ivr",
    "abandoned_queue",
    "refused",
    "closed",
    "windows",
    "met",
    "extended",
    "overrun",
    "escalated",
    "within_pct",
    "service_level_pct",
    "asa",
    "aht",
    "p90",
    "abandon_rate_pct",
)
TICKET_FIGURES = (
    "tickets_call",
    "tickets_portal",
    "tickets_voicemail",
    "answered_in_time",
    "breached",
    "due_soon",
    "median_hours",
)
REVIEW_FIGURES = ("abuse", "complaints")
FIGURES = CALL_FIGURES + TICKET_FIGURES + REVIEW_FIGURES


class ReportQueries(Protocol):
    async def call_groups(self, start, end, by, threshold_seconds) -> list[dict]: ...
    async def refusals(self, start, end, by) -> list[tuple]: ...
    async def ticket_groups(self, start, end, by, now, soon) -> list[dict]: ...
    async def answer_times(self, start, end, by) -> list[tuple]: ...
    async def reviews(self, start, end) -> list[dict]: ...
    async def talk_summary(self, start, end, by) -> dict[str, Any]: ...
    async def heatmap(self, start, end) -> list[tuple[int, int, int]]: ...
    async def calls_page(self, f, limit, offset, count_limit=None) -> tuple[list[dict], int]: ...
    def stream_calls(self, f) -> AsyncIterator[dict]: ...


@dataclasses.dataclass(frozen=True)
class Period:
    """``first`` to ``last`` inclusive, Moscow days; ``start``/``end`` the instants."""

    first: date
    last: date
    by: str
    threshold: int

    @property
    def start(self) -> datetime:
        return parse_instant(self.first.isoformat(), date_allowed=True)

    @property
    def end(self) -> datetime:
        return parse_instant(self.last.isoformat(), date_allowed=True, end_of_day=True)


@dataclasses.dataclass
class ReportRow:
    key: str
    figures: dict[str, Any]
    refused_by: dict[str, int]


@dataclasses.dataclass
class Report:
    period: Period
    rows: list[ReportRow]
    total: ReportRow
    generated_at: datetime
    #: calls by talk time: 0-1, 1-2, ... minutes (the talk-time chart's data)
    talk_minutes: list[int] = dataclasses.field(default_factory=list, repr=False)
    #: (ISO weekday, Moscow hour, calls), read with the figures when asked for
    heatmap: list[tuple[int, int, int]] | None = dataclasses.field(default=None, repr=False)


def parse_period(query, today: date) -> Period:
    """``from``/``to`` (YYYY-MM-DD, default: this month so far), ``by`` and ``threshold``
    (seconds, 1-600) from query parameters; ValidationError ``invalid_query`` otherwise."""
    problems: dict[str, str] = {}

    def day(name: str, default: date) -> date:
        raw = (query.get(name) or "").strip()
        if not raw:
            return default
        try:
            if len(raw) != 10:
                raise ValueError
            return date.fromisoformat(raw)
        except ValueError:
            problems[name] = "must be a date (YYYY-MM-DD)"
            return default

    first = day("from", today.replace(day=1))
    last = day("to", today)
    by = (query.get("by") or "day").strip()
    if by not in GROUPINGS:
        problems["by"] = "must be one of " + ", ".join(GROUPINGS)
    raw_t = (query.get("threshold") or "").strip()
    threshold = DEFAULT_THRESHOLD
    if raw_t:
        if raw_t.isascii() and raw_t.isdigit() and len(raw_t) <= 3 and 1 <= int(raw_t) <= 600:
            threshold = int(raw_t)
        else:
            problems["threshold"] = "must be a number of seconds from 1 to 600"
    if not problems:
        if last < first:
            problems["to"] = "must not be before 'from'"
        elif (last - first).days >= MAX_DAYS:
            problems["to"] = f"a report covers at most {MAX_DAYS} days"
        elif not (date(1991, 1, 1) <= first and last <= date(2100, 12, 31)):
            problems["from"] = "must be within 1991-2100"
    if problems:
        raise ValidationError(
            "; ".join(f"{k} {v}" for k, v in problems.items()),
            code="invalid_query",
            fields=problems,
        )
    return Period(first, last, by, threshold)


def _pct(part: float | None, whole: float | None) -> float | None:
    return round(100.0 * (part or 0) / whole, 1) if whole else None


def _round(x) -> float | None:
    return None if x is None else round(float(x), 1)


def _call_figures(r: dict | None) -> dict[str, Any]:
    r = r or {}
    n = {name: int(r.get(name) or 0) for name in CALL_FIGURES if name not in _DERIVED}
    n["within_pct"] = _pct(r.get("within"), n["windows"])
    n["service_level_pct"] = _pct(r.get("in_threshold"), n["queued"])
    n["abandon_rate_pct"] = _pct(n["abandoned_queue"], n["queued"])
    n["asa"] = _round(r.get("asa"))
    n["aht"] = _round(r.get("aht"))
    n["p90"] = _round(r.get("p90"))
    return n


def _empty(calls: dict | None = None) -> dict[str, Any]:
    out = _call_figures(None) if calls is None else dict(calls)
    out.update({name: 0 for name in TICKET_FIGURES + REVIEW_FIGURES})
    out["median_hours"] = None
    return out


_DERIVED = {"within_pct", "service_level_pct", "abandon_rate_pct", "asa", "aht", "p90"}


class ReportService:
    def __init__(
        self,
        queries: ReportQueries,
        calendar_at: Callable,
        clock,
    ) -> None:
        """``calendar_at(now)``: the working calendar of the policy in force (awaitable)."""
        self.queries = queries
        self._calendar_at = calendar_at
        self.clock = clock

    def today(self) -> date:
        return self.clock.now().astimezone(MOSCOW).date()

    async def report(self, period: Period, heatmap: bool = False) -> Report:
        """The period's figures; ``heatmap``: also the weekday x hour counts (the page's
        chart), read at the same time as the figures."""
        q, now = self.queries, self.clock.now()
        start, end, by = period.start, period.end, period.by

        async def tickets():
            # "due soon" needs the calendar in force: read it, then the ticket figures
            cal = await self._calendar_at(now)
            counted, answered = await asyncio.gather(
                q.ticket_groups(start, end, by, now, cal.add_working_hours(now, 1)),
                q.answer_times(start, end, by),
            )
            return cal, counted, answered

        # each query has a session of its own: they run at once
        (
            groups,
            talks,
            refusals,
            (cal, ticket_groups, answered),
            reviews,
            heat,
        ) = await asyncio.gather(
            q.call_groups(start, end, by, period.threshold),
            q.talk_summary(start, end, by),
            q.refusals(start, end, by),
            tickets(),
            q.reviews(start, end),
            q.heatmap(start, end) if heatmap else _nothing(),
        )

        def key_of(at: datetime, agent: str) -> str:
            if by == "agent":
                return agent
            local = at.astimezone(MOSCOW).date()
            if by == "week":
                local -= timedelta(days=local.weekday())
            return local.isoformat()

        rows: dict[str, ReportRow] = {}

        def row(key: str) -> ReportRow:
            if key not in rows:
                rows[key] = ReportRow(key, _empty(), {})
            return rows[key]

        for g in groups:
            g["p90"] = talks["p90"].get(g["key"] or "")
            row(g["key"] or "").figures.update(_call_figures(g))
        total = ReportRow("", _call_figures(_summed(groups, talks["p90_total"])), {})
        for key, status, n in refusals:
            r = row(key or "")
            r.refused_by[status] = r.refused_by.get(status, 0) + n
            total.refused_by[status] = total.refused_by.get(status, 0) + n
        total.figures.update(_empty(total.figures))
        for tg in ticket_groups:
            for r in (row(tg["key"] or ""), total):
                for name in TICKET_FIGURES:
                    if name != "median_hours":
                        r.figures[name] += int(tg[name] or 0)
        hours: dict[str, list[float]] = {}
        everyone: list[float] = []
        working = cal.working_seconds_between
        for key, received, answered_at in answered:
            h = working(received, answered_at) / 3600
            hours.setdefault(key or "", []).append(h)
            everyone.append(h)
        for rv in reviews:
            name = "abuse" if rv["kind"] == "abuse" else "complaints"
            row(key_of(rv["created_at"], rv["agent"])).figures[name] += 1
            total.figures[name] += 1
        for key in hours:
            row(key)
        for r in rows.values():
            r.figures["median_hours"] = _median(hours.get(r.key))
        total.figures["median_hours"] = _median(everyone)
        ordered = sorted(rows.values(), key=lambda r: r.key)
        return Report(period, ordered, total, now, talks["minutes"], heat)

    async def charts(self, report: Report) -> dict[str, Any]:
        """The charts' data: the report's talk times in minute buckets (at least 20, the last
        one holding the longer ones), calls by weekday and hour."""
        minutes = report.talk_minutes or [0]
        used = max((i + 1 for i, n in enumerate(minutes) if n), default=0)
        top = min(max(20, used), len(minutes))
        buckets = minutes[:top]
        buckets[-1] += sum(minutes[top:])
        heat = report.heatmap
        if heat is None:
            heat = await self.queries.heatmap(report.period.start, report.period.end)
        return {"talk_minutes": buckets, "heatmap": heat}

    async def calls_page(
        self, f: CallFilter, limit: int, offset: int, count_limit: int | None = None
    ):
        """A page of the filtered call log and the number of matches (capped at
        ``count_limit`` when given)."""
        return await self.queries.calls_page(f, limit, offset, count_limit)

    def stream_calls(self, f: CallFilter) -> AsyncIterator[dict]:
        return self.queries.stream_calls(f)


async def _nothing() -> None:
    return None


def _summed(groups: list[dict], p90: float | None) -> dict[str, Any]:
    """The total row's raw figures from the groups': counts add up, averages are weighted by
    their calls, the percentile is taken over every talk."""
    out: dict[str, Any] = {}
    for g in groups:
        for name, value in g.items():
            if name not in ("key", "asa", "aht", "p90") and value is not None:
                out[name] = out.get(name, 0) + int(value)
    for avg, n in (("asa", "asa_n"), ("aht", "aht_n")):
        weight = sum(int(g[n] or 0) for g in groups)
        total = sum(float(g[avg]) * int(g[n]) for g in groups if g[avg] is not None and g[n])
        out[avg] = total / weight if weight else None
    out["p90"] = p90
    return out


def _median(xs: list[float] | None) -> float | None:
    return round(statistics.median(xs), 2) if xs else None


#: what a supervisor may decide about an abuse case or a complaint
DECISIONS = ("upheld", "dismissed", "talked_to_agent", "caller_warned")


class Reviews:
    """The review of abuse cases and complaints (R-12): who reviewed, when, what was decided."""

    def __init__(self, store, clock) -> None:
        self.store = store
        self.clock = clock

    async def list(self, pending_only: bool) -> list[dict]:
        return await self.store.list(pending_only)

    async def decide(self, review_id: int, decision: str, note: str, by: str) -> None:
        from callcenter.domain.errors import Conflict, NotFound

        problems = {}
        if decision not in DECISIONS:
            problems["decision"] = "must be one of " + ", ".join(DECISIONS)
        note = (note or "").strip()
        if len(note) > 2000 or not all(ch.isprintable() or ch in "\r\n\t" for ch in note):
            problems["note"] = "must be printable text of at most 2000 characters"
        if problems:
            raise ValidationError(
                "; ".join(f"{k} {v}" for k, v in problems.items()),
                code="invalid_review",
                fields=problems,
            )
        if not await self.store.decide(review_id, decision, note, by, self.clock.now()):
            if not await self.store.exists(review_id):
                raise NotFound("no such review", code="review_not_found")
            raise Conflict("this case has already been reviewed", code="already_reviewed")
