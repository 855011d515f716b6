"""JSON API handlers: parse, call one use case, render. No SQL here."""

from __future__ import annotations

import time

from aiohttp import web

from callcenter.domain.errors import ValidationError
from callcenter.domain.instants import InstantError, parse_instant
from callcenter.domain.instants import format_instant as iso
from callcenter.web.auth import require
from callcenter.web.errors import json_response, read_json
from callcenter.web.keys import CONTAINER
from callcenter.web.schemas import IvrCheck, IvrVoicemail, parse

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    c = request.app[CONTAINER]
    try:
        await c.ping_database()
        return json_response({"status": "ok", "database": "ok"})
    except Exception as exc:  # the probe must answer whatever the database does
        return json_response(
            {"status": "degraded", "database": f"unavailable: {type(exc).__name__}"}, 503
        )


@routes.get("/healthz/live")
async def healthz_live(request: web.Request) -> web.Response:
    """The process answers; nothing else is asked (a restart would not cure a database)."""
    return json_response({"status": "ok"})


@routes.get("/healthz/ready")
async def healthz_ready(request: web.Request) -> web.Response:
    """Fit for traffic: the database answers, its schema is current, FastAGI listens."""
    parts = await request.app[CONTAINER].readiness()
    ready = all(v == "ok" for v in parts.values())
    return json_response({"status": "ok" if ready else "not_ready", **parts}, 200 if ready else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    metrics = request.app[CONTAINER].metrics
    return web.Response(
        body=await metrics.render(),
        headers={"Content-Type": metrics.content_type, "X-Content-Type-Options": "nosniff"},
    )


@routes.get("/api/v1/certificates/{number}")
async def certificate_lookup(request: web.Request) -> web.Response:
    await require(request, "certificates:read")
    c = request.app[CONTAINER]
    result = await c.registry.lookup(
        request.match_info["number"], c.clock.now(), request.query.get("service")
    )
    c.metrics.inc(
        "callcenter_certificate_lookups_total",
        "Certificate lookups by status.",
        status=result.status.value,
    )
    return json_response(result.to_dict())


@routes.get("/api/v1/certificates")
async def certificates_by_phone(request: web.Request) -> web.Response:
    """Certificates naming this caller as an authorised contact (the IVR's caller-ID shortcut)."""
    await require(request, "certificates:read")
    c = request.app[CONTAINER]
    phone = request.query.get("phone", "")
    if not phone:
        raise ValidationError(
            "query parameter 'phone' is required",
            code="missing_phone",
            fields={"phone": "is required"},
        )
    results = await c.registry.by_phone(phone, c.clock.now())
    return json_response({"phone": phone, "certificates": [r.to_dict() for r in results]})


@routes.get("/api/v1/policy")
async def policy_versions(request: web.Request) -> web.Response:
    await require(request, "calls:read")
    c = request.app[CONTAINER]
    book = await c.policy.book()
    current = book.in_force_at(c.clock.now())
    return json_response(
        {"versions": [v.to_dict() for v in book.versions], "in_force": current.to_dict()}
    )


@routes.post("/api/v1/events")
async def post_event(request: web.Request) -> web.Response:
    """One call event from the PBX; the same event twice is stored once (200 the second time)."""
    await require(request, "events:write")
    c = request.app[CONTAINER]
    event, new = await c.calls.record(await read_json(request), c.clock.now())
    c.metrics.inc(
        "callcenter_events_total",
        "Call events received, by type and novelty.",
        event=event.event,
        new=str(new).lower(),
    )
    return json_response(
        {"stored": new, "duplicate": not new, "event": event.to_dict()}, 201 if new else 200
    )


@routes.get("/api/v1/ivr/working-time")
async def ivr_working_time(request: web.Request) -> web.Response:
    """Is the phone line open (now, or at ``?at=``), and when does it open next."""
    await require(request, "ivr")
    c = request.app[CONTAINER]
    at = _instant(request.query.get("at")) or c.clock.now()
    is_open, next_opening = await c.ivr.working_time(at)
    return json_response({"at": iso(at), "open": is_open, "next_opening": iso(next_opening)})


@routes.post("/api/v1/ivr/check")
async def ivr_check(request: web.Request) -> web.Response:
    """The IVR's lookup: entitlement plus lockout accounting for the caller and the number."""
    await require(request, "ivr")
    c = request.app[CONTAINER]
    body = parse(IvrCheck, await read_json(request))
    c.registry.number_format.validate(body.number)
    started = time.perf_counter()
    result = await c.ivr.check(body.call_id, body.caller, body.number, c.clock.now())
    c.metrics.observe_lookup(time.perf_counter() - started, "http")
    c.metrics.inc(
        "callcenter_ivr_checks_total", "IVR certificate checks by status.", status=result["status"]
    )
    return json_response(result)


@routes.post("/api/v1/ivr/voicemail")
async def ivr_voicemail(request: web.Request) -> web.Response:
    """A message left on the closed line by a process AGI: the ticket it becomes (201)."""
    import base64
    import binascii

    await require(request, "ivr")
    c = request.app[CONTAINER]
    body = parse(IvrVoicemail, await read_json(request))
    c.registry.number_format.validate(body.number)
    try:
        audio = base64.b64decode(body.recording, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(
            "the recording is not base64",
            code="invalid_recording",
            fields={"recording": "must be base64"},
        ) from None
    now = c.clock.now()
    left = _instant(body.at) or now
    problem = c.calls.log.instants.problem(left, now)
    if problem is not None:
        raise ValidationError(f"'at' {problem}", code="invalid_instant", fields={"at": problem})
    ticket = await c.voicemail.leave(
        call_id=body.call_id, caller=body.caller, number=body.number, audio=audio, now=left,
    )  # fmt: skip
    return json_response({"ticket_id": ticket.id, "due_at": iso(ticket.due_at)}, 201)


def _instant(raw: str | None):
    if not raw:
        return None
    try:
        return parse_instant(raw)
    except InstantError as exc:
        raise ValidationError(
            f"'at' {exc}", code="invalid_instant", fields={"at": str(exc)}
        ) from None
