"""JSON API handlers: parse, call one use case, render. No SQL here."""

from __future__ import annotations

import json

from aiohttp import web
from sqlalchemy import text

from callcenter.web.auth import require
from callcenter.web.keys import CONTAINER

routes = web.RouteTableDef()


def _json(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    c = request.app[CONTAINER]
    try:
        async with c.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return _json({"status": "ok", "database": "ok"})
    except Exception as exc:  # the probe must answer whatever the database does
        return _json({"status": "degraded", "database": f"unavailable: {type(exc).__name__}"}, 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = request.app[CONTAINER].metrics.render()
    return web.Response(
        text=body,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
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
    return _json(result.to_dict())


@routes.get("/api/v1/certificates")
async def certificates_by_phone(request: web.Request) -> web.Response:
    """Certificates naming this caller as an authorised contact (the IVR's caller-ID shortcut)."""
    await require(request, "certificates:read")
    c = request.app[CONTAINER]
    phone = request.query.get("phone", "")
    if not phone:
        from callcenter.domain.errors import ValidationError

        raise ValidationError("query parameter 'phone' is required", code="missing_phone")
    results = await c.registry.by_phone(phone, c.clock.now())
    return _json({"phone": phone, "certificates": [r.to_dict() for r in results]})


@routes.get("/api/v1/policy")
async def policy_versions(request: web.Request) -> web.Response:
    await require(request, "calls:read")
    c = request.app[CONTAINER]
    book = await c.policy.book()
    current = book.in_force_at(c.clock.now())
    return _json({"versions": [v.to_dict() for v in book.versions], "in_force": current.to_dict()})
