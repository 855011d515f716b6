"""The aiohttp application factory."""

from __future__ import annotations

from aiohttp import web

from callcenter.web import api, calls_api, helpdesk_api, pages, session_api
from callcenter.web.auth import access_middleware
from callcenter.web.csrf import csrf_middleware
from callcenter.web.errors import error_middleware
from callcenter.web.headers import on_prepare
from callcenter.web.json_edge import text_middleware
from callcenter.web.keys import CONTAINER
from callcenter.web.pages import admin as admin_pages
from callcenter.web.pages import agent as agent_pages
from callcenter.web.pages import login as login_pages
from callcenter.web.pages import page_middleware
from callcenter.web.pages import portal as portal_pages
from callcenter.web.pages import reports as report_pages
from callcenter.web.pages import supervisor as supervisor_pages
from callcenter.web.pages import tickets as ticket_pages


def init_app(container, *, extra_contexts=()) -> web.Application:
    """Build the app around a wired container; background work joins via cleanup contexts."""
    app = web.Application(
        middlewares=[
            error_middleware,
            text_middleware,
            page_middleware,  # outside csrf and access: their refusals on a page are pages
            csrf_middleware,
            access_middleware,
        ],
        client_max_size=1024**2,
    )
    app[CONTAINER] = container
    app.on_response_prepare.append(on_prepare)
    app.add_routes(api.routes)
    app.add_routes(calls_api.routes)
    calls_api.install(app)  # the push sockets' session re-check
    app.add_routes(session_api.routes)
    app.add_routes(calls_api.agent_routes)  # the agent's desk (web/agent_api.py)
    app.add_routes(helpdesk_api.routes)
    pages.setup(app)
    app.add_routes(login_pages.routes)
    app.add_routes(agent_pages.routes)
    app.add_routes(admin_pages.routes)
    app.add_routes(supervisor_pages.routes)
    app.add_routes(report_pages.routes)  # the supervisor's reports and exports
    app.add_routes(portal_pages.routes)  # issue 11, admin helper: portal, tickets
    app.add_routes(ticket_pages.routes)
    admin_pages.install(app)
    portal_pages.install(app)
    for ctx in extra_contexts:
        app.cleanup_ctx.append(ctx)
    return app
