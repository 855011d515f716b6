"""The webhook helpdesk's way back: ``POST /api/v1/helpdesk/answers``.

No token or session: the request is authenticated by its ``X-Callcenter-Signature`` (HMAC
with ``[helpdesk] secret`` over the raw body, fresh, never seen before), checked before the
body is read as JSON.
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from callcenter.domain import signing
from callcenter.domain.errors import ValidationError
from callcenter.web import schemas, views
from callcenter.web.errors import json_response, read_json
from callcenter.web.keys import CONTAINER

routes = web.RouteTableDef()


@routes.post("/api/v1/helpdesk/answers")
async def helpdesk_answer(request: web.Request) -> web.Response:
    c = request.app[CONTAINER]
    now = c.clock.now()
    raw = await request.read()
    c.helpdesk_inbox.authenticate(request.headers.get(signing.HEADER), raw, now)
    body = schemas.parse(schemas.HelpdeskAnswer, await read_json(request))
    if body.url is not None and not body.url.startswith(("http://", "https://")):
        raise ValidationError(
            "url must be an http(s) link", code="invalid_request", fields={"url": "not a link"}
        )
    ticket, recorded = await c.helpdesk_inbox.receive(dataclasses.asdict(body), now)
    return json_response({"recorded": recorded, "ticket": views.ticket_json(ticket, now)})
