"""The login page, logout and the language switch: HTML forms over the session service.

CSRF: these forms are guarded as every cookie-authenticated state change is (``web/csrf.py``):
SameSite=Lax cookies plus an Origin / ``Sec-Fetch-Site`` check, applied to every form post,
the login form included (a foreign page cannot log a visitor into another account).
"""

from __future__ import annotations

from aiohttp import web

from callcenter.domain.errors import TooManyAttempts, Unauthorized
from callcenter.web import i18n
from callcenter.web.auth import COOKIE, principal
from callcenter.web.keys import CONTAINER
from callcenter.web.pages import gettext_for, home_of, language, local_path, render
from callcenter.web.pages.forms import read_form
from callcenter.web.session_api import set_session_cookie

routes = web.RouteTableDef()


def see_other(location: str) -> web.Response:
    """303 to a local path: after a form post the browser GETs the next page."""
    return web.Response(status=303, headers={"Location": location})


async def _signed_in(request: web.Request):
    if not request.cookies.get(COOKIE):
        return None
    try:
        return await principal(request)
    except Unauthorized:
        return None


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    who = await principal(request)
    raise web.HTTPFound(home_of(who.role))


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    nxt = local_path(request.query.get("next"), "")
    who = await _signed_in(request)
    if who is not None:
        raise web.HTTPFound(nxt or home_of(who.role))
    return render(request, "login.html", {"next": nxt, "error": None, "login": ""})


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    form = await read_form(request, "login", "password", "next")
    nxt = local_path(form["next"], "")
    c = request.app[CONTAINER]
    _ = gettext_for(language(request))[0]
    try:
        session = await c.auth.open_session(
            form["login"], form["password"], c.clock.now(), request.remote
        )
    except TooManyAttempts as exc:
        page = render(
            request,
            "login.html",
            {
                "next": nxt,
                "login": form["login"],
                "error": _("login_throttled", seconds=exc.retry_after),
            },
            429,
        )
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except Unauthorized:
        return render(
            request,
            "login.html",
            {"next": nxt, "login": form["login"], "error": _("login_failed")},
            401,
        )
    response = see_other(nxt or home_of(session.principal.role))
    set_session_cookie(response, c, session.cookie)
    return response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    """Ends the session on the server (every copy of the cookie dies), back to the login."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        await request.app[CONTAINER].auth.end_session(cookie)
    response = see_other("/login")
    response.del_cookie(COOKIE, path="/")
    return response


@routes.post("/lang")
async def choose_language(request: web.Request) -> web.Response:
    """The visitor's language, kept in a cookie for a year; back to the page they were on."""
    form = await read_form(request, "lang", "next")
    response = see_other(local_path(form["next"], "/"))
    response.set_cookie(
        i18n.COOKIE,
        i18n.pick(form["lang"]),
        max_age=365 * 86400,
        samesite="Lax",
        httponly=True,
        secure=request.app[CONTAINER].settings.http.secure_cookies,
        path="/",
    )
    return response
