"""The agent's desk: a server-rendered shell that ``static/js/agent.js`` brings to life.

The shell carries the labels (in the visitor's language) and, in a JSON data block, the words
the script needs; everything about the call comes from the push socket's ``desk`` frame and
the JSON API (``docs/agent-screen.md``). The page computes no deadline: it shows the
service's ``deadline_at``, ``warn_at`` and ``due_words_*``.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from callcenter.domain.calls import REFUSAL_REASONS, SERVICE_CATEGORIES
from callcenter.domain.instants import MOSCOW
from callcenter.web import views
from callcenter.web.auth import principal
from callcenter.web.i18n import N_
from callcenter.web.keys import CONTAINER
from callcenter.web.pages import gettext_for, language, render, vocabulary

routes = web.RouteTableDef()

#: words only the script shows
SCRIPT_KEYS = (
    N_("link_connecting"),
    N_("link_online"),
    N_("link_offline"),
    N_("link_session_ended"),
    N_("countdown_running"),
    N_("countdown_warning"),
    N_("countdown_overrun"),
    N_("countdown_stopped"),
    N_("countdown_deadline"),
    N_("cert_days_left"),
    N_("cert_expired_days"),
    N_("cert_covered"),
    N_("cert_not_covered"),
    N_("cert_is_caller"),
    N_("cert_no_contacts"),
    N_("cert_organisation"),
    N_("cert_acting_for"),
    N_("none_yet"),
    N_("saved"),
    N_("done_ok"),
    N_("abuse_note_required"),
    N_("need_description"),
    N_("ended_at"),
    N_("pause_unavailable_no_ami"),
    N_("ticket_due_at"),
    N_("call_ended_wrapup"),
    N_("cert_version_note"),
    N_("cert_version_build"),
    N_("pause_reason_default"),
)


def script_words(lang: str) -> dict[str, str]:
    _ = gettext_for(lang)[0]
    keys = (
        *SCRIPT_KEYS,
        *vocabulary.STATUS_KEYS,
        *vocabulary.WINDOW_KEYS,
        *vocabulary.OUTCOME_KEYS,
        *vocabulary.TICKET_KEYS,
        *vocabulary.STATE_KEYS,
        *vocabulary.CATEGORY_KEYS,
        *vocabulary.REFUSAL_KEYS,
        *vocabulary.API_ERROR_KEYS,
    )
    return {key: _(key) for key in keys}


@routes.get("/agent")
async def agent_page(request: web.Request) -> web.Response:
    who = await principal(request)
    lang = language(request)
    data = {"login": who.name, "role": who.role, "lang": lang, "words": script_words(lang)}
    return render(
        request,
        "agent/page.html",
        {"data": data, "categories": SERVICE_CATEGORIES, "refusal_reasons": REFUSAL_REASONS},
    )


def _hhmm(instant: datetime | None) -> str:
    return instant.astimezone(MOSCOW).strftime("%H:%M") if instant else "—"


def _day_time(instant: datetime | None) -> str:
    return instant.astimezone(MOSCOW).strftime("%d.%m %H:%M") if instant else "—"


@routes.get("/agent/list")
async def agent_list(request: web.Request) -> web.Response:
    """The agent's own calls of today and the tickets of their calls (an htmx fragment,
    refreshed by the page when a call ends or a ticket is created): the same use cases and
    views as ``GET /api/v1/agent/calls`` and ``/api/v1/agent/tickets``."""
    who = await principal(request)
    c = request.app[CONTAINER]
    now = c.clock.now()
    rows = await c.desk.calls_of(who.name, now.astimezone(MOSCOW).date(), now)
    calls = []
    for row in rows:
        summary = views.call_summary(row)
        status = "abandoned" if summary["abandoned"] else summary["window_status"]
        calls.append({**summary, "time": _hhmm(row["started_at"]), "window_status": status})
    tickets = [
        {**views.ticket_json(t, now), "due": _day_time(t.due_at)}
        for t in await c.desk.tickets_of(who.name)
    ]
    return render(request, "agent/list.html", {"calls": calls, "tickets": tickets})
