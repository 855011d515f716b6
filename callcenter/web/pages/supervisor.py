"""The supervisor's screens: the live board and the wallboard (htmx fragments refreshed by
``static/js/board.js`` when the push socket says something changed), the call log with its
filters, paging and sorting, one call's timeline and a certificate's page.

Each handler asks one use case of ``services/supervision.py`` and renders; every instant is
shown in Moscow time; the only arithmetic here is where a moment sits on the timeline's axis.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from callcenter.domain.instants import MOSCOW
from callcenter.domain.instants import format_instant as iso
from callcenter.services.call_filters import (
    OUTCOMES,
    ROUTES,
    WINDOW_STATUSES,
    CallFilter,
    parse_call_filters,
)
from callcenter.services.supervision import COUNT_BOUND, call_timeline, route_of
from callcenter.web import views
from callcenter.web.auth import principal
from callcenter.web.i18n import N_
from callcenter.web.keys import CONTAINER
from callcenter.web.pages import gettext_for, language, render

routes = web.RouteTableDef()

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50

# --- board: supervisor's screens ---
#: words built from codes at run time (the extractor sees them here)
BOARD_KEYS = (
    N_("board_compliance"),
    N_("route_queued"),
    N_("route_closed"),
    N_("route_refused"),
    N_("route_abandoned_ivr"),
    N_("route_abandoned_queue"),
    N_("state_logged_out"),
    N_("status_CLOSED"),
    N_("span_ivr"),
    N_("span_queue"),
    N_("span_talk"),
    N_("moment_call_started"),
    N_("moment_certificate_checked"),
    N_("moment_queued"),
    N_("moment_agent_connected"),
    N_("moment_call_ended"),
    N_("moment_window_opened"),
    N_("moment_window_warned"),
    N_("moment_window_extended"),
    N_("moment_window_deadline"),
    N_("moment_window_closed"),
    N_("moment_outcome"),
    N_("moment_ticket_created"),
    N_("moment_ticket_due"),
    N_("moment_ticket_answered"),
    N_("sort_started_at"),
    N_("sort_agent"),
    N_("sort_caller_number"),
    N_("sort_certificate"),
    N_("sort_window_status"),
    N_("sort_outcome"),
    N_("source_call"),
    N_("source_portal"),
    N_("source_voicemail"),
)
#: words only board.js shows
SCRIPT_KEYS = (
    N_("link_connecting"),
    N_("link_online"),
    N_("link_offline"),
    N_("link_session_ended"),
)


def _t(instant: datetime | None, fmt: str = "%H:%M:%S") -> str:
    return instant.astimezone(MOSCOW).strftime(fmt) if instant else "—"


def _day_time(instant: datetime | None) -> str:
    return _t(instant, "%d.%m.%Y %H:%M")


def _duration(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``) of a duration; ``—`` for none."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _since(start: datetime | None, now: datetime) -> float | None:
    return (now - start).total_seconds() if start else None


def _nav(active: str) -> dict:
    return {"nav_active": active}


# --- the board and the wallboard -------------------------------------------------------------


async def _board_context(request: web.Request) -> dict:
    c = request.app[CONTAINER]
    now = c.clock.now()
    board = await c.supervisor.board(now)
    names = {a["login"]: a["display_name"] for a in board.agents if a["display_name"]}
    active = [
        {
            "call_id": r["call_id"],
            "agent": names.get(r["agent_login"])
            or r["agent_login"]
            or r["agent_name"]
            or r["agent"]
            or "—",
            "interface": r["agent"] or "",
            "holder": r["holder_name"] or r["caller_name"] or "",
            "organisation": r["holder_organisation"] or r["organisation"] or "",
            "certificate": r["certificate_number"] or "",
            "caller_number": r["caller_number"] or "",
            "since": iso(r["connected_at"]),
            "elapsed": _duration(_since(r["connected_at"], now)),
            "window": r["board_window"],
            "deadline": _t(r["deadline_at"], "%H:%M"),
        }
        for r in board.active
    ]
    waiting = [
        {
            "call_id": r["call_id"],
            "caller_number": r["caller_number"] or "",
            "certificate": r["certificate_number"] or "",
            "certificate_status": r["certificate_status"],
            "holder": r["holder_name"] or "",
            "since": iso(r["queued_at"]),
            "elapsed": _duration(_since(r["queued_at"], now)),
        }
        for r in board.waiting
    ]
    agents = [
        {**a, "since_text": _t(a["since"], "%H:%M") if a["since"] else ""} for a in board.agents
    ]

    def ticket_row(tk):
        return {
            "id": tk.id,
            "source": tk.source,
            "call_id": tk.call_id,
            "certificate": tk.certificate_number or "",
            "who": tk.full_name or tk.organisation or "",
            "due": _day_time(tk.due_at),
            "late": _duration(_since(tk.due_at, now)),
            "left": _duration((tk.due_at - now).total_seconds()),
        }

    counts = {
        "active": len(active),
        "waiting": len(waiting),
        "warning": sum(1 for a in active if a["window"] == "warning"),
        "overrun": sum(1 for a in active if a["window"] == "overrun"),
        "due_soon": len(board.due_soon),
        "breached": len(board.breached),
        "available": sum(1 for a in agents if a["state"] == "available"),
    }
    return {
        "now_iso": iso(now),
        "now_text": _t(now, "%H:%M"),
        "active": active,
        "waiting": waiting,
        "agents": agents,
        "due_soon": [ticket_row(tk) for tk in board.due_soon],
        "breached": [ticket_row(tk) for tk in board.breached],
        "today": board.today,
        "compliance": board.compliance,
        "counts": counts,
    }


def _script_data(request: web.Request) -> dict:
    lang = language(request)
    _ = gettext_for(lang)[0]
    return {"lang": lang, "words": {k: _(k) for k in SCRIPT_KEYS}}


@routes.get("/supervisor")
async def supervisor_home(request: web.Request) -> web.Response:
    await principal(request)
    raise web.HTTPFound("/supervisor/board")


@routes.get("/supervisor/board")
async def board_page(request: web.Request) -> web.Response:
    await principal(request)
    ctx = await _board_context(request)
    return render(
        request,
        "supervisor/board.html",
        {**ctx, **_nav("board"), "data": _script_data(request), "live_url": request.path + "/live"},
    )


@routes.get("/supervisor/board/live")
async def board_live(request: web.Request) -> web.Response:
    await principal(request)
    return render(request, "supervisor/board_live.html", await _board_context(request))


@routes.get("/supervisor/wallboard")
async def wallboard_page(request: web.Request) -> web.Response:
    await principal(request)
    ctx = await _board_context(request)
    return render(
        request,
        "supervisor/board_wall.html",
        {
            **ctx,
            **_nav("wallboard"),
            "data": _script_data(request),
            "live_url": request.path + "/live",
        },
    )


@routes.get("/supervisor/wallboard/live")
async def wallboard_live(request: web.Request) -> web.Response:
    await principal(request)
    return render(request, "supervisor/board_wall_live.html", await _board_context(request))


# --- history ---------------------------------------------------------------------------------


def _page_args(request: web.Request) -> tuple[int, int]:
    """``size`` one of PAGE_SIZES and ``page`` from 1; anything else is a 422 page."""
    from callcenter.domain.errors import ValidationError

    q, problems = request.query, {}
    size, page = DEFAULT_PAGE_SIZE, 1
    raw = q.get("size", "")
    if raw:
        if raw.isascii() and raw.isdigit() and int(raw) in PAGE_SIZES:
            size = int(raw)
        else:
            problems["size"] = "one of " + ", ".join(map(str, PAGE_SIZES))
    raw = q.get("page", "")
    if raw:
        if raw.isascii() and raw.isdigit() and len(raw) <= 6 and int(raw) >= 1:
            page = int(raw)
        else:
            problems["page"] = "an integer from 1"
    if problems:
        raise ValidationError(
            "; ".join(f"{k} {v}" for k, v in problems.items()),
            code="invalid_query",
            fields=problems,
        )
    return size, page


def history_row(r: dict) -> dict:
    s = views.call_summary(r)
    talk = (
        (r["ended_at"] - r["connected_at"]).total_seconds()
        if r["ended_at"] and r["connected_at"]
        else None
    )
    return {
        **s,
        "started": _day_time(r["started_at"]),
        "agent_login": r.get("agent_login") or "",
        "holder": r.get("holder_name") or r.get("caller_name") or "",
        "organisation": r.get("holder_organisation") or r.get("organisation") or "",
        "talk": _duration(talk),
        "route": route_of(r),
    }


@routes.get("/supervisor/history")
async def history_page(request: web.Request) -> web.Response:
    await principal(request)
    c = request.app[CONTAINER]
    f = parse_call_filters(request.query)
    size, page = _page_args(request)
    result = await c.supervisor.history(f, size, (page - 1) * size)
    more = result.total > COUNT_BOUND  # counted no further: the last page is not known
    pages = max(1, -(-min(result.total, COUNT_BOUND) // size))
    if more:
        pages = max(pages, page + 1) if len(result.items) == size else page
    return render(
        request,
        "supervisor/history.html",
        {
            **_nav("history"),
            "f": f,
            "rows": [history_row(r) for r in result.items],
            "total": result.total,
            "more": more,
            "bound": f"{COUNT_BOUND:,}".replace(",", "\u00a0"),
            "page": page,
            "pages": pages,
            "size": size,
            "sizes": PAGE_SIZES,
            "routes_": ROUTES,
            "window_statuses": WINDOW_STATUSES,
            "outcomes": OUTCOMES,
            "link": _links(f, size),
        },
    )


def _links(f: CallFilter, size: int):
    """Builds the history page's links: same filter, another page or sort."""

    def link(page: int | None = None, sort: str | None = None) -> str:
        extra: dict[str, str] = {}
        if size != DEFAULT_PAGE_SIZE:
            extra["size"] = str(size)
        if sort is not None:
            same = sort == f.sort
            # a click on the sorted column turns it round; another column starts descending
            extra["sort"] = sort if sort != "started_at" else ""
            extra["dir"] = "asc" if same and f.descending else ""
        elif page and page > 1:
            extra["page"] = str(page)
        query = f.query(**extra)
        return "/supervisor/history" + ("?" + query if query else "")

    return link


# --- one call --------------------------------------------------------------------------------

AXIS_WIDTH = 1000


@routes.get("/supervisor/calls/{call_id}")
async def call_page(request: web.Request) -> web.Response:
    await principal(request)
    c = request.app[CONTAINER]
    now = c.clock.now()
    detail, cert = await c.supervisor.call(request.match_info["call_id"])
    spans, moments = call_timeline(detail, now)
    on_axis = [m.at for m in moments if m.on_axis] + [s.end for s in spans]
    start = min(on_axis) if on_axis else now
    end = max(on_axis) if on_axis else now
    width = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return round(AXIS_WIDTH * (at - start).total_seconds() / width, 1)

    r = detail.call
    call = views.call_json(detail, now)
    owner = await c.desk.owner(r["call_id"]) if r.get("agent") else None
    marks = _marks([x(m.at) for m in moments if m.on_axis], [m.kind for m in moments if m.on_axis])
    ticks = [
        {"x": x(start), "text": _t(start)},
        {"x": AXIS_WIDTH, "text": _t(end)},
    ]
    return render(
        request,
        "supervisor/call.html",
        {
            **_nav("history"),
            "call": call,
            "row": history_row(
                {
                    **r,
                    "window_status": call["window_status"],
                    "deadline_at": None,
                    "holder_name": cert.holder_name if cert else None,
                    "holder_organisation": cert.organisation if cert else None,
                    "agent_login": owner,
                }
            ),
            "spans": [
                {
                    "kind": s.kind,
                    "x": x(s.start),
                    "w": max(x(s.end) - x(s.start), 2),
                    "length": _duration((s.end - s.start).total_seconds()),
                    "open": s.open_ended,
                    "labelled": x(s.end) - x(s.start) >= AXIS_WIDTH * 0.12,
                }
                for s in spans
            ],
            "marks": marks,
            "durations": {k: _duration(call["timings"][f"{k}_seconds"]) for k in ("ivr", "talk")}
            | {"queue": _duration(call["timings"]["queue_wait_seconds"])},
            "ticks": ticks,
            "axis_width": AXIS_WIDTH,
            "moments": [
                {
                    "at": _t(m.at) if m.on_axis else _day_time(m.at),
                    "offset": "+" + _duration((m.at - start).total_seconds()) if m.on_axis else "",
                    "kind": m.kind,
                    "detail": m.detail,
                    "word": m.word,
                    "on_axis": m.on_axis,
                }
                for m in moments
            ],
            "ticket": detail.ticket,
            "ticket_due": _day_time(detail.ticket.due_at) if detail.ticket else "",
            "ticket_received": _day_time(detail.ticket.received_at) if detail.ticket else "",
            "ticket_answered": _day_time(detail.ticket.answered_at) if detail.ticket else "",
            "ticket_status": detail.ticket.state_at(now) if detail.ticket else "",
        },
    )


def _marks(xs: list[float], kinds: list[str]) -> list[dict]:
    """The numbered marks on the axis: moments closer than 3 % of it share one mark, named
    by the range of their numbers in the list below ("1–5"); neighbours alternate rows."""
    groups: list[dict] = []
    for n, (pos, kind) in enumerate(zip(xs, kinds, strict=True), start=1):
        if groups and pos - groups[-1]["x"] < AXIS_WIDTH * 0.03:
            groups[-1]["last"] = n
            continue
        groups.append({"x": pos, "kind": kind, "first": n, "last": n})
    for i, g in enumerate(groups):
        g["label"] = str(g["first"]) if g["first"] == g["last"] else f"{g['first']}–{g['last']}"
        g["row"] = i % 2
    return groups


# --- one certificate -------------------------------------------------------------------------


@routes.get("/supervisor/certificates/{number}")
async def certificate_page(request: web.Request) -> web.Response:
    await principal(request)
    c = request.app[CONTAINER]
    now = c.clock.now()
    number = request.match_info["number"]
    found = await c.supervisor.certificate(number)
    cert = views.certificate_json(found.certificate, None, now) if found.certificate else None
    return render(
        request,
        "supervisor/certificate.html",
        {
            **_nav("history"),
            "number": number,
            "cert": cert,
            "valid_from": found.certificate.valid_from.strftime("%d.%m.%Y")
            if found.certificate
            else "",
            "valid_to": found.certificate.valid_to.strftime("%d.%m.%Y")
            if found.certificate
            else "",
            "calls": [history_row(r) for r in found.calls],
            "tickets": [
                {
                    "id": tk.id,
                    "source": tk.source,
                    "call_id": tk.call_id,
                    "received": _day_time(tk.received_at),
                    "due": _day_time(tk.due_at),
                    "answered": _day_time(tk.answered_at),
                    "status": tk.state_at(now),
                    "description": tk.description,
                }
                for tk in found.tickets
            ],
            "history_link": "/supervisor/history?" + CallFilter(certificate=number).query(),
        },
    )
