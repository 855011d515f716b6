"""The statements of the personal-data retention job (``services/retention.py``).

Each method changes only personal fields of rows older than the cutoff that still hold some,
so a second run finds nothing to do (idempotent) and the rows' timing columns (started,
queued, connected, ended, the window, the ticket's received/due/answered instants) are
never written.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlalchemy import and_, bindparam, func, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.adapters import tables as t

#: fields of the call's events that name or reach the caller
_EVENT_PERSONAL = ("caller_number",)


class RetentionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def oldest(self, cutoff: datetime) -> datetime | None:
        """The earliest instant, before the cutoff, of a row that still holds personal data
        (None: nothing to do). The job walks from there to the cutoff a slice at a time."""
        c, e, f, k, o = t.calls, t.call_events, t.ivr_failures, t.tickets, t.outbox
        firsts = union_all(
            select(func.min(func.coalesce(c.c.started_at, c.c.updated_at)).label("at")).where(
                _calls_personal(cutoff)
            ),
            select(func.min(e.c.at).label("at")).where(_events_personal(cutoff)),
            select(func.min(f.c.at).label("at")).where(_failures_personal(cutoff)),
            select(func.min(k.c.received_at).label("at")).where(_tickets_personal(cutoff)),
            select(func.min(o.c.created_at).label("at")).where(_outbox_personal(cutoff)),
        ).subquery()
        return (await self.session.execute(select(func.min(firsts.c.at)))).scalar_one()

    async def calls(self, cutoff: datetime, *, apply: bool) -> int:
        c = t.calls
        where = _calls_personal(cutoff)
        if not apply:
            return await self._count(c, where)
        result = await self.session.execute(
            update(c)
            .where(where)
            .values(
                caller_number=None,
                caller_name="",
                organisation="",
                description="",
                subject="",
                outcome_note="",
            )
        )
        return result.rowcount

    async def events(self, cutoff: datetime, *, apply: bool) -> int:
        """The caller number kept in each old ``call_started`` event (the call's record is
        recomputed from its events: left there, it would come back).

        Its dedup key goes too: it is a hash over the event's fields, the number included,
        and phone numbers are few enough to try them all, so the old key would give the
        number back. The new key is made from the row alone. The same event sent again is
        not recognised by it any more, but it cannot be sent again: an event this old is
        outside the instants the service takes (``[events] max_past_seconds``, a week by
        default, against retention counted in months)."""
        e = t.call_events
        rows = await self.session.execute(select(e.c.id, e.c.data).where(_events_personal(cutoff)))
        changed = []
        for row_id, raw in rows.all():
            data = json.loads(raw)
            if not any(k in data for k in _EVENT_PERSONAL):
                continue
            for k in _EVENT_PERSONAL:
                data.pop(k, None)
            changed.append(
                {
                    "row_id": row_id,
                    "new_data": json.dumps(data, ensure_ascii=False),
                    "new_key": hashlib.sha256(f"anonymised {row_id}".encode()).hexdigest(),
                }
            )
        if apply and changed:  # one statement, executed for every row (executemany)
            await self.session.execute(
                update(e)
                .where(e.c.id == bindparam("row_id"))
                .values(data=bindparam("new_data"), dedup_key=bindparam("new_key")),
                changed,
            )
        return len(changed)

    async def ivr_failures(self, cutoff: datetime, *, apply: bool) -> int:
        f = t.ivr_failures
        where = _failures_personal(cutoff)
        if not apply:
            return await self._count(f, where)
        return (await self.session.execute(update(f).where(where).values(caller=None))).rowcount

    async def tickets(self, cutoff: datetime, *, apply: bool) -> tuple[int, list[str]]:
        """Tickets received before the cutoff (a call's or the portal's): the requester's
        name, organisation, the description, the answer's text and the recording. Returns
        how many, and the recordings' file names (to delete once committed)."""
        k = t.tickets
        where = _tickets_personal(cutoff)
        rows = (await self.session.execute(select(k.c.id, k.c.recording).where(where))).all()
        recordings = [r.recording for r in rows if r.recording]
        if apply and rows:
            await self.session.execute(
                update(k)
                .where(where)
                .values(full_name="", organisation="", description="", recording=None)
            )
            await self.session.execute(
                update(k)
                .where(k.c.received_at < cutoff, k.c.answer.is_not(None), k.c.answer != "")
                .values(answer="")
            )
        return len(rows), recordings

    async def outbox(self, cutoff: datetime, *, apply: bool) -> int:
        """Delivered or cancelled messages (a ticket's copy for the helpdesk) made before the
        cutoff; messages still to deliver are left alone."""
        o = t.outbox
        where = _outbox_personal(cutoff)
        if not apply:
            return await self._count(o, where)
        return (await self.session.execute(update(o).where(where).values(payload="{}"))).rowcount

    async def _count(self, table, where) -> int:
        return (
            await self.session.execute(select(func.count()).select_from(table).where(where))
        ).scalar_one()


# --- which rows still hold personal data, older than the cutoff: one place for each table ---


def _calls_personal(cutoff: datetime):
    c = t.calls
    old = or_(c.c.started_at < cutoff, and_(c.c.started_at.is_(None), c.c.updated_at < cutoff))
    personal = or_(
        c.c.caller_number.is_not(None),
        c.c.caller_name != "",
        c.c.organisation != "",
        c.c.description != "",
        c.c.subject != "",
        c.c.outcome_note != "",
    )
    return and_(old, personal)


def _events_personal(cutoff: datetime):
    e = t.call_events
    return and_(e.c.event == "call_started", e.c.at < cutoff, e.c.data.like('%"caller_number"%'))


def _failures_personal(cutoff: datetime):
    f = t.ivr_failures
    return and_(f.c.at < cutoff, f.c.caller.is_not(None))


def _tickets_personal(cutoff: datetime):
    k = t.tickets
    personal = or_(
        k.c.full_name != "",
        k.c.organisation != "",
        k.c.description != "",
        and_(k.c.answer.is_not(None), k.c.answer != ""),
        k.c.recording.is_not(None),
    )
    return and_(k.c.received_at < cutoff, personal)


def _outbox_personal(cutoff: datetime):
    o = t.outbox
    return and_(
        o.c.created_at < cutoff,
        or_(o.c.delivered_at.is_not(None), o.c.cancelled_at.is_not(None)),
        o.c.payload != "{}",
    )
