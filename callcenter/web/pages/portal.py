"""The written-request portal (R-8): a public form at ``/portal`` for certificate holders.

The form asks the same use case as ``POST /api/v1/tickets`` (``TicketService.create_from_portal``)
and shows the outcome in the visitor's language: each missing field named, a refused
certificate with its reason (unknown, expired, not yet valid, not covering the chosen
service), or the ticket's number and its due time in words. Submissions are rate-limited per
address (a growing wait after a few in an hour), and unknown certificate numbers are counted
per address by the ticket service as the API counts them per token.
"""

from __future__ import annotations

from aiohttp import web

from callcenter.domain.calls import SERVICE_CATEGORIES
from callcenter.domain.certificates import LookupStatus
from callcenter.domain.errors import TooManyAttempts, ValidationError
from callcenter.domain.throttle import BackoffRule, Throttle
from callcenter.domain.wording import due_words_en, due_words_ru
from callcenter.web.i18n import N_
from callcenter.web.keys import CONTAINER
from callcenter.web.pages import gettext_for, language, render
from callcenter.web.pages.forms import read_form

routes = web.RouteTableDef()

FIELDS = ("full_name", "organisation", "certificate", "description", "category")
REQUIRED = ("full_name", "certificate", "description")
LIMITS = {"full_name": 200, "organisation": 200, "certificate": 40, "description": 4000}
#: submissions per address: 5 in an hour are free, then the next waits 2, 4, ... 600 s
PORTAL_RATE = BackoffRule(free=5, base_seconds=1.0, cap_seconds=600.0, forget_seconds=3600.0)
THROTTLE: web.AppKey[Throttle] = web.AppKey("portal_throttle", Throttle)

#: words for a refused certificate, by the lookup's status
CERT_REASONS = {
    LookupStatus.UNKNOWN.value: N_("portal_cert_UNKNOWN"),
    LookupStatus.EXPIRED.value: N_("portal_cert_EXPIRED"),
    LookupStatus.NOT_YET_VALID.value: N_("portal_cert_NOT_YET_VALID"),
    LookupStatus.NOT_COVERED.value: N_("portal_cert_NOT_COVERED"),
}
FIELD_KEYS = (
    N_("portal_required"),
    N_("portal_too_long"),
    N_("portal_bad_category"),
    N_("portal_cert_malformed"),
)


def categories() -> tuple[str, ...]:
    return SERVICE_CATEGORIES


def install(app: web.Application) -> None:
    """The app's state of the portal (before it starts): its per-address counters."""
    app[THROTTLE] = Throttle(PORTAL_RATE)


def _throttle(app: web.Application) -> Throttle:
    return app[THROTTLE]


def _form(request: web.Request, values: dict, errors: dict, status: int = 200, **extra):
    return render(
        request,
        "portal.html",
        {"values": values, "errors": errors, "categories": categories(), **extra},
        status,
    )


@routes.get("/portal")
async def portal_form(request: web.Request) -> web.Response:
    return _form(request, dict.fromkeys(FIELDS, ""), {})


def _check(values: dict[str, str]) -> dict[str, str]:
    """Field -> message key for each field the visitor must correct."""
    errors = {}
    for name in REQUIRED:
        if not values[name].strip():
            errors[name] = "portal_required"
    for name, limit in LIMITS.items():
        if len(values[name]) > limit:
            errors[name] = "portal_too_long"
    if values["category"] not in categories():
        errors["category"] = "portal_bad_category"
    return errors


def _certificate_reason(exc: ValidationError) -> str:
    """The refused certificate's word: the service names the lookup status at the end of its
    field message (``is not valid for support: EXPIRED``); a malformed number says so."""
    problem = str(exc.details.get("fields", {}).get("certificate", ""))
    for status, key in CERT_REASONS.items():
        if problem.endswith(status):
            return key
    return "portal_cert_malformed"


@routes.post("/portal")
async def portal_submit(request: web.Request) -> web.Response:
    form = await read_form(request, *FIELDS, limit=5000)
    values = {k: form[k] for k in FIELDS}
    values["category"] = values["category"] or "other"
    c = request.app[CONTAINER]
    now = c.clock.now()
    _ = gettext_for(language(request))[0]
    errors = _check(values)
    if errors:
        return _form(request, values, errors, 422)
    address = f"address:{request.remote}"
    try:
        _throttle(request.app).admit((address,), now, "portal request")
    except TooManyAttempts as exc:
        page = _form(
            request,
            values,
            {},
            429,
            refused=_("portal_throttled", seconds=exc.retry_after),
        )
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    try:
        ticket = await c.tickets.create_from_portal(
            now,
            full_name=values["full_name"],
            certificate=values["certificate"],
            description=values["description"],
            organisation=values["organisation"],
            category=values["category"],
            requester=("portal-page", address),
        )
    except TooManyAttempts as exc:
        page = _form(
            request, values, {}, 429, refused=_("portal_throttled", seconds=exc.retry_after)
        )
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except ValidationError as exc:
        if "certificate" not in exc.details.get("fields", {}):
            raise
        return _form(request, values, {"certificate": _certificate_reason(exc)}, 422)
    lang = language(request)
    due = due_words_ru(ticket.due_at) if lang == "ru" else due_words_en(ticket.due_at)
    return render(request, "portal_done.html", {"ticket_id": ticket.id, "due": due}, 201)
