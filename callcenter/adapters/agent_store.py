"""Repositories of the agent's desk: which interfaces are whose, pause state, and the reads
the desk and the ownership rule need (a call belongs to the user owning its interface)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, literal_column, or_, select, update

from callcenter.adapters import tables as t
from callcenter.adapters.call_store import UNSETTLED_TICKET, _ticket_from
from callcenter.domain.calls import Ticket


def last_calls_select(number, exclude, limit):
    """A certificate's latest calls but one, with their windows' status: the latest ``limit``
    found first on the (certificate, started_at) index, read backwards, then joined (a
    certificate with thousands of calls costs no more). Every stored call has a start (the
    projection takes its first event's instant when ``call_started`` is missing)."""
    c, w = t.calls.c, t.oral_windows.c
    latest = (
        select(c.call_id, c.started_at, c.agent, c.outcome)
        .where(c.certificate_number == number, c.call_id != exclude)
        .order_by(c.started_at.desc(), c.call_id.desc())
        .limit(limit)
        .offset(literal_column("0"))  # SQLite's LIMIT otherwise takes an OFFSET parameter
        .subquery("latest")
    )
    return (
        select(latest, w.status.label("window_status"))
        .outerjoin(t.oral_windows, w.call_id == latest.c.call_id)
        .order_by(latest.c.started_at.desc(), latest.c.call_id.desc())
    )


def _owner_login(agent_column):
    """The login owning the interface in ``agent_column`` (a scalar subquery, NULL if none)."""
    i, u = t.agent_interfaces.c, t.users.c
    return (
        select(u.login)
        .join_from(t.agent_interfaces, t.users, i.user_id == u.id)
        .where(i.interface == agent_column)
        .scalar_subquery()
    )


def not_owned_by_others(login: str):
    """A condition on ``calls``: the call belongs to ``login`` or to nobody."""
    i, u, c = t.agent_interfaces.c, t.users.c, t.calls.c
    others = (
        select(i.interface)
        .join_from(t.agent_interfaces, t.users, i.user_id == u.id)
        .where(u.login != login)
    )
    return or_(c.agent.is_(None), c.agent.not_in(others))


def _mine(login: str):
    i, u = t.agent_interfaces.c, t.users.c
    return (
        select(i.interface)
        .join_from(t.agent_interfaces, t.users, i.user_id == u.id)
        .where(u.login == login)
    )


#: a call the agent is done with: ended, and "done" pressed or an outcome recorded
def _finished():
    c = t.calls.c
    return and_(c.ended_at.is_not(None), or_(c.wrapup_done_at.is_not(None), c.outcome.is_not(None)))


class AgentRepository:
    def __init__(self, session) -> None:
        self.session = session

    # --- users and interfaces ---

    async def user(self, login: str):
        """(id, login, display_name, role) of a user, or None."""
        u = t.users.c
        return (
            await self.session.execute(
                select(u.id, u.login, u.display_name, u.role).where(u.login == login)
            )
        ).first()

    async def interfaces_of(self, login: str) -> list[str]:
        i = t.agent_interfaces.c
        rows = await self.session.execute(_mine(login).order_by(i.interface))
        return list(rows.scalars())

    async def all_interfaces(self) -> dict[str, list[str]]:
        """login -> its interfaces, sorted."""
        i, u = t.agent_interfaces.c, t.users.c
        rows = await self.session.execute(
            select(u.login, i.interface)
            .join_from(t.agent_interfaces, t.users, i.user_id == u.id)
            .order_by(u.login, i.interface)
        )
        out: dict[str, list[str]] = {}
        for login, iface in rows.all():
            out.setdefault(login, []).append(iface)
        return out

    async def owners(self, interfaces: Sequence[str]) -> dict[str, str]:
        """interface -> owning login, for those of ``interfaces`` that have one."""
        if not interfaces:
            return {}
        i, u = t.agent_interfaces.c, t.users.c
        rows = await self.session.execute(
            select(i.interface, u.login)
            .join_from(t.agent_interfaces, t.users, i.user_id == u.id)
            .where(i.interface.in_(list(interfaces)))
        )
        return dict(rows.all())

    async def replace_interfaces(
        self, user_id: int, interfaces: Sequence[str], now: datetime
    ) -> None:
        i = t.agent_interfaces
        await self.session.execute(delete(i).where(i.c.user_id == user_id))
        if interfaces:
            await self.session.execute(
                insert(i),
                [{"user_id": user_id, "interface": x, "created_at": now} for x in interfaces],
            )

    async def owner_of_call(self, call_id: str) -> tuple[bool, str | None]:
        """(the call exists, the login owning its interface or None)."""
        c = t.calls.c
        row = (
            await self.session.execute(
                select(c.agent, _owner_login(c.agent).label("owner")).where(c.call_id == call_id)
            )
        ).first()
        return (False, None) if row is None else (True, row.owner)

    async def owner_of_interface(self, interface: str) -> str | None:
        return (await self.owners([interface])).get(interface)

    # --- pause state ---

    async def state(self, user_id: int):
        s = t.agent_states.c
        return (
            await self.session.execute(select(t.agent_states).where(s.user_id == user_id))
        ).first()

    async def set_state(
        self, user_id: int, paused: bool, reason: str | None, now: datetime, source: str
    ) -> None:
        s = t.agent_states
        changed = await self.session.execute(
            update(s)
            .where(s.c.user_id == user_id)
            .values(paused=paused, reason=reason, since=now, source=source)
        )
        if changed.rowcount == 0:
            await self.session.execute(
                insert(s).values(
                    user_id=user_id, paused=paused, reason=reason, since=now, source=source
                )
            )

    # --- the desk's reads ---

    async def current_call(self, login: str, since: datetime) -> dict[str, Any] | None:
        """The latest call connected to one of the agent's interfaces (since ``since``) that
        the agent is not done with."""
        c = t.calls.c
        row = (
            (
                await self.session.execute(
                    select(t.calls)
                    .where(
                        c.agent.in_(_mine(login)),
                        c.connected_at.is_not(None),
                        c.connected_at >= since,
                        ~_finished(),
                    )
                    .order_by(c.connected_at.desc(), c.call_id.desc())
                    .limit(1)
                )
            )
            .mappings()
            .first()
        )
        return dict(row) if row else None

    async def calls_of(self, login: str, start: datetime, end: datetime) -> list[dict]:
        """The agent's calls connected in [start, end), newest first, with window status."""
        c, w = t.calls.c, t.oral_windows.c
        rows = await self.session.execute(
            select(t.calls, w.status.label("window_status"), w.deadline_at)
            .outerjoin(t.oral_windows, w.call_id == c.call_id)
            .where(c.agent.in_(_mine(login)), c.connected_at >= start, c.connected_at < end)
            .order_by(c.connected_at.desc(), c.call_id)
        )
        return [dict(r) for r in rows.mappings().all()]

    async def tickets_of(self, login: str, limit: int = 200) -> list[Ticket]:
        """Tickets of calls the agent handled or escalated: unsettled first, by due time."""
        k, c = t.tickets.c, t.calls.c
        calls = select(c.call_id).where(or_(c.agent.in_(_mine(login)), c.outcome_by == login))
        rows = await self.session.execute(
            select(t.tickets)
            .where(k.call_id.in_(calls))
            .order_by(UNSETTLED_TICKET.desc(), k.due_at, k.id)
            .limit(limit)
        )
        return [_ticket_from(r) for r in rows.all()]

    async def last_calls(self, number: str, exclude: str, limit: int = 5) -> list[dict]:
        rows = await self.session.execute(last_calls_select(number, exclude, limit))
        return [dict(r) for r in rows.mappings().all()]

    async def open_tickets(self, number: str, limit: int = 20) -> list[Ticket]:
        k = t.tickets.c
        rows = await self.session.execute(
            select(t.tickets)
            .where(k.certificate_number == number, UNSETTLED_TICKET)
            .order_by(k.due_at, k.id)
            .limit(limit)
        )
        return [_ticket_from(r) for r in rows.all()]
