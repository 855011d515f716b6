"""The supervisor's reads: the filtered, sorted call log (history), the live board's figures
and a certificate's calls and tickets. Reads only; the tables' writers are elsewhere."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select

from callcenter.adapters import tables as t
from callcenter.adapters.agent_store import _finished, _owner_login
from callcenter.adapters.call_store import UNSETTLED_TICKET, _ticket_from
from callcenter.adapters.db import UNICODE_LOWER
from callcenter.domain.calls import Ticket, TicketStatus
from callcenter.services.call_filters import CallFilter
from callcenter.services.supervision import COUNT_BOUND, REFUSED_STATUSES

#: a call connected or queued longer ago than this is no longer live (a lost hangup)
LIVE_HORIZON = timedelta(hours=12)
#: how long before its connect or queueing a live call may have started (the IVR's part)
START_SLACK = timedelta(hours=1)
#: a call's oral window opens when an agent answers: after the call started, and within a
#: day of it (a live call is given up after LIVE_HORIZON); so a period's windows are found by
#: their opening (``ix_oral_windows_opened_at``), not by reading every window of a status
WINDOW_OPENS_WITHIN = timedelta(days=1)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def route_condition(route: str):
    """How the call left the IVR, as ``call_filters.ROUTES`` names it (``route_of`` in
    services/supervision.py says the same of one row)."""
    c = t.calls.c
    queued = c.queued_at.is_not(None)
    not_abandoned = or_(c.abandoned.is_(None), c.abandoned.not_in(("ivr", "queue")))
    return {
        "abandoned_ivr": c.abandoned == "ivr",
        "abandoned_queue": c.abandoned == "queue",
        "queued": and_(queued, not_abandoned),
        "closed": and_(c.queued_at.is_(None), not_abandoned, c.certificate_status == "CLOSED"),
        "refused": and_(
            c.queued_at.is_(None), not_abandoned, c.certificate_status.in_(REFUSED_STATUSES)
        ),
    }[route]


def call_conditions(f: CallFilter, dialect: str = "postgresql") -> list:
    """The filter as conditions on ``calls`` joined to ``oral_windows`` (``dialect``: the
    database's, for a Unicode-aware lower())."""
    c, w = t.calls.c, t.oral_windows.c
    lower = getattr(func, UNICODE_LOWER) if dialect == "sqlite" else func.lower
    cond: list = []
    if f.start is not None:
        cond.append(c.started_at >= f.start)
    if f.end is not None:
        cond.append(c.started_at < f.end)
    if f.agent:
        i, u = t.agent_interfaces.c, t.users.c
        of_login = (
            select(i.interface)
            .join_from(t.agent_interfaces, t.users, i.user_id == u.id)
            .where(u.login == f.agent)
        )
        cond.append(or_(c.agent == f.agent, c.agent.in_(of_login)))
    if f.certificate:
        cond.append(c.certificate_number == f.certificate)
    if f.organisation:
        pattern = "%" + _escape_like(f.organisation.lower()) + "%"
        cert_org = select(t.certificates.c.number).where(
            lower(t.certificates.c.organisation).like(pattern, escape="\\")
        )
        cond.append(
            or_(
                lower(c.organisation).like(pattern, escape="\\"),
                c.certificate_number.in_(cert_org),
            )
        )
    if f.caller:
        cond.append(c.caller_number.like("%" + _escape_like(f.caller) + "%", escape="\\"))
    if f.window_status:
        cond.append(w.status == f.window_status)
        if f.start is not None:
            cond.append(w.opened_at >= f.start)
        if f.end is not None:
            cond.append(w.opened_at < f.end + WINDOW_OPENS_WITHIN)
    if f.outcome:
        cond.append(c.outcome == f.outcome)
    if f.route:
        cond.append(route_condition(f.route))
    return cond


def history_order(f: CallFilter):
    """The history page's order, which its CSV export shares (``report_sql``)."""
    c, w = t.calls.c, t.oral_windows.c
    column = {
        "started_at": c.started_at,
        "agent": c.agent,
        "caller_number": c.caller_number,
        "certificate": c.certificate_number,
        "window_status": w.status,
        "outcome": c.outcome,
    }[f.sort]
    # ties broken by time then id in the same direction, so pages never overlap; a call
    # always has a start, so its order needs no NULLS clause and ix_calls_started_at serves
    # it both ways (a NULLS LAST on DESC would sort the whole table on PostgreSQL)
    tie = c.call_id.desc() if f.descending else c.call_id.asc()
    started = c.started_at.desc() if f.descending else c.started_at.asc()
    if f.sort == "started_at":
        return [started, tie]
    key = column.desc().nulls_last() if f.descending else column.asc().nulls_last()
    return [key, started, tie]


class SupervisorReads:
    def __init__(self, session) -> None:
        self.session = session

    async def history(
        self, f: CallFilter, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        c, w = t.calls.c, t.oral_windows.c
        k = t.certificates.c
        base = (
            select(
                t.calls,
                w.status.label("window_status"),
                w.deadline_at,
                k.holder_name.label("holder_name"),
                k.organisation.label("holder_organisation"),
                _owner_login(c.agent).label("agent_login"),
            )
            .outerjoin(t.oral_windows, w.call_id == c.call_id)
            .outerjoin(t.certificates, k.number == c.certificate_number)
        )
        cond = call_conditions(f, self.session.bind.dialect.name)
        q = base.where(*cond) if cond else base
        # counted up to a bound: "more than 10,000" is all a pager needs, and an exact count
        # of a million rows would cost more than the page
        matching = select(c.call_id)
        if f.window_status:
            matching = matching.join(t.oral_windows, w.call_id == c.call_id)
        matching = matching.where(*cond).limit(COUNT_BOUND + 1).subquery()
        total = (
            await self.session.execute(select(func.count()).select_from(matching))
        ).scalar_one()
        rows = (
            (await self.session.execute(q.order_by(*history_order(f)).limit(limit).offset(offset)))
            .mappings()
            .all()
        )
        return [dict(r) for r in rows], total

    # --- the live board ---

    async def active_calls(self, now: datetime) -> list[dict[str, Any]]:
        c, w, k = t.calls.c, t.oral_windows.c, t.certificates.c
        q = (
            select(
                t.calls,
                w.status.label("window_status"),
                w.deadline_at,
                w.warned_at,
                k.holder_name.label("holder_name"),
                k.organisation.label("holder_organisation"),
                _owner_login(c.agent).label("agent_login"),
            )
            .outerjoin(t.oral_windows, w.call_id == c.call_id)
            .outerjoin(t.certificates, k.number == c.certificate_number)
            .where(
                # the start bounds the scan to recent calls (ix_calls_started_at): a call is
                # answered within the hour it starts, or it has been abandoned
                c.started_at >= now - LIVE_HORIZON - START_SLACK,
                c.connected_at.is_not(None),
                c.connected_at >= now - LIVE_HORIZON,
                c.ended_at.is_(None),
            )
            .order_by(c.connected_at, c.call_id)
        )
        return [dict(r) for r in (await self.session.execute(q)).mappings().all()]

    async def waiting_calls(self, now: datetime) -> list[dict[str, Any]]:
        c, k = t.calls.c, t.certificates.c
        q = (
            select(t.calls, k.holder_name.label("holder_name"))
            .outerjoin(t.certificates, k.number == c.certificate_number)
            .where(
                c.started_at >= now - LIVE_HORIZON - START_SLACK,
                c.queued_at.is_not(None),
                c.queued_at >= now - LIVE_HORIZON,
                c.connected_at.is_(None),
                c.ended_at.is_(None),
            )
            .order_by(c.queued_at, c.call_id)
        )
        return [dict(r) for r in (await self.session.execute(q)).mappings().all()]

    async def agents(self, now: datetime) -> list[dict[str, Any]]:
        """Every enabled agent with their interfaces and whether they hold a live session."""
        u, s, i = t.users.c, t.sessions.c, t.agent_interfaces.c
        live = (
            select(func.count())
            .select_from(t.sessions)
            .where(s.user_id == u.id, s.expires_at > now)
            .scalar_subquery()
        )
        rows = (
            await self.session.execute(
                select(u.id, u.login, u.display_name, live.label("sessions"))
                .where(u.role == "agent", u.disabled_at.is_(None))
                .order_by(u.login)
            )
        ).all()
        ifaces = (
            await self.session.execute(select(i.user_id, i.interface).order_by(i.interface))
        ).all()
        by_user: dict[int, list[str]] = {}
        for user_id, iface in ifaces:
            by_user.setdefault(user_id, []).append(iface)
        return [
            {
                "login": r.login,
                "display_name": r.display_name,
                "signed_in": bool(r.sessions),
                "interfaces": by_user.get(r.id, []),
            }
            for r in rows
        ]

    async def current_calls(self, now: datetime, horizon: timedelta) -> list[dict[str, Any]]:
        """Every call connected within ``horizon`` that its agent is not done with (the
        desk's "current call", for all agents in one read), newest first."""
        c = t.calls.c
        q = (
            select(c.call_id, c.agent, c.connected_at, c.ended_at)
            .where(
                c.started_at >= now - horizon - START_SLACK,
                c.connected_at.is_not(None),
                c.connected_at >= now - horizon,
                ~_finished(),
            )
            .order_by(c.connected_at.desc(), c.call_id.desc())
        )
        return [dict(r) for r in (await self.session.execute(q)).mappings().all()]

    async def pauses(self) -> dict[str, Any]:
        """Each agent's pause row by login (no row: never paused)."""
        s, u = t.agent_states.c, t.users.c
        rows = await self.session.execute(
            select(u.login, s.paused, s.reason, s.since).join_from(
                t.agent_states, t.users, s.user_id == u.id
            )
        )
        return {r.login: r for r in rows.all()}

    async def tickets_due_before(self, soon: datetime, limit: int = 100) -> list[Ticket]:
        k = t.tickets.c
        q = (
            select(t.tickets)
            # status 'open' as well: what ix_tickets_status_due_at can find
            .where(k.status == TicketStatus.OPEN.value, UNSETTLED_TICKET, k.due_at < soon)
            .order_by(k.due_at, k.id)
            .limit(limit)
        )
        return [_ticket_from(r) for r in (await self.session.execute(q)).all()]

    async def day_figures(self, start: datetime, end: datetime) -> dict[str, int]:
        """Today's counts for the wallboard: calls offered, answered, abandoned, and the
        oral windows opened in the day by their status."""
        c, w = t.calls.c, t.oral_windows.c
        one = literal(1)
        calls = (
            await self.session.execute(
                select(
                    func.count(),
                    func.count(c.connected_at),
                    func.sum(case((c.abandoned.is_not(None), one), else_=0)),
                ).where(c.started_at >= start, c.started_at < end)
            )
        ).one()
        windows = (
            await self.session.execute(
                select(w.status, func.count())
                .where(w.opened_at >= start, w.opened_at < end)
                .group_by(w.status)
            )
        ).all()
        figures = {"offered": calls[0], "answered": calls[1], "abandoned": int(calls[2] or 0)}
        for status, n in windows:
            figures["window_" + status] = n
        return figures

    # --- a certificate's page ---

    async def certificate_calls(self, number: str, limit: int = 100) -> list[dict[str, Any]]:
        c, w = t.calls.c, t.oral_windows.c
        q = (
            select(
                t.calls,
                w.status.label("window_status"),
                w.deadline_at,
                _owner_login(c.agent).label("agent_login"),
            )
            .outerjoin(t.oral_windows, w.call_id == c.call_id)
            .where(c.certificate_number == number)
            .order_by(c.started_at.desc().nulls_last(), c.call_id.desc())
            .limit(limit)
        )
        return [dict(r) for r in (await self.session.execute(q)).mappings().all()]

    async def certificate_tickets(self, number: str, limit: int = 100) -> list[Ticket]:
        k = t.tickets.c
        q = (
            select(t.tickets)
            .where(k.certificate_number == number)
            .order_by(k.received_at.desc(), k.id.desc())
            .limit(limit)
        )
        return [_ticket_from(r) for r in (await self.session.execute(q)).all()]
