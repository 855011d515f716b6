"""The operational gauges of ``/metrics``, read from the database at scrape time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from callcenter.adapters import tables as t
from callcenter.adapters.call_store import UNSETTLED_TICKET

#: a call whose end never arrived (a lost hangup) stops counting as in progress after this
IN_PROGRESS_HORIZON = timedelta(hours=24)


async def read_gauges(sessions, now: datetime, soon: datetime) -> dict[str, float]:
    """Calls in progress, running windows, tickets due by ``soon`` (the end of the next
    working hour) and overdue, and the outbox backlog, as of ``now``: five counts, one trip."""
    c, w, tk, o = t.calls.c, t.oral_windows.c, t.tickets.c, t.outbox.c
    query = select(
        select(func.count())
        .where(c.ended_at.is_(None), c.started_at > now - IN_PROGRESS_HORIZON)
        .scalar_subquery(),
        select(func.count()).where(w.status.in_(("open", "extended"))).scalar_subquery(),
        select(func.count())
        .where(UNSETTLED_TICKET, tk.due_at > now, tk.due_at <= soon)
        .scalar_subquery(),
        select(func.count()).where(UNSETTLED_TICKET, tk.due_at <= now).scalar_subquery(),
        select(func.count()).where(o.delivered_at.is_(None)).scalar_subquery(),
        select(func.min(o.created_at)).where(o.delivered_at.is_(None)).scalar_subquery(),
    )
    async with sessions() as session:
        row = (await session.execute(query)).one()
    calls, windows, due_soon, overdue, backlog, oldest = row
    if isinstance(oldest, str):  # a MIN() over SQLite text is not typed back by SQLAlchemy
        oldest = datetime.fromisoformat(oldest).replace(tzinfo=UTC)  # stored as naive UTC
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return {
        "callcenter_calls_in_progress": calls,
        "callcenter_oral_windows_open": windows,
        "callcenter_tickets_due_soon": due_soon,
        "callcenter_tickets_overdue": overdue,
        "callcenter_outbox_backlog": backlog,
        "callcenter_outbox_oldest_age_seconds": max(0.0, age),
    }
