"""Cross-site request forgery: a browser's session cookie must not act for another site.

Defence chosen: SameSite=Lax cookies plus an Origin check (OWASP's "verifying origin with
standard headers"), rather than tokens in every request, because every state change here is
a JSON call or a WebSocket handshake, and browsers always send ``Origin`` on both. A request
authenticated by the session cookie (not by a bearer token, which a foreign page cannot
attach) that changes state, or opens the push socket, must come from this service's own
origin: a foreign ``Origin``, or ``Sec-Fetch-Site: cross-site``/``same-site``, is refused.
JSON endpoints also refuse any body that is not ``application/json`` (see ``json_edge``),
so an HTML form or a ``text/plain`` fetch from elsewhere cannot even reach a handler. The
server-rendered pages' forms (login, logout, language) get the same Origin check whether or not
a session cookie comes with them: a foreign page must not log a visitor in (login CSRF) either.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import hdrs, web

from callcenter.domain.errors import Forbidden
from callcenter.web.auth import COOKIE as SESSION_COOKIE

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: what a browser's HTML form sends (``text/plain`` too: a form may say enctype="text/plain")
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})


def _cross_site(request: web.Request) -> str | None:
    """Why this request comes from another site, or None when it does not."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None:
        if origin == "null" or urlsplit(origin).netloc.lower() != (request.host or "").lower():
            return f"Origin {origin[:100]!r} is not this service"
    site = request.headers.get("Sec-Fetch-Site")
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site is {site}"
    return None


@web.middleware
async def csrf_middleware(request: web.Request, handler):
    by_cookie = SESSION_COOKIE in request.cookies and hdrs.AUTHORIZATION not in request.headers
    by_cookie = by_cookie or request.content_type in FORM_TYPES  # a browser's form, cookie or not
    changes_state = request.method not in SAFE_METHODS
    upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    if by_cookie and (changes_state or upgrade):
        why = _cross_site(request)
        if why is not None:
            raise Forbidden(f"cross-site request refused: {why}", code="csrf_refused")
    return await handler(request)
