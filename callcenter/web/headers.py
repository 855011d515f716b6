"""Response headers every answer carries, whoever produced it (handler, error or aiohttp)."""

from __future__ import annotations

from aiohttp import web

#: pages load only our own scripts, styles and sockets; nothing may frame them
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Set on every response just before it is sent (``on_response_prepare``), so error
    answers and aiohttp's own get them too, not only what a handler returns."""
    h = response.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    if response.content_type == "text/html":
        h.setdefault("Content-Security-Policy", PAGE_POLICY)
        h.setdefault("X-Frame-Options", "DENY")
    elif request.path.startswith("/api/"):
        # answers name callers and certificate holders: no cache may keep them
        h.setdefault("Cache-Control", "no-store")
