"""The supervisor's reports page, the CSV exports (a report, the filtered call log) and the
review of abuse cases and complaints (R-12).

Exports are streamed: a UTF-8 byte-order mark (so that Excel reads Cyrillic), the column names
in the visitor's language, then the rows as the database hands them over in batches, so a
million calls take no more memory than a thousand. ``sep=semicolon`` (the default: what
Excel expects where the decimal mark is a comma) or ``sep=comma``.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from aiohttp import web

from callcenter.calendar import MOSCOW
from callcenter.domain.errors import ValidationError
from callcenter.services.call_filters import parse_call_filters
from callcenter.services.reports import (
    DECISIONS,
    FIGURES,
    REVIEW_FIGURES,
    TICKET_FIGURES,
    Period,
    Report,
    parse_period,
)
from callcenter.web.auth import principal
from callcenter.web.i18n import N_
from callcenter.web.keys import CONTAINER
from callcenter.web.pages import gettext_for, language, render
from callcenter.web.pages.forms import read_form

routes = web.RouteTableDef()

HISTORY = "/supervisor/history"
#: the report's sections as the page shows them: (title key, figures)
SECTIONS = (
    (
        N_("rep_section_calls"),
        ("offered", "answered", "queued", "abandoned_ivr", "abandoned_queue", "refused", "closed"),
    ),
    (
        N_("rep_section_window"),
        ("windows", "met", "extended", "overrun", "escalated", "within_pct"),
    ),
    (
        N_("rep_section_queue"),
        ("service_level_pct", "asa", "aht", "p90", "abandon_rate_pct"),
    ),
    (N_("rep_section_tickets"), TICKET_FIGURES),
    (N_("rep_section_reviews"), REVIEW_FIGURES),
)
FIGURE_KEYS = (
    N_("rep_offered"),
    N_("rep_answered"),
    N_("rep_queued"),
    N_("rep_abandoned_ivr"),
    N_("rep_abandoned_queue"),
    N_("rep_refused"),
    N_("rep_closed"),
    N_("rep_windows"),
    N_("rep_met"),
    N_("rep_extended"),
    N_("rep_overrun"),
    N_("rep_escalated"),
    N_("rep_within_pct"),
    N_("rep_service_level_pct"),
    N_("rep_asa"),
    N_("rep_aht"),
    N_("rep_p90"),
    N_("rep_abandon_rate_pct"),
    N_("rep_tickets_call"),
    N_("rep_tickets_portal"),
    N_("rep_tickets_voicemail"),
    N_("rep_answered_in_time"),
    N_("rep_breached"),
    N_("rep_due_soon"),
    N_("rep_median_hours"),
    N_("rep_abuse"),
    N_("rep_complaints"),
)
assert {k.removeprefix("rep_") for k in FIGURE_KEYS} == set(FIGURES)
#: the call-log filter behind a figure (the history page shows those calls); a figure with no
#: filter of its own (answered, queued: abandoned in the queue included) is not a link
FIGURE_FILTERS = {
    "offered": {},
    "abandoned_ivr": {"route": "abandoned_ivr"},
    "abandoned_queue": {"route": "abandoned_queue"},
    "refused": {"route": "refused"},
    "closed": {"route": "closed"},
    "met": {"window": "met"},
    "overrun": {"window": "overrun"},
    "escalated": {"window": "escalated"},
}
#: the words the charts' script shows
CHART_WORDS = (
    N_("chart_calls"),
    N_("chart_talk"),
    N_("chart_tickets"),
    N_("chart_heatmap"),
    N_("chart_minutes"),
    N_("chart_window_line"),
    N_("chart_calls_axis"),
    N_("chart_weekdays"),
    "rep_offered",
    "rep_answered",
    "rep_escalated",
    "rep_overrun",
    "rep_answered_in_time",
    "rep_breached",
)
CALL_COLUMNS = (
    N_("csv_call_id"),
    N_("csv_started_at"),
    N_("csv_caller_number"),
    N_("csv_certificate"),
    N_("csv_certificate_status"),
    N_("csv_organisation"),
    N_("csv_caller_name"),
    N_("csv_agent"),
    N_("csv_route"),
    N_("csv_wait_seconds"),
    N_("csv_talk_seconds"),
    N_("csv_window_status"),
    N_("csv_outcome"),
)
_SEPARATORS = {"semicolon": ";", "comma": ","}
_FLUSH_ROWS = 500


def _group_bounds(period: Period, key: str) -> dict[str, str]:
    """The history filter of one report row: its day, its week or its agent."""
    if period.by == "agent":
        return {"from": period.first.isoformat(), "to": period.last.isoformat(), "agent": key}
    first = date.fromisoformat(key)
    last = first + timedelta(days=6 if period.by == "week" else 0)
    return {"from": max(first, period.first).isoformat(), "to": min(last, period.last).isoformat()}


def figure_link(period: Period, key: str | None, figure: str) -> str | None:
    """Where a figure's calls are listed; None for a figure that is not a set of calls."""
    if figure not in FIGURE_FILTERS:
        return None
    if key is None:
        bounds = {"from": period.first.isoformat(), "to": period.last.isoformat()}
    elif period.by == "agent" and not key:
        return None  # calls no agent took cannot be filtered by "no agent"
    else:
        bounds = _group_bounds(period, key)
    return HISTORY + "?" + urlencode({**bounds, **FIGURE_FILTERS[figure]})


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


@routes.get("/supervisor/reports")
async def reports_page(request: web.Request) -> web.Response:
    c = request.app[CONTAINER]
    period = parse_period(request.query, c.reports.today())
    report = await c.reports.report(period, heatmap=True)
    charts = await c.reports.charts(report)
    gettext, _n = gettext_for(language(request))
    query = {
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "by": period.by,
        "threshold": str(period.threshold),
    }
    chart_data = {
        "keys": [r.key or "—" for r in report.rows],
        "offered": [r.figures["offered"] for r in report.rows],
        "answered": [r.figures["answered"] for r in report.rows],
        "escalated": [r.figures["escalated"] for r in report.rows],
        "overrun": [r.figures["overrun"] for r in report.rows],
        "in_time": [r.figures["answered_in_time"] for r in report.rows],
        "breached": [r.figures["breached"] for r in report.rows],
        "talk_minutes": charts["talk_minutes"],
        "heatmap": charts["heatmap"],
        "window_minutes": 10,
        "words": {name: gettext(name) for name in CHART_WORDS},
    }
    return render(
        request,
        "supervisor/reports.html",
        {
            "report": report,
            "period": period,
            "sections": SECTIONS,
            "link": lambda key, fig: figure_link(period, key, fig),
            "fmt": _fmt,
            "query": query,
            "export_semicolon": "/supervisor/reports.csv?" + urlencode(query),
            "export_comma": "/supervisor/reports.csv?" + urlencode({**query, "sep": "comma"}),
            "chart_data": chart_data,
            "generated": report.generated_at.astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M"),
            "nav_active": "reports",
        },
    )


def _separator(request: web.Request) -> str:
    raw = request.query.get("sep") or "semicolon"
    if raw not in _SEPARATORS:
        raise ValidationError(
            "sep must be semicolon or comma",
            code="invalid_query",
            fields={"sep": "must be semicolon or comma"},
        )
    return _SEPARATORS[raw]


def safe_cell(value) -> str:
    """A cell as text; text that a spreadsheet would run as a formula is quoted with ``'``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value)
    if text[:1] in ("=", "@", "\t", "\r") or (text[:1] in ("+", "-") and not text[1:2].isdigit()):
        return "'" + text
    return text


class _CsvStream:
    """Rows written through ``csv`` into a small buffer, sent every few hundred rows."""

    def __init__(self, response: web.StreamResponse, sep: str) -> None:
        self.response = response
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, delimiter=sep, lineterminator="\r\n")
        self.pending = 0

    async def row(self, cells) -> None:
        self.writer.writerow([safe_cell(v) for v in cells])
        self.pending += 1
        if self.pending >= _FLUSH_ROWS:
            await self.flush()

    async def flush(self) -> None:
        if self.buffer.tell():
            await self.response.write(self.buffer.getvalue().encode("utf-8"))
            self.buffer.seek(0)
            self.buffer.truncate()
        self.pending = 0


async def _start_csv(request: web.Request, filename: str) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    await response.write("\ufeff".encode())
    return response


def _seconds(a: datetime | None, b: datetime | None) -> int | None:
    return round((a - b).total_seconds()) if a and b else None


@routes.get("/supervisor/history.csv")
async def export_calls(request: web.Request) -> web.StreamResponse:
    """The filtered call log, in the history page's order."""
    c = request.app[CONTAINER]
    f = parse_call_filters(request.query)
    sep = _separator(request)
    gettext, _n = gettext_for(language(request))
    response = await _start_csv(request, "calls.csv")
    out = _CsvStream(response, sep)
    await out.row([gettext(k) for k in CALL_COLUMNS])
    async for r in c.reports.stream_calls(f):
        await out.row(
            [
                r["call_id"],
                r["started_at"],
                r["caller_number"],
                r["certificate_number"],
                r["certificate_status"],
                r["organisation"],
                r["caller_name"],
                r["agent"],
                r["route"],
                _seconds(r["connected_at"], r["queued_at"]),
                _seconds(r["ended_at"], r["connected_at"]),
                r["window_status"],
                r["outcome"],
            ]
        )
    await out.flush()
    await response.write_eof()
    return response


def _report_rows(report: Report, tr):
    by = report.period.by
    head = [tr("rep_group_" + by)] + [tr("rep_" + f) for f in FIGURES]
    head.append(tr("rep_refused_by"))
    yield head
    for r in [*report.rows, report.total]:
        label = r.key if r is not report.total else tr("rep_total")
        if r is not report.total and by == "agent" and not r.key:
            label = tr("rep_no_agent")
        refused = ", ".join(f"{tr('status_' + s)}: {n}" for s, n in sorted(r.refused_by.items()))
        yield [label, *(r.figures[f] for f in FIGURES), refused]


@routes.get("/supervisor/reports.csv")
async def export_report(request: web.Request) -> web.StreamResponse:
    c = request.app[CONTAINER]
    period = parse_period(request.query, c.reports.today())
    sep = _separator(request)
    report = await c.reports.report(period)
    gettext, _n = gettext_for(language(request))
    name = f"report-{period.by}-{period.first}-{period.last}.csv"
    response = await _start_csv(request, name)
    out = _CsvStream(response, sep)
    for cells in _report_rows(report, gettext):
        await out.row(cells)
    await out.flush()
    await response.write_eof()
    return response


GROUP_KEYS = (N_("rep_group_day"), N_("rep_group_week"), N_("rep_group_agent"))


# --- abuse and complaints (R-12) --------------------------------------------------------------

DECISION_KEYS = (
    N_("review_decision_upheld"),
    N_("review_decision_dismissed"),
    N_("review_decision_talked_to_agent"),
    N_("review_decision_caller_warned"),
)
KIND_KEYS = (N_("review_kind_abuse"), N_("review_kind_complaint"))


@routes.get("/supervisor/reviews")
async def reviews_page(request: web.Request) -> web.Response:
    c = request.app[CONTAINER]
    show_all = request.query.get("all") == "1"
    rows = await c.reviews.list(pending_only=not show_all)
    for r in rows:
        r["created"] = r["created_at"].astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M")
        at = r["reviewed_at"]
        r["reviewed"] = at.astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M") if at else ""
    return render(
        request,
        "supervisor/reviews.html",
        {
            "rows": rows,
            "show_all": show_all,
            "decisions": DECISIONS,
            "done": request.query.get("done") or "",
            "nav_active": "reviews",
        },
    )


@routes.post("/supervisor/reviews/{review_id}")
async def review_decide(request: web.Request) -> web.Response:
    raw = request.match_info["review_id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise ValidationError(
            "review_id must be a number", code="invalid_path", fields={"review_id": "a number"}
        )
    form = await read_form(request, "decision", "note", limit=2000)
    who = await principal(request)
    await request.app[CONTAINER].reviews.decide(int(raw), form["decision"], form["note"], who.name)
    raise web.HTTPSeeOther(f"/supervisor/reviews?done={int(raw)}")
