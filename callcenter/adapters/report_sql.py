"""The reports' and the call log's read queries: aggregates counted by the database.

Grouping by a Moscow day or week is done in SQL: PostgreSQL converts with
``timezone('Europe/Moscow', ...)``; SQLite (timestamps stored as naive UTC text) adds three
hours, which is Moscow's offset since 2014 (the embedded database is for small sites; a
report before 26 October 2014 there groups by UTC+3 rather than the old UTC+4).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.adapters import tables as t
from callcenter.adapters.board_sql import (
    WINDOW_OPENS_WITHIN,
    call_conditions,
    history_order,
    route_condition,
)
from callcenter.services.call_filters import CallFilter

#: the certificate statuses with which the IVR refuses a call (CC_ROUTE=REFUSED)
REFUSED_STATUSES = ("UNKNOWN", "EXPIRED", "NOT_COVERED", "LOCKED", "NO_INPUT")

#: the talk-time histogram's minute buckets; the last holds everything longer
TALK_BUCKETS = 60

c = t.calls.c
w = t.oral_windows.c
k = t.tickets.c


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks: PostgreSQL's ``percentile_cont``."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _route():
    """How the call left the IVR, one of call_filters.ROUTES (NULL: still in the IVR)."""
    return case(
        (c.abandoned == "ivr", literal("abandoned_ivr")),
        (c.abandoned == "queue", literal("abandoned_queue")),
        (c.queued_at.is_not(None), literal("queued")),
        (c.certificate_status == "CLOSED", literal("closed")),
        (c.certificate_status.in_(REFUSED_STATUSES), literal("refused")),
        else_=literal(None),
    )


# the history page's filter and order, shared by its CSV export: one meaning of each filter
# (an agent by interface or login, an organisation on the call or its certificate, in any
# case, Cyrillic too), so the page and the file agree row for row
filter_conditions = call_conditions
_order = history_order


def _call_log(f: CallFilter, dialect: str):
    return (
        select(
            c.call_id,
            c.started_at,
            c.caller_number,
            c.certificate_number,
            c.certificate_status,
            c.organisation,
            c.caller_name,
            c.agent,
            c.agent_name,
            c.queued_at,
            c.connected_at,
            c.ended_at,
            c.outcome,
            c.outcome_reason,
            c.category,
            _route().label("route"),
            w.status.label("window_status"),
            w.deadline_at,
        )
        .select_from(t.calls.outerjoin(t.oral_windows, w.call_id == c.call_id))
        .where(*filter_conditions(f, dialect))
    )


def _day(dialect: str, col):
    if dialect == "postgresql":
        return func.to_char(func.timezone("Europe/Moscow", col), "YYYY-MM-DD")
    return func.date(col, "+3 hours")


def _week(dialect: str, col):
    """The Monday (YYYY-MM-DD) of the Moscow week."""
    if dialect == "postgresql":
        return func.to_char(
            func.date_trunc("week", func.timezone("Europe/Moscow", col)), "YYYY-MM-DD"
        )
    return func.date(col, "+3 hours", "weekday 0", "-6 days")


def _seconds(dialect: str, a, b):
    """``a - b`` in seconds: a double precision on PostgreSQL (``date_part``; ``EXTRACT``
    gives a numeric since PostgreSQL 14, which the averages, the percentile's sort and the
    histogram's buckets take two to three times as long to compute)."""
    if dialect == "postgresql":
        return func.date_part("epoch", a - b)
    return (func.julianday(a) - func.julianday(b)) * 86400.0


def _agent_of(call_id):
    """The agent of a ticket's or a review's call: one lookup by the key per row (a join would
    read every call of every period to find a month's few thousand)."""
    return select(c.agent).where(c.call_id == call_id).scalar_subquery()


def _window_near(start: datetime, end: datetime):
    return and_(w.opened_at >= start, w.opened_at < end + WINDOW_OPENS_WITHIN)


def _flag(cond):
    return func.sum(case((cond, 1), else_=0))


class ReportSql:
    """Read-only queries; each opens its own session (a report never writes)."""

    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions

    def _dialect(self, session: AsyncSession) -> str:
        return session.bind.dialect.name

    def _key(self, dialect: str, by: str, col):
        if by == "day":
            return _day(dialect, col)
        if by == "week":
            return _week(dialect, col)
        if by == "agent":
            return func.coalesce(c.agent, "")
        return literal("all")

    async def calls_page(
        self, f: CallFilter, limit: int, offset: int, count_limit: int | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the filtered call log and how many calls match: exactly, or when
        ``count_limit`` is given, at most that many (a page needs "more than 10,000", not the
        cost of counting a million)."""
        async with self._sessions() as s:
            d = self._dialect(s)
            q = _call_log(f, d)
            # the window joins only when filtered on: a call has at most one, so the count
            # is the same without it
            source = (
                t.calls.outerjoin(t.oral_windows, w.call_id == c.call_id)
                if f.window_status
                else t.calls
            )
            matching = select(c.call_id).select_from(source).where(*filter_conditions(f, d))
            if count_limit is not None:
                matching = matching.limit(count_limit)
            total = (
                await s.execute(select(func.count()).select_from(matching.subquery()))
            ).scalar_one()
            rows = await s.execute(q.order_by(*_order(f)).limit(limit).offset(offset))
            return [dict(r) for r in rows.mappings().all()], total

    async def stream_calls(self, f: CallFilter, batch: int = 2000) -> AsyncIterator[dict]:
        """Every filtered call in the page's order, fetched ``batch`` rows at a time (a
        server-side cursor on PostgreSQL): memory stays constant however many there are."""
        async with self._sessions() as s:
            result = await s.stream(
                _call_log(f, self._dialect(s))
                .order_by(*_order(f))
                .execution_options(yield_per=batch)
            )
            async for part in result.mappings().partitions(batch):
                for row in part:
                    yield dict(row)

    async def call_groups(
        self, start: datetime, end: datetime, by: str, threshold_seconds: int
    ) -> list[dict[str, Any]]:
        """Per group: the calls' counts, window outcomes and queue timings."""
        async with self._sessions() as s:
            d = self._dialect(s)
            key = self._key(d, by, c.started_at).label("key")
            wait = _seconds(d, c.connected_at, c.queued_at)
            talk = _seconds(d, c.ended_at, c.connected_at)
            extended = (
                select(t.window_extensions.c.call_id)
                .group_by(t.window_extensions.c.call_id)
                .subquery()
            )
            answered_q = and_(c.connected_at.is_not(None), c.queued_at.is_not(None))
            talked = and_(c.connected_at.is_not(None), c.ended_at.is_not(None))
            cols = [
                key,
                func.count().label("offered"),
                func.count(c.connected_at).label("answered"),
                _flag(route_condition("abandoned_ivr")).label("abandoned_ivr"),
                _flag(route_condition("abandoned_queue")).label("abandoned_queue"),
                _flag(route_condition("refused")).label("refused"),
                _flag(route_condition("closed")).label("closed"),
                func.count(c.queued_at).label("queued"),
                func.count(w.call_id).label("windows"),
                _flag(w.status == "met").label("met"),
                _flag(extended.c.call_id.is_not(None)).label("extended"),
                _flag(w.status == "overrun").label("overrun"),
                _flag(w.status == "escalated").label("escalated"),
                _flag(and_(w.status == "met", extended.c.call_id.is_(None))).label("within"),
                _flag(and_(answered_q, wait <= threshold_seconds)).label("in_threshold"),
                func.avg(case((answered_q, wait))).label("asa"),
                _flag(answered_q).label("asa_n"),
                func.avg(case((talked, talk))).label("aht"),
                _flag(talked).label("aht_n"),
            ]
            q = (
                select(*cols)
                .select_from(
                    t.calls.outerjoin(
                        t.oral_windows, and_(w.call_id == c.call_id, _window_near(start, end))
                    ).outerjoin(extended, extended.c.call_id == c.call_id)
                )
                .where(c.started_at >= start, c.started_at < end)
                .group_by(key)
                .order_by(key)
            )

            return [dict(r) for r in (await s.execute(q)).mappings().all()]

    async def refusals(self, start: datetime, end: datetime, by: str) -> list[tuple]:
        """(group, certificate status, count) of refused calls."""
        async with self._sessions() as s:
            key = self._key(self._dialect(s), by, c.started_at).label("key")
            q = (
                select(key, c.certificate_status, func.count())
                .where(c.started_at >= start, c.started_at < end, route_condition("refused"))
                .group_by(key, c.certificate_status)
                .order_by(key, c.certificate_status)
            )
            return [tuple(r) for r in (await s.execute(q)).all()]

    async def talk_summary(self, start: datetime, end: datetime, by: str) -> dict[str, Any]:
        """The period's talk times: the 90th percentile of each group and of the whole period,
        and how many calls talked 0-1, 1-2, ... 59+ minutes. PostgreSQL computes them (a
        grouping set and a histogram: a few rows cross the wire, not every call); SQLite's
        talk times are counted here."""
        async with self._sessions() as s:
            d = self._dialect(s)
            key = self._key(d, by, c.started_at).label("key")
            talk = _seconds(d, c.ended_at, c.connected_at)
            period = (
                c.started_at >= start,
                c.started_at < end,
                c.connected_at.is_not(None),
                c.ended_at.is_not(None),
            )
            minutes = [0] * TALK_BUCKETS
            if d != "postgresql":
                per_key: dict[str, list[float]] = {}
                every: list[float] = []
                for k_, raw in (await s.execute(select(key, talk).where(*period))).all():
                    x = round(float(raw), 3)  # julianday's float: 300 s comes back 299.99999
                    per_key.setdefault(k_ or "", []).append(x)
                    every.append(x)
                    minutes[min(int(x // 60), TALK_BUCKETS - 1)] += 1
                return {
                    "p90": {k_: percentile(v, 0.9) for k_, v in per_key.items()},
                    "p90_total": percentile(every, 0.9),
                    "minutes": minutes,
                }
            p90 = func.percentile_cont(0.9).within_group(talk)
            q = select(key, p90).where(*period).group_by(func.grouping_sets(key, tuple_()))
            grouped = (await s.execute(q)).all()
            total = [float(x) for k_, x in grouped if k_ is None and x is not None]
            bucket = func.least(func.floor(talk / 60), TALK_BUCKETS - 1).label("bucket")
            for b, n in (
                await s.execute(select(bucket, func.count()).where(*period).group_by(bucket))
            ).all():
                minutes[int(b)] += int(n)
            return {
                "p90": {k_ or "": float(x) for k_, x in grouped if k_ is not None},
                "p90_total": total[0] if total else None,
                "minutes": minutes,
            }

    async def heatmap(self, start: datetime, end: datetime) -> list[tuple[int, int, int]]:
        """(ISO weekday 1-7, Moscow hour 0-23, calls)."""
        async with self._sessions() as s:
            if self._dialect(s) == "postgresql":
                local = func.timezone("Europe/Moscow", c.started_at)
                # date_part: a double precision, half the time of EXTRACT's numeric
                dow = func.date_part("isodow", local)
                hour = func.date_part("hour", local)
            else:
                dow = func.strftime("%w", c.started_at, "+3 hours")
                hour = func.strftime("%H", c.started_at, "+3 hours")
            q = (
                select(dow, hour, func.count())
                .where(c.started_at >= start, c.started_at < end)
                .group_by(dow, hour)
            )
            out = []
            for d_, h_, n in (await s.execute(q)).all():
                day = int(d_)
                out.append((7 if day == 0 else day, int(h_), int(n)))
            return out

    def _ticket_rows(self, dialect: str, by: str, start: datetime, end: datetime):
        """The period's tickets (by receipt) with their group: the Moscow day or week of
        receipt, or the agent of their call (one lookup by the key per ticket)."""
        if by == "agent":
            key = func.coalesce(_agent_of(k.call_id), "")
        else:
            key = self._key(dialect, by, k.received_at)
        return (
            select(key.label("key"), k.source, k.status, k.due_at, k.answered_at, k.received_at)
            .where(k.received_at >= start, k.received_at < end)
            .subquery()
        )

    async def ticket_groups(
        self, start: datetime, end: datetime, by: str, now: datetime, soon: datetime
    ) -> list[dict[str, Any]]:
        """Per group: tickets received by source, answered in time, breached (answered late,
        or open past the due time at ``now``), due soon (open, due by ``soon``). A withdrawn
        ticket counts only as received. Counted by the database: a month's tens of thousands
        of tickets are not fetched for this."""
        async with self._sessions() as s:
            x = self._ticket_rows(self._dialect(s), by, start, end).c
            live = x.status != "withdrawn"
            q = (
                select(
                    x.key,
                    _flag(x.source == "portal").label("tickets_portal"),
                    _flag(x.source == "voicemail").label("tickets_voicemail"),
                    _flag(x.source.not_in(("portal", "voicemail"))).label("tickets_call"),
                    _flag(and_(live, x.answered_at <= x.due_at)).label("answered_in_time"),
                    _flag(
                        and_(
                            live,
                            or_(
                                x.answered_at > x.due_at,
                                and_(x.answered_at.is_(None), x.due_at <= now),
                            ),
                        )
                    ).label("breached"),
                    _flag(
                        and_(live, x.answered_at.is_(None), x.due_at > now, x.due_at <= soon)
                    ).label("due_soon"),
                )
                .group_by(x.key)
                .order_by(x.key)
            )
            return [dict(r) for r in (await s.execute(q)).mappings().all()]

    async def answer_times(self, start: datetime, end: datetime, by: str) -> list[tuple]:
        """(group, received, answered) of the period's answered tickets, for their working
        hours (the calendar is not SQL)."""
        async with self._sessions() as s:
            x = self._ticket_rows(self._dialect(s), by, start, end).c
            q = select(x.key, x.received_at, x.answered_at).where(x.answered_at.is_not(None))
            return [tuple(r) for r in (await s.execute(q)).all()]

    async def reviews(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        r = t.reviews.c
        async with self._sessions() as s:
            q = (
                select(t.reviews, func.coalesce(_agent_of(r.call_id), "").label("agent"))
                .where(r.created_at >= start, r.created_at < end)
                .order_by(r.created_at, r.id)
            )
            return [dict(x) for x in (await s.execute(q)).mappings().all()]


class ReviewSql:
    """The abuse and complaint cases (R-12) as the supervisor reviews them."""

    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions

    async def list(self, pending_only: bool, limit: int = 200) -> list[dict[str, Any]]:
        r = t.reviews.c
        q = select(
            t.reviews,
            _agent_of(r.call_id).label("agent"),
            select(c.caller_number).where(c.call_id == r.call_id).scalar_subquery().label("caller"),
        )
        if pending_only:
            q = q.where(r.reviewed_at.is_(None))
        q = q.order_by(r.created_at.desc(), r.id.desc()).limit(limit)
        async with self._sessions() as s:
            return [dict(x) for x in (await s.execute(q)).mappings().all()]

    async def decide(self, review_id: int, decision: str, note: str, by: str, now) -> bool:
        """Record the decision once: False when the case is unknown or already reviewed."""
        from sqlalchemy import update

        r = t.reviews.c
        async with self._sessions() as s:
            result = await s.execute(
                update(t.reviews)
                .where(r.id == review_id, r.reviewed_at.is_(None))
                .values(reviewed_at=now, reviewed_by=by, decision=decision, decision_note=note)
            )
            await s.commit()
            return result.rowcount == 1

    async def exists(self, review_id: int) -> bool:
        r = t.reviews.c
        async with self._sessions() as s:
            return (await s.execute(select(r.id).where(r.id == review_id))).first() is not None
