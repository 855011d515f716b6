"""The operational gauges of ``/metrics``, read from the database at scrape time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from callcenter.adapters import tables as t
from callcenter.adapters.call_store import UNSETTLED_TICKET

#: a call whose end never arrived (a lost hangup) stops counting as in progress after this
IN_PROGRESS_HORIZON = timedelta(hours=24)


def _instant(value) -> datetime | None:
    if isinstance(value, str):  # a MIN() over SQLite text is not typed back by SQLAlchemy
        return datetime.fromisoformat(value).replace(tzinfo=UTC)  # stored as naive UTC
    return value


async def read_gauges(
    sessions, now: datetime, soon: datetime, helpdesk: str | None = None
) -> dict[str, float]:
    """Calls in progress, running windows, tickets due by ``soon`` (the end of the next
    working hour) and overdue, the outbox backlog (cancelled messages are not waiting) and
    its oldest message's age, and the helpdesk's last successful sync (Unix seconds, 0 when
    never), as of ``now``: one trip."""
    c, w, tk, o, hs = t.calls.c, t.oral_windows.c, t.tickets.c, t.outbox.c, t.helpdesk_sync.c
    waiting = (o.delivered_at.is_(None), o.cancelled_at.is_(None))
    query = select(
        select(func.count())
        .where(c.ended_at.is_(None), c.started_at > now - IN_PROGRESS_HORIZON)
        .scalar_subquery(),
        select(func.count()).where(w.status.in_(("open", "extended"))).scalar_subquery(),
        select(func.count())
        .where(UNSETTLED_TICKET, tk.due_at > now, tk.due_at <= soon)
        .scalar_subquery(),
        select(func.count()).where(UNSETTLED_TICKET, tk.due_at <= now).scalar_subquery(),
        select(func.count()).where(*waiting).scalar_subquery(),
        select(func.min(o.created_at)).where(*waiting).scalar_subquery(),
        select(hs.last_success_at).where(hs.name == (helpdesk or "")).scalar_subquery(),
    )
    async with sessions() as session:
        row = (await session.execute(query)).one()
    calls, windows, due_soon, overdue, backlog, oldest, synced = row
    oldest, synced = _instant(oldest), _instant(synced)
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return {
        "callcenter_calls_in_progress": calls,
        "callcenter_oral_windows_open": windows,
        "callcenter_tickets_due_soon": due_soon,
        "callcenter_tickets_overdue": overdue,
        "callcenter_outbox_backlog": backlog,
        "callcenter_outbox_oldest_age_seconds": max(0.0, age),
        "callcenter_helpdesk_last_sync_timestamp_seconds": synced.timestamp() if synced else 0.0,
    }
