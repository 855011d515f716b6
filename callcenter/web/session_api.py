"""The UI's login, whoami and logout: a server-side session behind an opaque cookie."""

from __future__ import annotations

from aiohttp import web

from callcenter.domain.errors import ValidationError
from callcenter.web.auth import COOKIE, principal
from callcenter.web.errors import json_response, read_json
from callcenter.web.keys import CONTAINER

routes = web.RouteTableDef()


@routes.post("/api/v1/session")
async def login(request: web.Request) -> web.Response:
    body = await read_json(request)
    name, password = body.get("login"), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        raise ValidationError(
            "login and password are required",
            code="invalid_request",
            fields={"login": "is required", "password": "is required"},
        )
    c = request.app[CONTAINER]
    # the peer's address (behind a reverse proxy: the proxy's, unless aiohttp is told to trust
    # its forwarded headers), throttled beside the login itself
    session = await c.auth.open_session(name, password, c.clock.now(), request.remote)
    who = session.principal
    resp = json_response({"login": who.name, "role": who.role})
    set_session_cookie(resp, c, session.cookie)
    return resp


def set_session_cookie(response: web.StreamResponse, container, cookie: str) -> None:
    """The session cookie, as the JSON login and the login page both set it."""
    response.set_cookie(
        COOKIE,
        cookie,
        httponly=True,
        samesite="Lax",
        secure=container.settings.http.secure_cookies,
        max_age=int(container.auth.session_lifetime.total_seconds()),
        path="/",
    )


@routes.get("/api/v1/session")
async def whoami(request: web.Request) -> web.Response:
    who = await principal(request)
    return json_response({"login": who.name, "role": who.role})


@routes.delete("/api/v1/session")
async def logout(request: web.Request) -> web.Response:
    """Ends the session on the server, so a copy of the cookie is worthless from now on."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        await request.app[CONTAINER].auth.end_session(cookie)
    resp = json_response({"logged_out": True})
    resp.del_cookie(COOKIE, path="/")
    return resp
