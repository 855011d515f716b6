"""Who is calling (a bearer token, or the UI's session cookie) and whether the route allows it.

The route's row in ``web/access.py`` decides; :func:`access_middleware` applies it before any
handler runs, WebSocket handshakes included, so a handler cannot grant more than the table.
"""

from __future__ import annotations

import logging

from aiohttp import web

from callcenter.domain.errors import Forbidden, Unauthorized
from callcenter.services.auth import Principal
from callcenter.web.access import PUBLIC, Rule, allows, rule_for
from callcenter.web.keys import CONTAINER

log = logging.getLogger(__name__)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
COOKIE = "cc_session"


async def principal(request: web.Request) -> Principal:
    """The caller, authenticated once per request; 401 without valid credentials."""
    cached = request.get(PRINCIPAL)
    if cached is not None:
        return cached
    c = request.app[CONTAINER]
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("use 'Authorization: Bearer TOKEN'", code="missing_token")
        who = await c.auth.authenticate_token(token.strip())
    elif cookie := request.cookies.get(COOKIE):
        who = await c.auth.authenticate_session(cookie, c.clock.now())
    else:
        raise Unauthorized(
            "log in, or send 'Authorization: Bearer TOKEN' (see `callcenter tokens create`)",
            code="missing_token",
        )
    request[PRINCIPAL] = who
    return who


def _rule(request: web.Request) -> Rule | None:
    route = request.match_info.route
    if route.resource is None:  # no route matched: aiohttp answers 404/405 itself
        return PUBLIC
    rule = rule_for(route.method, route.resource.canonical)
    if rule is None:
        log.error("route %s %s has no row in web/access.py", route.method, route.resource.canonical)
        raise Forbidden("this route has no access rule", code="no_access_rule")
    return rule


async def authorize(request: web.Request) -> Principal | None:
    """Applies the route's row of the access table; the caller, or None on a public route."""
    rule = _rule(request)
    if rule == PUBLIC:
        return None
    who = await principal(request)
    if not allows(rule, who.role):
        raise Forbidden(f"role {who.role!r} may not use this route", code="forbidden")
    return who


async def require(request: web.Request, *_permission: str) -> Principal:
    """The caller, checked against the access table (the permission named is documentation
    only: the table decides). On a public route it still demands a caller."""
    return await authorize(request) or await principal(request)


@web.middleware
async def access_middleware(request: web.Request, handler):
    await authorize(request)
    return await handler(request)
