"""Written tickets for agents and supervisors: the list (calls, portal and voicemail side by
side) and one ticket with its answer form, its helpdesk link and, for a voicemail ticket,
the caller's recording (``GET /api/v1/tickets/{id}/recording``, played by the browser).

The same use cases as the JSON API (``TicketService.search``, ``get``, ``answer``); the form
posts a plain HTML form (CSRF: ``web/csrf.py``'s Origin check) and comes back to the ticket.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from callcenter.domain.errors import ValidationError
from callcenter.domain.instants import MOSCOW
from callcenter.domain.wording import due_words_en, due_words_ru
from callcenter.web.i18n import N_
from callcenter.web.keys import CONTAINER
from callcenter.web.pages import language, render
from callcenter.web.pages.forms import read_form

routes = web.RouteTableDef()

STATUSES = ("open", "overdue", "answered", "withdrawn")
SOURCES = ("call", "portal", "voicemail")
SOURCE_KEYS = (N_("source_call"), N_("source_portal"), N_("source_voicemail"))
ANSWER_SOURCE_KEYS = (N_("answer_source_helpdesk"), N_("answer_source_here"))
PAGE_SIZE = 50
ANSWER_REQUIRED = N_("ticket_answer_required")
ANSWER_LIMIT = 20_000


def _when(instant: datetime | None) -> str:
    return instant.astimezone(MOSCOW).strftime("%d.%m.%Y %H:%M") if instant else "—"


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query.get(name) or None
    if value is not None and value not in allowed:
        raise ValidationError(
            f"{name} must be one of {', '.join(allowed)}",
            code="invalid_query",
            fields={name: "unknown value"},
        )
    return value


def _offset(request: web.Request) -> int:
    raw = request.query.get("offset", "0")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise ValidationError(
            "offset must be a whole number", code="invalid_query", fields={"offset": "not a number"}
        )
    return int(raw)


def _row(ticket, now: datetime, lang: str) -> dict:
    facts = ticket.facts(now)
    words = due_words_ru if lang == "ru" else due_words_en
    return {
        **facts,
        "received": _when(ticket.received_at),
        "due": _when(ticket.due_at),
        "due_words": words(ticket.due_at),
        "answered": _when(ticket.answered_at),
    }


@routes.get("/tickets")
async def tickets_page(request: web.Request) -> web.Response:
    status = _choice(request, "status", STATUSES)
    source = _choice(request, "source", SOURCES)
    offset = _offset(request)
    c = request.app[CONTAINER]
    now = c.clock.now()
    page = await c.tickets.search(now, status=status, source=source, limit=PAGE_SIZE, offset=offset)
    lang = language(request)
    return render(
        request,
        "tickets/list.html",
        {
            "rows": [_row(t, now, lang) for t in page.items],
            "total": page.total,
            "offset": offset,
            "size": PAGE_SIZE,
            "status": status or "",
            "source": source or "",
            "statuses": STATUSES,
            "sources": SOURCES,
        },
    )


def _ticket_id(request: web.Request) -> int:
    raw = request.match_info["ticket_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValidationError(
            "ticket id must be a number", code="invalid_ticket_id", fields={"ticket_id": raw}
        )
    return int(raw)


async def _ticket_page(request: web.Request, error: str = "", text: str = "", status: int = 200):
    c = request.app[CONTAINER]
    now = c.clock.now()
    ticket = await c.tickets.get(_ticket_id(request))
    return render(
        request,
        "tickets/ticket.html",
        {"t": _row(ticket, now, language(request)), "error": error, "text": text},
        status,
    )


@routes.get("/tickets/{ticket_id}")
async def ticket_page(request: web.Request) -> web.Response:
    return await _ticket_page(request)


@routes.post("/tickets/{ticket_id}/answer")
async def answer(request: web.Request) -> web.Response:
    form = await read_form(request, "answer", limit=ANSWER_LIMIT)
    tid = _ticket_id(request)
    if not form["answer"].strip():
        return await _ticket_page(request, ANSWER_REQUIRED, form["answer"], 422)
    c = request.app[CONTAINER]
    await c.tickets.answer(tid, form["answer"], c.clock.now())
    return web.Response(status=303, headers={"Location": f"/tickets/{tid}?answered=1"})
