"""Who is calling: a bearer token (PBX, integrations) or the UI's session cookie."""

from __future__ import annotations

from aiohttp import web

from callcenter.domain.errors import Forbidden, Unauthorized
from callcenter.services.auth import Principal
from callcenter.web.keys import CONTAINER

PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


async def principal(request: web.Request) -> Principal:
    cached = request.get(PRINCIPAL)
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send 'Authorization: Bearer TOKEN' (see `callcenter tokens create`)",
            code="missing_token",
        )
    who = await request.app[CONTAINER].auth.authenticate_token(token.strip())
    request[PRINCIPAL] = who
    return who


async def require(request: web.Request, permission: str) -> Principal:
    who = await principal(request)
    if not who.can(permission):
        raise Forbidden(f"role {who.role!r} may not do this ({permission})", code="forbidden")
    return who
