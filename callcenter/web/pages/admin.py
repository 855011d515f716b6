"""The admin's users page: every UI user with the queue interfaces Asterisk knows them by.

The form sets an agent's interfaces through ``PUT /api/v1/users/{login}/interfaces`` (the
page's script sends it as JSON, so it passes the same CSRF and validation as any API call).
"""

from __future__ import annotations

from aiohttp import web

from callcenter.web.keys import CONTAINER
from callcenter.web.pages import language, render

routes = web.RouteTableDef()


@routes.get("/admin/users")
async def users_page(request: web.Request) -> web.Response:
    c = request.app[CONTAINER]
    users = await c.auth.users()
    interfaces = await c.desk.all_interfaces()
    rows = [
        {
            "login": u.login,
            "display_name": u.display_name,
            "role": u.role,
            "disabled": u.disabled_at is not None,
            "interfaces": interfaces.get(u.login, []),
        }
        for u in users
    ]
    return render(request, "admin/users.html", {"rows": rows, "page_lang": language(request)})
