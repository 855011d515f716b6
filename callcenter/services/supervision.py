"""The supervisor's read use cases: the live board (and the wallboard's day figures), the
filtered call log, one call's timeline and a certificate's page.

The board gives every agent's state by the desk's own rule (``agent_desk.agent_state``) from
one read of all current calls, and asks the policy's calendar what "due within the next
working hour" means; nothing here is computed in the browser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from callcenter.domain.calls import Ticket
from callcenter.domain.errors import NotFound
from callcenter.domain.instants import MOSCOW
from callcenter.services.agent_desk import CURRENT_CALL_HORIZON, agent_state
from callcenter.services.call_filters import CallFilter
from callcenter.services.read_models import CallDetail, Page

#: the certificate statuses with which the IVR refuses a call (CC_ROUTE=REFUSED): the same
#: rule as the reports' (adapters/report_sql.py), so a route means one thing everywhere
REFUSED_STATUSES = ("UNKNOWN", "EXPIRED", "NOT_COVERED", "LOCKED", "NO_INPUT")

#: the history counts its matches up to this many; a total past it means "more than"
COUNT_BOUND = 10_000

#: window states the board names: ``warning`` is an open window past its warning
BOARD_WINDOW_STATES = ("open", "warning", "extended", "overrun", "met", "escalated")


@dataclass(frozen=True)
class Board:
    now: datetime
    #: tickets due before this are "due soon" (the next working hour)
    soon: datetime
    active: list[dict[str, Any]]
    waiting: list[dict[str, Any]]
    agents: list[dict[str, Any]]
    due_soon: list[Ticket]
    breached: list[Ticket]
    today: dict[str, int] = field(default_factory=dict)

    @property
    def compliance(self) -> float | None:
        """Today's share of settled oral windows answered in time (met), in percent."""
        met = self.today.get("window_met", 0)
        settled = met + self.today.get("window_overrun", 0) + self.today.get("window_escalated", 0)
        return round(100.0 * met / settled, 1) if settled else None


def board_window_state(row: dict[str, Any]) -> str | None:
    """The window's state as the board shows it: ``warning`` once an open window warned."""
    status = row.get("window_status")
    if status == "open" and row.get("warned_at") is not None:
        return "warning"
    return status


def route_of(row: dict[str, Any]) -> str:
    """How a call left the IVR, as ``call_filters.ROUTES`` names it ("" while in the IVR);
    the same rule as the filter's SQL (``adapters/board_sql.route_condition``)."""
    abandoned = row.get("abandoned")
    if abandoned in ("ivr", "queue"):
        return "abandoned_" + abandoned
    if row.get("queued_at") is not None:
        return "queued"
    if row.get("certificate_status") == "CLOSED":
        return "closed"
    if row.get("certificate_status") in REFUSED_STATUSES:
        return "refused"
    return ""


@dataclass(frozen=True)
class CertificatePage:
    certificate: Any
    calls: list[dict[str, Any]]
    tickets: list[Ticket]


class SupervisorQueries:
    def __init__(self, uow_factory: Callable, policy, calendars, queries) -> None:
        self._uow = uow_factory
        self._policy = policy
        self._calendars = calendars
        self._queries = queries

    async def soon(self, now: datetime) -> datetime:
        """The end of the next working hour from ``now`` (the policy's calendar)."""
        policy = await self._policy.in_force_at(now)
        return self._calendars.for_policy(policy).add_working_hours(now, 1)

    async def board(self, now: datetime) -> Board:
        soon = await self.soon(now)
        day = now.astimezone(MOSCOW).replace(hour=0, minute=0, second=0, microsecond=0)
        async with self._uow() as uow:
            reads = uow.supervisor
            active = await reads.active_calls(now)
            waiting = await reads.waiting_calls(now)
            agents = await reads.agents(now)
            tickets = await reads.tickets_due_before(soon)
            today = await reads.day_figures(day, day + timedelta(days=1))
            current = await reads.current_calls(now, CURRENT_CALL_HORIZON)
            pauses = await reads.pauses()
        for row in active:
            row["board_window"] = board_window_state(row)
        for a in agents:
            mine = set(a["interfaces"])
            latest = next((r for r in current if r["agent"] in mine), None)
            state = agent_state(latest, pauses.get(a["login"]))
            a["state"] = state.state
            a["reason"] = state.reason
            a["since"] = state.since
            if state.state == "available" and not a["signed_in"]:
                a["state"] = "logged_out"
        return Board(
            now=now,
            soon=soon,
            active=active,
            waiting=waiting,
            agents=agents,
            due_soon=[tk for tk in tickets if tk.due_at >= now],
            breached=[tk for tk in tickets if tk.due_at < now],
            today=today,
        )

    async def history(self, f: CallFilter, limit: int, offset: int) -> Page[dict]:
        async with self._uow() as uow:
            rows, total = await uow.supervisor.history(f, limit, offset)
        return Page(rows, total, limit, offset)

    async def call(self, call_id: str) -> tuple[CallDetail, Any]:
        """The call (as ``GET /api/v1/calls/{id}`` reads it) and its certificate, if known."""
        detail = await self._queries.get(call_id)
        number = detail.call.get("certificate_number")
        if not number:
            return detail, None
        async with self._uow() as uow:
            return detail, await uow.certificates.get(number)

    async def certificate(self, number: str) -> CertificatePage:
        async with self._uow() as uow:
            cert = await uow.certificates.get(number)
            calls = await uow.supervisor.certificate_calls(number)
            tickets = await uow.supervisor.certificate_tickets(number)
        if cert is None and not calls and not tickets:
            raise NotFound(f"no certificate {number}", code="certificate_not_found")
        return CertificatePage(cert, calls, tickets)


@dataclass(frozen=True)
class Moment:
    """One thing that happened to a call, for its timeline: ``kind`` names it (a catalog key's
    tail), ``detail`` is text to show as it is (a status, an agent, a reason)."""

    at: datetime
    kind: str
    detail: str = ""
    #: on the call's axis (False: a ticket's later life, listed below it)
    on_axis: bool = True
    #: a code to show in words: a catalog key (``window_overrun``, ``status_VALID``)
    word: str = ""


@dataclass(frozen=True)
class Span:
    kind: str  # ivr, queue, talk
    start: datetime
    end: datetime
    open_ended: bool = False


def _mmss(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


def call_timeline(detail: CallDetail, now: datetime) -> tuple[list[Span], list[Moment]]:
    """A call's phases (IVR, queue, talk) and moments on one axis, in the order they happened:
    its events, the window's warning, extensions, deadline and close, the ticket and the end."""
    r, win, tk = detail.call, detail.window, detail.ticket
    moments: list[Moment] = []
    for e in detail.events:
        d = e.data
        if e.event == "certificate_checked":
            status = d.get("status") or ""
            word = f"status_{status}" if status else ""
            moments.append(Moment(e.at, e.event, d.get("certificate") or "", word=word))
        elif e.event == "call_ended":
            gone = d.get("abandoned")
            moments.append(Moment(e.at, e.event, word=f"route_abandoned_{gone}" if gone else ""))
        else:
            text = {
                "call_started": d.get("caller_number") or "",
                "queued": d.get("queue") or "",
                "agent_connected": d.get("agent") or "",
            }.get(e.event, "")
            moments.append(Moment(e.at, e.event, text))
    if win is not None:
        moments.append(Moment(win.opened_at, "window_opened", _mmss(win.length_seconds)))
        if win.warned_at is not None:
            moments.append(Moment(win.warned_at, "window_warned"))
        for x in win.extensions:
            text = f"+{_mmss(x.seconds)} · {x.reason} · {x.by}"
            moments.append(Moment(x.at, "window_extended", text))
        moments.append(Moment(win.deadline_at, "window_deadline"))
        if win.closed_at is not None:
            word = f"window_{win.status.value}"
            moments.append(Moment(win.closed_at, "window_closed", word=word))
    if r.get("outcome_at") is not None:
        text = " · ".join(
            x for x in (r.get("outcome_reason") or "", r.get("outcome_by") or "") if x
        )
        moments.append(Moment(r["outcome_at"], "outcome", text, word=f"outcome_{r['outcome']}"))
    if tk is not None:
        moments.append(Moment(tk.received_at, "ticket_created", f"№ {tk.id}"))
        moments.append(Moment(tk.due_at, "ticket_due", f"№ {tk.id}", on_axis=False))
        if tk.answered_at is not None:
            moments.append(Moment(tk.answered_at, "ticket_answered", f"№ {tk.id}", on_axis=False))
    moments.sort(key=lambda m: (m.at, not m.on_axis))
    spans: list[Span] = []
    start, queued = r.get("started_at"), r.get("queued_at")
    connected, ended = r.get("connected_at"), r.get("ended_at")
    if start is not None:
        ivr_end = queued or connected or ended
        spans.append(Span("ivr", start, ivr_end or now, ivr_end is None))
    if queued is not None:
        q_end = connected or ended
        spans.append(Span("queue", queued, q_end or now, q_end is None))
    if connected is not None:
        spans.append(Span("talk", connected, ended or now, ended is None))
    return spans, moments
