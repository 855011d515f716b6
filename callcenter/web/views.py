"""JSON views of the read models: the wire shape of calls, tickets, pages and pushes.

Every instant leaves in Moscow time with its offset (``format_instant``).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from callcenter.domain.calls import CallRecord, OralWindow, Ticket
from callcenter.domain.instants import MOSCOW
from callcenter.domain.instants import format_instant as iso
from callcenter.services.read_models import CallDetail, Page


def ticket_json(tk: Ticket, now: datetime) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in tk.facts(now).items()}


def _seconds(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def call_summary(r: dict) -> dict:
    return {
        "call_id": r["call_id"],
        "caller_number": r["caller_number"],
        "certificate": r["certificate_number"],
        "certificate_status": r["certificate_status"],
        "agent": r["agent"],
        "started_at": iso(r["started_at"]),
        "connected_at": iso(r["connected_at"]),
        "ended_at": iso(r["ended_at"]),
        "abandoned": r["abandoned"],
        "outcome": r["outcome"],
        "window_status": r.get("window_status"),
        "deadline_at": iso(r.get("deadline_at")),
    }


def window_json(win: OralWindow, now: datetime) -> dict[str, Any]:
    return {
        "opened_at": iso(win.opened_at),
        "deadline_at": iso(win.deadline_at),
        "warn_at": iso(win.warn_at),
        "warned_at": iso(win.warned_at),
        "status": win.status.value,
        "closed_at": iso(win.closed_at),
        "length_seconds": win.length_seconds,
        "policy_id": win.policy_id,
        "remaining_seconds": max(0.0, (win.deadline_at - now).total_seconds())
        if win.status.running
        else 0.0,
        "extensions": [
            {"at": iso(x.at), "seconds": x.seconds, "reason": x.reason, "by": x.by}
            for x in win.extensions
        ],
    }


def call_json(detail: CallDetail, now: datetime) -> dict[str, Any]:
    r, win, ticket = detail.call, detail.window, detail.ticket
    rec = CallRecord(**{f.name: r[f.name] for f in fields(CallRecord)})
    return {
        **call_summary(
            {
                **r,
                "window_status": win.status.value if win else None,
                "deadline_at": win.deadline_at if win else None,
            }
        ),
        "channel": r["channel"],
        "attempts": r["attempts"],
        "queue": r["queue"],
        "queued_at": iso(r["queued_at"]),
        "agent_name": r["agent_name"],
        "hangup_by": r["hangup_by"],
        "hangup_cause": r["hangup_cause"],
        "caller_name": r["caller_name"],
        "organisation": r["organisation"],
        "description": r["description"],
        "category": r["category"],
        "outcome_reason": r["outcome_reason"],
        "outcome_note": r["outcome_note"],
        "outcome_at": iso(r["outcome_at"]),
        "outcome_by": r["outcome_by"],
        "timings": {
            "ivr_seconds": _seconds(rec.ivr_seconds),
            "queue_wait_seconds": _seconds(rec.queue_wait_seconds),
            "talk_seconds": _seconds(rec.talk_seconds),
        },
        "window": window_json(win, now) if win is not None else None,
        "ticket": ticket_json(ticket, now) if ticket else None,
        "events": [{**e.to_dict(), "at": iso(e.at)} for e in detail.events],
    }


def page_json(page: Page, render) -> dict[str, Any]:
    """The one paging envelope of every listing."""
    return {
        "items": [render(item) for item in page.items],
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    }


def review_json(r: dict) -> dict[str, Any]:
    return {**r, "created_at": iso(r["created_at"]), "resolved_at": iso(r["resolved_at"])}


def note_json(note: dict[str, Any]) -> dict[str, Any]:
    """A pushed note with its instants as the API gives them (internal ``_`` keys left out)."""
    return {
        k: iso(v) if isinstance(v, datetime) else v
        for k, v in note.items()
        if not k.startswith("_")
    }


# --- the agent's desk (docs/agent-screen.md) -------------------------------------------------


def state_json(state) -> dict[str, Any]:
    return {"state": state.state, "reason": state.reason, "since": iso(state.since)}


def certificate_json(cert, caller_number: str | None, now: datetime) -> dict[str, Any]:
    from callcenter.domain.certificates import ALL_SERVICES, SERVICE_TITLES, normalize_phone

    pv = cert.product_version
    caller = normalize_phone(caller_number or "") if caller_number else None
    today = now.astimezone(MOSCOW).date()
    return {
        "number": cert.number,
        "holder_type": cert.holder_type.value,
        "holder_name": cert.holder_name,
        "organisation": cert.organisation,
        "valid_from": cert.valid_from.isoformat(),
        "valid_to": cert.valid_to.isoformat(),
        "days_left": max(0, (cert.valid_to - today).days),
        "status": cert.status_on(today).value,
        "product": cert.product,
        "version": str(pv.version) if pv else cert.version,
        "build": pv.build if pv else None,
        "version_string": cert.version,
        "version_note": (
            f"build updates of {pv.version} only, not a move to another version (R-4)"
            if pv
            else "build updates of the version in use only, not a move to another one (R-4)"
        ),
        "services": [
            {
                "code": s.value,
                "title": SERVICE_TITLES[s][0],
                "title_en": SERVICE_TITLES[s][1],
                "covered": s in cert.services,
            }
            for s in ALL_SERVICES
        ],
        "contacts": [
            {
                "full_name": ct.full_name,
                "phone": ct.phone,
                "is_caller": caller is not None and ct.phone == caller,
            }
            for ct in cert.contacts
        ],
    }


def pop_json(pop, now: datetime) -> dict[str, Any]:
    r, win, ticket = pop.detail.call, pop.detail.window, pop.detail.ticket
    tk = None
    if ticket is not None:
        tk = ticket_json(ticket, now)
        tk["due_words_ru"], tk["due_words_en"] = pop.due_words or (None, None)
    return {
        "call_id": r["call_id"],
        "caller_number": r["caller_number"],
        "agent": r["agent"],
        "started_at": iso(r["started_at"]),
        "connected_at": iso(r["connected_at"]),
        "ended_at": iso(r["ended_at"]),
        "certificate_number": r["certificate_number"],
        "certificate_status": r["certificate_status"],
        "certificate": certificate_json(pop.certificate, r["caller_number"], now)
        if pop.certificate is not None
        else None,
        "identity": {
            "caller_name": r["caller_name"],
            "organisation": r["organisation"],
            "check": r.get("identity_check"),
        },
        "category": r["category"],
        "subject": r.get("subject") or "",
        "description": r["description"],
        "window": window_json(win, now) if win is not None else None,
        "outcome": r["outcome"],
        "outcome_reason": r["outcome_reason"],
        "ticket": tk,
        "last_calls": [
            {
                "call_id": x["call_id"],
                "started_at": iso(x["started_at"]),
                "agent": x["agent"],
                "window_status": x["window_status"],
                "outcome": x["outcome"],
            }
            for x in pop.last_calls
        ],
        "open_tickets": [
            {
                "id": x.id,
                "received_at": iso(x.received_at),
                "due_at": iso(x.due_at),
                "status": x.state_at(now),
                "description": x.description,
            }
            for x in pop.open_tickets
        ],
    }


def desk_json(desk) -> dict[str, Any]:
    return {
        "now": iso(desk.now),
        "agent": {
            "login": desk.login,
            "display_name": desk.display_name,
            "interfaces": desk.interfaces,
            "state": state_json(desk.state),
            "pause": {"available": desk.pause_available, "why": desk.pause_why},
        },
        "call": pop_json(desk.call, desk.now) if desk.call is not None else None,
    }


def user_json(u, interfaces: list[str]) -> dict[str, Any]:
    return {
        "login": u.login,
        "display_name": u.display_name,
        "role": u.role,
        "created_at": iso(u.created_at),
        "disabled_at": iso(u.disabled_at),
        "interfaces": interfaces,
    }
