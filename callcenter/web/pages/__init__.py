"""Server-rendered pages: the Jinja2 environment, the language, and how a page refuses.

One module per screen (``login``, ``agent``, ``admin``); each handler asks the same use cases
as its JSON twin and renders. Templates autoescape everything; caller-supplied text reaches a
page only as text. A page refuses an anonymous visitor with a redirect to ``/login?next=...``
and a wrong role with a 403 page (the JSON API answers 401/403 JSON for the same rows of
``web/access.py``).
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

from callcenter.domain import errors as e
from callcenter.web import i18n
from callcenter.web.auth import PRINCIPAL
from callcenter.web.errors import ERROR_CODE, status_for

STATIC_PREFIX = "/static"
_NOT_PAGES = ("/api/", STATIC_PREFIX + "/")
_NOT_PAGE_PATHS = frozenset({"/healthz", "/healthz/live", "/healthz/ready", "/metrics"})
LANG: web.RequestKey[str] = web.RequestKey("lang", str)


def is_page(path: str) -> bool:
    """Is this path one of the HTML pages (not the JSON API, the probes or a static file)?"""
    return path not in _NOT_PAGE_PATHS and not path.startswith(_NOT_PAGES)


def language(request: web.Request) -> str:
    """The visitor's language: their choice (cookie), else Russian."""
    lang = request.get(LANG)
    if lang is None:
        lang = request[LANG] = i18n.pick(request.cookies.get(i18n.COOKIE))
    return lang


def gettext_for(lang: str):
    """``_`` for one language: the key's translation, ``%(name)s`` filled from keywords."""
    tr = i18n.translations(lang)

    def gettext(key: str, /, **values) -> str:
        text = tr.gettext(key)
        return text % values if values else text

    def ngettext(singular: str, plural: str, n: int, /, **values) -> str:
        text = tr.ngettext(singular, plural, n)
        return text % {"num": n, **values}

    return gettext, ngettext


def local_path(candidate: str | None, default: str = "/") -> str:
    """``candidate`` if it is a path on this site (no scheme, host or ``//``), else default:
    a login link cannot send anyone elsewhere."""
    if not candidate or any(ch in candidate for ch in "\\\r\n\t") or not candidate.isprintable():
        return default
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc or not candidate.startswith("/") or candidate.startswith("//"):
        return default
    return candidate


def home_of(role: str) -> str:
    """Where a signed-in user lands: agents on their desk, supervisors on the live board,
    admins on the users page."""
    return {"admin": "/admin/users", "supervisor": "/supervisor/board"}.get(role, "/agent")


def _context(request: web.Request) -> dict:
    lang = language(request)
    gettext, ngettext = gettext_for(lang)
    return {
        "lang": lang,
        "languages": i18n.LANGUAGES,
        "gettext": gettext,
        "ngettext": ngettext,
        "user": request.get(PRINCIPAL),
        "here": request.path_qs,
    }


def _tojson_text(value) -> str:
    """JSON for a ``<script type="application/json">`` element: ``<``, ``>`` and ``&`` escaped,
    so no caller-supplied text can close the element."""
    return (
        json.dumps(value, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def setup(app: web.Application) -> None:
    """aiohttp-jinja2 with autoescape and the i18n extension; catalogs read now, at start."""
    i18n.load_all()
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("callcenter.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    # defaults only: every render gets its language's gettext from the context processor
    env.install_gettext_callables(lambda s: s, lambda s, p, n: s if n == 1 else p, newstyle=True)
    env.filters["json_data"] = lambda v: Markup(_tojson_text(v))
    app.router.add_static(STATIC_PREFIX, i18n.HERE.parent / "static", append_version=False)


def render(request: web.Request, template: str, context: dict, status: int = 200) -> web.Response:
    context = {**_context(request), **context}
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    response.headers["Cache-Control"] = "no-store"  # pages name callers: no cache keeps them
    return response


def error_page(request: web.Request, status: int, code: str, message: str = "") -> web.Response:
    response = render(
        request, "error.html", {"status": status, "code": code, "message": message}, status
    )
    response[ERROR_CODE] = code
    return response


@web.middleware
async def page_middleware(request: web.Request, handler):
    """On a page, a refusal is a page: anonymous → the login form (coming back here after),
    a wrong role or a cross-site form → a 403 page. The JSON API is left as it is."""
    if not is_page(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except e.Unauthorized as exc:
        if request.method in ("GET", "HEAD"):
            raise web.HTTPFound("/login?next=" + quote(request.path_qs, safe="/")) from None
        return error_page(request, 401, exc.code, "")
    except e.DomainError as exc:
        return error_page(request, status_for(exc), exc.code, "")
