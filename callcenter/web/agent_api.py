"""The agent's desk over HTTP (docs/agent-screen.md): users and their interfaces, the desk,
pause state, wrap-up, the number the caller dictates, the agent's own lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from aiohttp import web

from callcenter.domain.errors import ValidationError
from callcenter.domain.instants import MOSCOW
from callcenter.web import views
from callcenter.web.auth import require
from callcenter.web.errors import json_response, read_json
from callcenter.web.keys import CONTAINER
from callcenter.web.schemas import Text, parse, rule

routes = web.RouteTableDef()


@dataclass(frozen=True)
class Interfaces:
    """PUT /api/v1/users/{login}/interfaces (each interface is checked by the use case)."""

    interfaces: list | None = None


@dataclass(frozen=True)
class PauseBody:
    """PUT /api/v1/agent/state."""

    paused: bool | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CertificateBody:
    """POST /api/v1/calls/{call_id}/certificate: the number the caller dictates."""

    number: str | None = rule(Text(64, required=True))


def _exact(body: dict, allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise ValidationError(
            "; ".join(f"{k} is not accepted here" for k in extra),
            code="invalid_request",
            fields={k: "is not accepted here" for k in extra},
        )


# --- users (admin) ---------------------------------------------------------------------------


@routes.get("/api/v1/users")
async def list_users(request: web.Request) -> web.Response:
    await require(request, "users:admin")
    c = request.app[CONTAINER]
    users = await c.auth.users()
    interfaces = await c.desk.all_interfaces()
    return json_response(
        {"items": [views.user_json(u, interfaces.get(u.login, [])) for u in users]}
    )


@routes.put("/api/v1/users/{login}/interfaces")
async def set_interfaces(request: web.Request) -> web.Response:
    await require(request, "users:admin")
    c = request.app[CONTAINER]
    body = await read_json(request)
    _exact(body, {"interfaces"})
    if not isinstance(body.get("interfaces"), list):
        raise ValidationError(
            "interfaces must be a list of interfaces like PJSIP/101",
            code="invalid_request",
            fields={"interfaces": "must be a list"},
        )
    login = request.match_info["login"]
    found = await c.desk.set_interfaces(login, body["interfaces"], c.clock.now())
    return json_response({"login": login, "interfaces": found})


# --- the agent's own desk --------------------------------------------------------------------


@routes.get("/api/v1/agent/desk")
async def desk(request: web.Request) -> web.Response:
    who = await require(request, "desk")
    c = request.app[CONTAINER]
    return json_response(views.desk_json(await c.desk.desk(who.name, c.clock.now())))


@routes.put("/api/v1/agent/state")
async def agent_state(request: web.Request) -> web.Response:
    who = await require(request, "desk")
    c = request.app[CONTAINER]
    body = await read_json(request)
    _exact(body, {"paused", "reason"})
    problems = {}
    if not isinstance(body.get("paused"), bool):
        problems["paused"] = "must be true or false"
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 200):
        problems["reason"] = "must be text of at most 200 characters"
    if problems:
        raise ValidationError(
            "; ".join(f"{k} {v}" for k, v in problems.items()),
            code="invalid_request",
            fields=problems,
        )
    state = await c.desk.set_pause(who.name, body["paused"], reason, c.clock.now())
    return json_response({"state": views.state_json(state)})


@routes.post("/api/v1/agent/wrapup/done")
async def wrapup_done(request: web.Request) -> web.Response:
    who = await require(request, "desk")
    c = request.app[CONTAINER]
    _exact(await read_json(request), set())
    now = c.clock.now()
    call_id = await c.desk.wrapup_done(who.name, now)
    state = await c.desk.state(who.name, now)
    return json_response({"call_id": call_id, "state": views.state_json(state)})


@routes.get("/api/v1/agent/calls")
async def agent_calls(request: web.Request) -> web.Response:
    who = await require(request, "desk")
    c = request.app[CONTAINER]
    now = c.clock.now()
    raw = request.query.get("day")
    if raw:
        try:
            day = date.fromisoformat(raw) if len(raw) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise ValidationError(
                "day must be a date like 2026-03-17",
                code="invalid_query",
                fields={"day": "must be a date (YYYY-MM-DD)"},
            )
    else:
        day = now.astimezone(MOSCOW).date()
    rows = await c.desk.calls_of(who.name, day, now)
    return json_response({"day": day.isoformat(), "items": [views.call_summary(r) for r in rows]})


@routes.get("/api/v1/agent/tickets")
async def agent_tickets(request: web.Request) -> web.Response:
    who = await require(request, "desk")
    c = request.app[CONTAINER]
    now = c.clock.now()
    tickets = await c.desk.tickets_of(who.name)
    items = []
    for tk in tickets:
        from callcenter.domain.wording import due_words_en, due_words_ru

        items.append(
            {
                **views.ticket_json(tk, now),
                "due_words_ru": due_words_ru(tk.due_at),
                "due_words_en": due_words_en(tk.due_at),
            }
        )
    return json_response({"items": items})


@routes.post("/api/v1/calls/{call_id}/certificate")
async def call_certificate(request: web.Request) -> web.Response:
    """The agent types the number the caller dictates (UNVERIFIED or UNKNOWN calls)."""
    who = await require(request, "calls:act")
    c = request.app[CONTAINER]
    call_id = request.match_info["call_id"]
    await c.desk.guard(who.name, who.role, call_id)
    body = parse(CertificateBody, await read_json(request))
    now = c.clock.now()
    pop = await c.desk.check_certificate(call_id, body.number.strip(), c.ivr, c.calls, now)
    return json_response(views.pop_json(pop, now))
