"""Repositories of the call-timing model: calls, oral windows, tickets, outbox, reviews.

One module for the five because they share one unit of work and one rule, below; each class
is the only writer of its table.

Every state change that a timer or a second instance could race on is a *conditional*
update (``... WHERE status IN ('open', 'extended')``) whose row count says who won.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.adapters import tables as t
from callcenter.adapters.event_sql import lock_calls_statement, upsert
from callcenter.domain.calls import (
    Extension,
    OralWindow,
    Outcome,
    Ticket,
    TicketStatus,
    WindowStatus,
)

RUNNING = (WindowStatus.OPEN.value, WindowStatus.EXTENDED.value)


class CallRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self, call_id: str, now: datetime) -> None:
        """Create the call's row if needed and hold it until commit (see lock_calls_statement)."""
        await self.session.execute(
            lock_calls_statement(self.session.bind.dialect.name),
            {"call_id": call_id, "updated_at": now},
        )

    async def get(self, call_id: str) -> dict[str, Any] | None:
        row = (
            (await self.session.execute(select(t.calls).where(t.calls.c.call_id == call_id)))
            .mappings()
            .first()
        )
        return dict(row) if row else None

    async def get_many(self, call_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The rows of these calls by id, in one query (the calls missing are left out)."""
        c = t.calls.c
        rows = await self.session.execute(
            select(t.calls).where(c.call_id.in_(bindparam("ids", expanding=True))),
            {"ids": list(call_ids)},
        )
        return {r["call_id"]: dict(r) for r in rows.mappings()}

    async def mark_escalated_many(self, items: Sequence[tuple[str, datetime]], by: str) -> None:
        """The 'escalated' outcome, each call at its own instant, where none is set yet (what
        :meth:`update_fields` writes for one call), in one executemany."""
        c = t.calls.c
        if not items:
            return
        await self.session.execute(
            update(t.calls)
            .where(
                c.call_id == bindparam("b_call_id"),
                or_(c.outcome.is_(None), c.outcome == ""),
            )
            .values(
                outcome=Outcome.ESCALATED.value,
                outcome_at=bindparam("b_at"),
                outcome_by=by,
                updated_at=bindparam("b_at"),
            ),
            [{"b_call_id": cid, "b_at": at} for cid, at in items],
        )

    async def update_fields(self, call_id: str, now: datetime, **values: Any) -> None:
        await self.session.execute(
            update(t.calls).where(t.calls.c.call_id == call_id).values(updated_at=now, **values)
        )

    async def clear_system_outcome(self, call_id: str, now: datetime) -> None:
        """Undo the 'escalated' the system set on an overrun (an agent's outcome stays)."""
        c = t.calls.c
        await self.session.execute(
            update(t.calls)
            .where(c.call_id == call_id, c.outcome == "escalated", c.outcome_by == "system")
            .values(outcome=None, outcome_at=None, outcome_by=None, updated_at=now)
        )

    async def search(
        self,
        *,
        start: datetime | None,
        end: datetime | None,
        agent: str | None,
        status: str | None,
        limit: int,
        offset: int,
        viewer: str | None = None,
    ) -> tuple[list[dict], int]:
        c, w = t.calls.c, t.oral_windows.c
        cond = []
        if viewer is not None:
            from callcenter.adapters.agent_store import not_owned_by_others

            cond.append(not_owned_by_others(viewer))
        if start is not None:
            cond.append(c.started_at >= start)
        if end is not None:
            cond.append(c.started_at < end)
        if agent:
            cond.append(c.agent == agent)
        base = select(t.calls, w.status.label("window_status"), w.deadline_at).outerjoin(
            t.oral_windows, w.call_id == c.call_id
        )
        if status:
            if status in ("abandoned",):
                cond.append(c.abandoned.is_not(None))
            elif status in {s.value for s in WindowStatus}:
                cond.append(w.status == status)
            else:
                cond.append(c.outcome == status)
        where = and_(*cond) if cond else None
        q = base.where(where) if where is not None else base
        total_q = select(func.count()).select_from(q.subquery())
        total = (await self.session.execute(total_q)).scalar_one()
        rows = (
            (
                await self.session.execute(
                    q.order_by(c.started_at.desc().nulls_last(), c.call_id)
                    .limit(limit)
                    .offset(offset)
                )
            )
            .mappings()
            .all()
        )
        return [dict(r) for r in rows], total


class WindowRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, call_id: str) -> OralWindow | None:
        w = t.oral_windows.c
        row = (
            await self.session.execute(select(t.oral_windows).where(w.call_id == call_id))
        ).first()
        if row is None:
            return None
        e = t.window_extensions.c
        ext = (
            await self.session.execute(
                select(t.window_extensions).where(e.call_id == call_id).order_by(e.id)
            )
        ).all()
        return _window_from(row, [Extension(x.at, x.seconds, x.reason, x.by) for x in ext])

    async def insert(self, win: OralWindow) -> bool:
        dialect = self.session.bind.dialect.name
        result = await self.session.execute(
            upsert(dialect, t.oral_windows)
            .values(
                call_id=win.call_id,
                opened_at=win.opened_at,
                deadline_at=win.deadline_at,
                warn_at=win.warn_at,
                status=win.status.value,
                length_seconds=win.length_seconds,
                policy_id=win.policy_id,
                recorded_at=win.recorded_at,
            )
            .on_conflict_do_nothing(index_elements=[t.oral_windows.c.call_id])
        )
        return result.rowcount == 1

    async def transition(
        self,
        call_id: str,
        to: WindowStatus,
        now: datetime,
        *,
        due_by: datetime | None = None,
        recorded_by: datetime | None = None,
    ) -> bool:
        """Move a running window to ``to``; only one caller ever wins. ``due_by`` and
        ``recorded_by``: only if its deadline, and its recording, are no later than these."""
        w = t.oral_windows.c
        cond = [w.call_id == call_id, w.status.in_(RUNNING)]
        if due_by is not None:
            cond.append(w.deadline_at <= due_by)
        if recorded_by is not None:
            cond.append(func.coalesce(w.recorded_at, w.opened_at) <= recorded_by)
        result = await self.session.execute(
            update(t.oral_windows).where(*cond).values(status=to.value, closed_at=now)
        )
        return result.rowcount == 1

    async def get_many(self, call_ids: Sequence[str]) -> dict[str, OralWindow]:
        """These calls' windows by call id, in one query, without their extensions (what
        deciding and escalating a window read; :meth:`get` has them)."""
        w = t.oral_windows.c
        rows = await self.session.execute(
            select(t.oral_windows).where(w.call_id.in_(bindparam("ids", expanding=True))),
            {"ids": list(call_ids)},
        )
        return {r.call_id: _window_from(r) for r in rows.all()}

    async def overrun_many(self, call_ids: Sequence[str], fire_by: datetime) -> set[str]:
        """:meth:`transition` to OVERRUN for many windows in one statement, each closed at its
        own deadline, only if due and recorded by ``fire_by``; the call ids that won."""
        w = t.oral_windows.c
        if not call_ids:
            return set()
        result = await self.session.execute(
            update(t.oral_windows)
            .where(
                w.call_id.in_(bindparam("ids", expanding=True)),
                w.status.in_(RUNNING),
                w.deadline_at <= fire_by,
                func.coalesce(w.recorded_at, w.opened_at) <= fire_by,
            )
            .values(status=WindowStatus.OVERRUN.value, closed_at=w.deadline_at)
            .returning(w.call_id),
            {"ids": list(call_ids)},
        )
        return set(result.scalars().all())

    async def withdraw(self, call_id: str, ended_at: datetime) -> bool:
        """An overrun window whose call is now known to have ended in time becomes met."""
        w = t.oral_windows.c
        result = await self.session.execute(
            update(t.oral_windows)
            .where(
                w.call_id == call_id,
                w.status == WindowStatus.OVERRUN.value,
                w.deadline_at >= ended_at,
            )
            .values(status=WindowStatus.MET.value, closed_at=ended_at)
        )
        return result.rowcount == 1

    async def mark_warned(self, call_id: str, now: datetime) -> bool:
        w = t.oral_windows.c
        result = await self.session.execute(
            update(t.oral_windows)
            .where(
                w.call_id == call_id, w.status.in_(RUNNING), w.warned_at.is_(None), w.warn_at <= now
            )
            .values(warned_at=now)
        )
        return result.rowcount == 1

    async def extend(self, win: OralWindow, old_deadline: datetime, ext: Extension) -> bool:
        """Write an extension computed by the domain, unless the window changed meanwhile."""
        w = t.oral_windows.c
        result = await self.session.execute(
            update(t.oral_windows)
            .where(
                w.call_id == win.call_id,
                w.status.in_(RUNNING),
                w.deadline_at == old_deadline,
                w.deadline_at > ext.at,
            )
            .values(
                deadline_at=win.deadline_at,
                warn_at=win.warn_at,
                warned_at=None,
                status=win.status.value,
            )
        )
        if result.rowcount != 1:
            return False
        await self.session.execute(
            insert(t.window_extensions).values(
                call_id=win.call_id, at=ext.at, seconds=ext.seconds, reason=ext.reason, by=ext.by
            )
        )
        return True

    async def running(self) -> list[OralWindow]:
        """Every running window, without its extensions (what a scheduler arms)."""
        w = t.oral_windows.c
        rows = await self.session.execute(select(t.oral_windows).where(w.status.in_(RUNNING)))
        return [_window_from(r) for r in rows.all()]


def _window_from(r, extensions: list[Extension] | None = None) -> OralWindow:
    """A window from its row, and its extensions if they were read."""
    return OralWindow(
        r.call_id,
        r.opened_at,
        r.deadline_at,
        r.warn_at,
        WindowStatus(r.status),
        policy_id=r.policy_id,
        length_seconds=r.length_seconds,
        warned_at=r.warned_at,
        closed_at=r.closed_at,
        extensions=extensions if extensions is not None else [],
        recorded_at=r.recorded_at,
    )


#: a ticket that can still change: neither answered nor withdrawn (warnings, answers,
#: withdrawal, the open/overdue filters and the gauges all ask this one question)
UNSETTLED_TICKET = and_(
    t.tickets.c.answered_at.is_(None), t.tickets.c.status != TicketStatus.WITHDRAWN.value
)


def _ticket_from(row) -> Ticket:
    return Ticket(
        id=row.id,
        source=row.source,
        call_id=row.call_id,
        certificate_number=row.certificate_number,
        full_name=row.full_name,
        organisation=row.organisation,
        description=row.description,
        category=row.category,
        received_at=row.received_at,
        due_at=row.due_at,
        warn75_at=row.warn75_at,
        warn90_at=row.warn90_at,
        warned75_at=row.warned75_at,
        warned90_at=row.warned90_at,
        status=row.status,
        answered_at=row.answered_at,
        answer=row.answer,
        escalation_reason=row.escalation_reason,
        policy_id=row.policy_id,
        withdrawn_at=row.withdrawn_at,
        withdrawn_reason=row.withdrawn_reason,
        helpdesk_ref=row.helpdesk_ref,
        helpdesk_url=row.helpdesk_url,
        answer_source=row.answer_source,
        recording=row.recording,
    )


def _ticket_values(tk: Ticket, now: datetime) -> dict[str, Any]:
    return {
        "source": tk.source,
        "call_id": tk.call_id,
        "certificate_number": tk.certificate_number,
        "full_name": tk.full_name,
        "organisation": tk.organisation,
        "description": tk.description,
        "category": tk.category,
        "received_at": tk.received_at,
        "due_at": tk.due_at,
        "warn75_at": tk.warn75_at,
        "warn90_at": tk.warn90_at,
        "status": tk.status,
        "escalation_reason": tk.escalation_reason,
        "policy_id": tk.policy_id,
        "created_at": now,
        "recording": tk.recording,
    }


class TicketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, tk: Ticket, now: datetime) -> int | None:
        """The new ticket's id, or None when the call already has one (exactly once)."""
        dialect = self.session.bind.dialect.name
        stmt = (
            upsert(dialect, t.tickets)
            .values(**_ticket_values(tk, now))
            .on_conflict_do_nothing(index_elements=[t.tickets.c.call_id])
        )
        result = await self.session.execute(stmt.returning(t.tickets.c.id))
        return result.scalar_one_or_none()

    async def insert_many(self, tickets: Sequence[tuple[Ticket, datetime]]) -> dict[str, int]:
        """Calls' tickets (each with its ``now``) in one multi-row INSERT: the new ids by call
        id; a call that already has a ticket is left out (exactly once, as :meth:`insert`)."""
        if not tickets:
            return {}
        dialect = self.session.bind.dialect.name
        tk = t.tickets.c
        # one statement compiled once (cached) and sent as SQLAlchemy's "insertmanyvalues"
        # batches: a VALUES list built for each batch size cost more to compile than to run
        stmt = (
            upsert(dialect, t.tickets)
            .on_conflict_do_nothing(index_elements=[tk.call_id])
            .returning(tk.call_id, tk.id)
        )
        rows = [_ticket_values(ticket, now) for ticket, now in tickets]
        return {cid: tid for cid, tid in (await self.session.execute(stmt, rows)).all()}

    async def get(self, ticket_id: int) -> Ticket | None:
        row = (
            await self.session.execute(select(t.tickets).where(t.tickets.c.id == ticket_id))
        ).first()
        return _ticket_from(row) if row else None

    async def for_call(self, call_id: str) -> Ticket | None:
        row = (
            await self.session.execute(select(t.tickets).where(t.tickets.c.call_id == call_id))
        ).first()
        return _ticket_from(row) if row else None

    async def search(
        self,
        *,
        start: datetime | None,
        end: datetime | None,
        status: str | None,
        source: str | None,
        now: datetime,
        limit: int,
        offset: int,
    ) -> tuple[list[Ticket], int]:
        k = t.tickets.c
        cond = []
        if start is not None:
            cond.append(k.received_at >= start)
        if end is not None:
            cond.append(k.received_at < end)
        if source:
            cond.append(k.source == source)
        if status == "answered":
            cond.append(k.answered_at.is_not(None))
        elif status == "open":
            cond.append(and_(UNSETTLED_TICKET, k.due_at >= now))
        elif status == "overdue":
            cond.append(and_(UNSETTLED_TICKET, k.due_at < now))
        elif status == TicketStatus.WITHDRAWN:
            cond.append(k.status == TicketStatus.WITHDRAWN.value)
        q = select(t.tickets).where(*cond) if cond else select(t.tickets)
        total = (
            await self.session.execute(select(func.count()).select_from(q.subquery()))
        ).scalar_one()
        rows = (
            await self.session.execute(
                q.order_by(k.received_at.desc(), k.id.desc()).limit(limit).offset(offset)
            )
        ).all()
        return [_ticket_from(r) for r in rows], total

    async def fill_certificate(self, call_id: str, number: str, name: str, org: str) -> bool:
        """A call's ticket made before its certificate was known gets it (and the holder)."""
        k = t.tickets.c
        values: dict[str, Any] = {"certificate_number": number}
        result = await self.session.execute(
            update(t.tickets)
            .where(k.call_id == call_id, k.certificate_number.is_(None))
            .values(**values)
        )
        if result.rowcount == 1 and (name or org):
            await self.session.execute(
                update(t.tickets)
                .where(k.call_id == call_id, k.full_name == "", k.organisation == "")
                .values(full_name=name, organisation=org)
            )
        return result.rowcount == 1

    async def mark_warned(self, ticket_id: int, which: int, now: datetime) -> bool:
        k = t.tickets.c
        col, at = (k.warned75_at, k.warn75_at) if which == 75 else (k.warned90_at, k.warn90_at)
        result = await self.session.execute(
            update(t.tickets)
            .where(
                k.id == ticket_id,
                UNSETTLED_TICKET,
                col.is_(None),
                at <= now,
            )
            .values({col.key: now})
        )
        return result.rowcount == 1

    async def answer(self, ticket_id: int, at: datetime, text: str, source: str = "here") -> bool:
        """The first answer stands: a second one (from anywhere) changes nothing."""
        k = t.tickets.c
        result = await self.session.execute(
            update(t.tickets)
            .where(
                k.id == ticket_id,
                UNSETTLED_TICKET,
            )
            .values(
                answered_at=at,
                answer=text,
                status=TicketStatus.ANSWERED.value,
                answer_source=source,
            )
        )
        return result.rowcount == 1

    async def set_helpdesk(self, ticket_id: int, ref: str | None, url: str | None) -> None:
        """Where the helpdesk keeps the ticket (told by its answer to the delivery)."""
        await self.session.execute(
            update(t.tickets)
            .where(t.tickets.c.id == ticket_id)
            .values(helpdesk_ref=ref, helpdesk_url=url)
        )

    async def unsettled_among(self, ids: list[int]) -> set[int]:
        """Which of these tickets can still be answered."""
        if not ids:
            return set()
        k = t.tickets.c
        rows = await self.session.execute(select(k.id).where(k.id.in_(ids), UNSETTLED_TICKET))
        return set(rows.scalars())

    async def withdraw(self, ticket_id: int, now: datetime, reason: str) -> bool:
        """Withdrawn, never deleted: the row stays, with when and why, for audit."""
        k = t.tickets.c
        result = await self.session.execute(
            update(t.tickets)
            .where(
                k.id == ticket_id,
                UNSETTLED_TICKET,
            )
            .values(status=TicketStatus.WITHDRAWN.value, withdrawn_at=now, withdrawn_reason=reason)
        )
        return result.rowcount == 1

    async def pending(
        self,
    ) -> list[tuple[int, datetime | None, datetime | None, datetime | None, datetime | None]]:
        """(id, warn75_at, warned75_at, warn90_at, warned90_at) of unanswered tickets."""
        k = t.tickets.c
        rows = await self.session.execute(
            select(k.id, k.warn75_at, k.warned75_at, k.warn90_at, k.warned90_at).where(
                UNSETTLED_TICKET,
                or_(k.warned75_at.is_(None), k.warned90_at.is_(None)),
            )
        )
        return [tuple(r) for r in rows.all()]


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, topic: str, key: str, payload: dict, now: datetime) -> None:
        dialect = self.session.bind.dialect.name
        await self.session.execute(
            upsert(dialect, t.outbox)
            .values(
                topic=topic,
                idempotency_key=key,
                payload=json.dumps(payload, ensure_ascii=False, default=str),
                created_at=now,
                next_attempt_at=now,
            )
            .on_conflict_do_nothing(index_elements=[t.outbox.c.idempotency_key])
        )

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[dict]:
        """Take due messages for delivery; a claim keeps other instances off until it lapses."""
        o = t.outbox.c
        due = (
            (
                await self.session.execute(
                    select(o.id)
                    .where(
                        o.delivered_at.is_(None),
                        o.cancelled_at.is_(None),
                        o.next_attempt_at <= now,
                        or_(o.claimed_until.is_(None), o.claimed_until < now),
                    )
                    .order_by(o.id)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
        claimed = []
        for mid in due:
            result = await self.session.execute(
                update(t.outbox)
                .where(
                    o.id == mid,
                    o.delivered_at.is_(None),
                    o.cancelled_at.is_(None),
                    or_(o.claimed_until.is_(None), o.claimed_until < now),
                )
                .values(claimed_until=lease_until)
            )
            if result.rowcount == 1:
                row = (
                    (await self.session.execute(select(t.outbox).where(o.id == mid)))
                    .mappings()
                    .one()
                )
                claimed.append(dict(row))
        return claimed

    async def add_ticket(self, topic: str, key: str, ticket: Ticket, now: datetime) -> None:
        """A ticket's message, in the forwarding's own shape (``ticket_payload``), with the
        certificate's coverage and the call's timeline read in the same transaction."""
        from callcenter.adapters.forwarding import ticket_context, ticket_payload
        from callcenter.adapters.repositories import CertificateRepository

        uow = _Reads(self.session, CertificateRepository(self.session))
        await self.add(
            topic, key, ticket_payload(ticket, now, await ticket_context(uow, ticket)), now
        )

    async def cancel(self, key: str, now: datetime) -> bool:
        """Cancel a message not yet sent nor being sent; False if it is out of our hands."""
        o = t.outbox.c
        result = await self.session.execute(
            update(t.outbox)
            .where(
                o.idempotency_key == key,
                o.delivered_at.is_(None),
                o.cancelled_at.is_(None),
                or_(o.claimed_until.is_(None), o.claimed_until < now),
            )
            .values(cancelled_at=now)
        )
        return result.rowcount == 1

    async def exists(self, key: str) -> bool:
        o = t.outbox.c
        found = await self.session.execute(select(o.id).where(o.idempotency_key == key))
        return found.first() is not None

    async def delivered(self, mid: int, now: datetime) -> None:
        o = t.outbox.c
        await self.session.execute(
            update(t.outbox)
            .where(o.id == mid)
            .values(delivered_at=now, claimed_until=None, attempts=o.attempts + 1, last_error=None)
        )

    async def failed(self, mid: int, next_at: datetime, error: str) -> None:
        o = t.outbox.c
        await self.session.execute(
            update(t.outbox)
            .where(o.id == mid)
            .values(
                next_attempt_at=next_at,
                claimed_until=None,
                attempts=o.attempts + 1,
                last_error=error[:500],
            )
        )

    async def stats(self) -> dict[str, int]:
        o = t.outbox.c
        pending = (
            await self.session.execute(
                select(func.count())
                .select_from(t.outbox)
                .where(o.delivered_at.is_(None), o.cancelled_at.is_(None))
            )
        ).scalar_one()
        return {"pending": pending}

    async def next_due(self) -> datetime | None:
        o = t.outbox.c
        return (
            await self.session.execute(
                select(func.min(o.next_attempt_at)).where(
                    o.delivered_at.is_(None), o.cancelled_at.is_(None)
                )
            )
        ).scalar_one()


class HelpdeskSyncRepository:
    """The answer poller's progress (table ``helpdesk_sync``), one row per helpdesk."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, name: str) -> dict[str, Any] | None:
        h = t.helpdesk_sync.c
        row = (
            (await self.session.execute(select(t.helpdesk_sync).where(h.name == name)))
            .mappings()
            .first()
        )
        return dict(row) if row else None

    async def put(self, name: str, **values: Any) -> None:
        dialect = self.session.bind.dialect.name
        stmt = upsert(dialect, t.helpdesk_sync).values(name=name, **values)
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=[t.helpdesk_sync.c.name], set_=values)
        )


class _Reads:
    """The repositories ``ticket_context`` reads, on this session."""

    def __init__(self, session: AsyncSession, certificates) -> None:
        self.certificates = certificates
        self.calls = CallRepository(session)
        self.windows = WindowRepository(session)


class ReviewRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, kind: str, call_id: str | None, note: str, by: str, now: datetime) -> int:
        result = await self.session.execute(
            insert(t.reviews).values(
                kind=kind, call_id=call_id, note=note, created_by=by, created_at=now
            )
        )
        return result.inserted_primary_key[0]

    async def list(self, limit: int = 100) -> list[dict]:
        r = t.reviews.c
        rows = await self.session.execute(
            select(t.reviews).order_by(r.created_at.desc(), r.id.desc()).limit(limit)
        )
        return [dict(x) for x in rows.mappings().all()]
