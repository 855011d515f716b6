"""The pages over a real socket, on SQLite and PostgreSQL: login, logout, language, refusals.

Anonymous visitors are sent to the login form, wrong roles get a 403 page, form posts from
another site are refused (SameSite=Lax plus the Origin check of ``web/csrf.py``), and every
page keeps to the strict CSP: no inline script or style.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from callcenter.web.pages import _tojson_text, local_path

PASSWORD = "пароль-длинный"


@pytest.fixture
async def agent(container, clock):
    await container.auth.add_user("оператор", "agent", PASSWORD, clock.now(), display_name="Ольга")
    return "оператор"


async def login(client, name="оператор", password=PASSWORD, nxt="", **headers):
    return await client.post(
        "/login",
        data={"login": name, "password": password, "next": nxt},
        headers=headers,
        allow_redirects=False,
    )


async def test_anonymous_visitors_are_sent_to_the_login_form(client):
    for path in ("/", "/agent", "/agent/list", "/admin/users", "/agent?x=1"):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 302, path
        assert r.headers["Location"].startswith("/login?next=/"), path
    r = await client.get("/api/v1/calls", allow_redirects=False)
    assert r.status == 401 and (await r.json())["error"] == "missing_token"


async def test_a_forged_cookie_is_sent_to_the_login_form(client):
    r = await client.get(
        "/agent", headers={"Cookie": "cc_session=" + "A" * 43}, allow_redirects=False
    )
    assert r.status == 302 and r.headers["Location"] == "/login?next=/agent"


async def test_login_then_the_desk_and_logout_ends_the_session(client, agent):
    r = await login(client, nxt="/agent")
    assert r.status == 303 and r.headers["Location"] == "/agent"
    cookie = r.cookies["cc_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    headers = {"Cookie": f"cc_session={cookie.value}"}
    client.session.cookie_jar.clear()
    page = await client.get("/agent", headers=headers)
    assert page.status == 200
    text = await page.text()
    assert "Рабочее место оператора" in text and "оператор" in text
    r = await client.post("/logout", headers=headers, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login"
    client.session.cookie_jar.clear()
    r = await client.get("/agent", headers=headers, allow_redirects=False)
    assert r.status == 302, "the old cookie still opens the desk after logout"


async def test_a_wrong_password_shows_the_form_again_with_a_message(client, agent):
    r = await login(client, password="не тот")
    assert r.status == 401
    text = await r.text()
    assert "Неверный логин или пароль." in text and 'value="оператор"' in text
    assert "cc_session" not in r.cookies


async def test_throttled_logins_are_told_when_to_come_back(client, agent):
    for _ in range(5):
        assert (await login(client, password="не тот")).status == 401
    r = await login(client, password="не тот")
    assert r.status == 429
    wait = int(r.headers["Retry-After"])
    assert f"Повторите через {wait} с." in await r.text()


@pytest.mark.parametrize(
    ("nxt", "where"),
    [
        ("/agent?x=1", "/agent?x=1"),
        ("//evil.example/", "/agent"),
        ("https://evil.example/", "/agent"),
        ("/\\evil.example", "/agent"),
        ("javascript:alert(1)", "/agent"),
    ],
)
async def test_next_only_leads_to_a_path_on_this_site(client, agent, nxt, where):
    r = await login(client, nxt=nxt)
    assert r.status == 303 and r.headers["Location"] == where


def test_local_path():
    assert local_path("/a/b?c=d") == "/a/b?c=d"
    for bad in ("//x", "http://x/", "x", "", None, "/a\nb", "/\\x", "/\tx"):
        assert local_path(bad, "-") == "-", bad


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}],
)
async def test_a_form_post_from_another_site_is_refused(client, agent, headers):
    r = await login(client, **headers)
    assert r.status == 403
    assert "csrf_refused" in await r.text()
    assert "cc_session" not in r.cookies
    r = await client.post("/lang", data={"lang": "en", "next": "/"}, headers=headers)
    assert r.status == 403 and "cc_lang" not in r.cookies


async def test_a_form_post_from_this_site_is_taken(client, agent):
    origin = str(client.make_url("/")).rstrip("/")
    r = await login(client, nxt="/agent", Origin=origin, **{"Sec-Fetch-Site": "same-origin"})
    assert r.status == 303


async def test_a_wrong_role_gets_a_403_page(client, agent, pbx_token):
    r = await login(client)
    headers = {"Cookie": f"cc_session={r.cookies['cc_session'].value}"}
    client.session.cookie_jar.clear()
    r = await client.get("/admin/users", headers=headers, allow_redirects=False)
    assert r.status == 403 and r.content_type == "text/html"
    assert "Нет доступа" in await r.text()
    r = await client.get(
        "/agent", headers={"Authorization": f"Bearer {pbx_token}"}, allow_redirects=False
    )
    assert r.status == 403 and r.content_type == "text/html"


async def test_the_admin_sees_the_users(client, container, clock, agent):
    await container.auth.add_user("админ", "admin", PASSWORD, clock.now())
    r = await login(client, name="админ")
    assert r.headers["Location"] == "/admin/users"
    page = await client.get("/admin/users")
    assert page.status == 200
    text = await page.text()
    assert "оператор" in text and "Ольга" in text and 'data-login="оператор"' in text


async def test_the_language_is_the_visitors_choice(client):
    r = await client.get("/login")
    assert "Вход" in await r.text() and '<html lang="ru">' in await r.text()
    r = await client.post("/lang", data={"lang": "en", "next": "/login"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login"
    assert r.cookies["cc_lang"].value == "en"
    r = await client.get("/login")
    text = await r.text()
    assert '<html lang="en">' in text and "Log in" in text and "Вход" not in text
    r = await client.post(
        "/lang", data={"lang": "xx", "next": "http://evil/"}, allow_redirects=False
    )
    assert r.headers["Location"] == "/" and r.cookies["cc_lang"].value == "ru"


async def test_bad_form_input_is_a_4xx_not_a_500(client, agent):
    r = await client.post("/login", data={"login": "a\x00b", "password": "x"})
    assert r.status == 422
    r = await client.post("/login", data={"login": "x" * 5000, "password": "x"})
    assert r.status == 422
    r = await client.post("/login", json={"login": "оператор", "password": PASSWORD})
    assert r.status == 422
    r = await client.post(
        "/login",
        data=b"login=%FF%FE&password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status < 500


class _Inline(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, style elements and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._script_type: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "style" in a:
            self.problems.append(f"style attribute on <{tag}>")
        if any(name.startswith("on") for name in a):
            self.problems.append(f"event handler attribute on <{tag}>")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self._script_type = a.get("type") if "src" not in a else "src"
            if self._script_type not in ("src", "application/json"):
                self.problems.append("inline <script>")


async def test_pages_keep_to_the_strict_csp(client, container, clock, agent):
    await container.auth.add_user("админ", "admin", PASSWORD, clock.now())
    admin = (await login(client, name="админ")).cookies["cc_session"].value
    client.session.cookie_jar.clear()
    for path in ("/login", "/agent", "/agent/list", "/admin/users"):
        r = await client.get(path, headers={"Cookie": f"cc_session={admin}"})
        assert r.status == 200, path
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert r.headers["Cache-Control"] == "no-store"
        parser = _Inline()
        parser.feed(await r.text())
        assert not parser.problems, f"{path}: {parser.problems}"
    r = await client.get("/static/vendor/htmx/htmx.min.js")
    assert r.status == 200


def test_the_data_block_cannot_be_closed_by_its_content():
    text = _tojson_text({"name": "</script><img src=x onerror=alert(1)>", "amp": "&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert re.search(r"\\u003c/script\\u003e", text)


# --- the agent's own list (the htmx fragment) and the role's home -------------------------


async def test_each_role_lands_on_its_home_and_a_signed_in_login_page_moves_on(
    client, container, clock
):
    for name, role, home in (
        ("аг", "agent", "/agent"),
        ("рук", "supervisor", "/supervisor/board"),
        ("адм", "admin", "/admin/users"),
    ):
        await container.auth.add_user(name, role, PASSWORD, clock.now())
        r = await login(client, name=name)
        assert r.headers["Location"] == home, role
        headers = {"Cookie": f"cc_session={r.cookies['cc_session'].value}"}
        client.session.cookie_jar.clear()
        r = await client.get("/", headers=headers, allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (302, home), role
        r = await client.get("/login?next=/agent/list", headers=headers, allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (302, "/agent/list"), role


async def test_the_agents_list_shows_todays_calls_and_the_tickets_of_them(
    client, container, clock, agent
):
    await container.desk.set_interfaces(agent, ["PJSIP/101"], clock.now())
    for call_id, hang_up in (("1700000000.1", True), ("1700000000.2", False)):
        for body in (
            {"event": "call_started", "call_id": call_id, "caller_number": "+79001112233"},
            {"event": "agent_connected", "call_id": call_id, "agent": "PJSIP/101"},
        ):
            await container.calls.record({**body, "at": clock.now().isoformat()}, clock.now())
        if hang_up:
            end = {"event": "call_ended", "call_id": call_id, "at": clock.now().isoformat()}
            await container.calls.record(end, clock.now())
    r = await login(client)
    headers = {"Cookie": f"cc_session={r.cookies['cc_session'].value}"}
    client.session.cookie_jar.clear()
    r = await client.patch(
        "/api/v1/calls/1700000000.2",
        json={"description": "<b>жирный</b> текст", "caller_name": "Кто-то"},
        headers=headers,
    )
    assert r.status == 200, await r.text()
    r = await client.post("/api/v1/calls/1700000000.2/escalate", json={}, headers=headers)
    assert r.status in (200, 201), await r.text()
    page = await client.get("/agent/list", headers=headers)
    assert page.status == 200
    text = await page.text()
    assert text.count("+79001112233") == 2
    assert text.count("<td>11:00</td>") == 2  # started at 11:00 Moscow time (08:00 UTC)
    assert "&lt;b&gt;жирный&lt;/b&gt; текст" in text and "<b>" not in text
    assert "открыта" in text  # the ticket's status in words
