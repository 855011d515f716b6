"""Routes x roles and UI sessions over a real socket, on SQLite and PostgreSQL.

Every cell of ``web/access.py`` is tried: no credentials, each token role, each user role by
session cookie, a forged cookie. Sessions end by logout, by disabling the user, by a new
password and by expiry, for an API route and for the WebSocket handshake alike.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading

import aiohttp
import pytest
from sqlalchemy import select

from callcenter.adapters import tables as t
from callcenter.services.auth import ROLES, TOKEN_ROLES, USER_ROLES
from callcenter.web.access import ACCESS, PUBLIC, SIGNED_IN, allows
from callcenter.web.pages import STATIC_PREFIX, is_page
from tests.conftest import ROOT

PASSWORD = "пароль-длинный"
FORGED = "cc_session=" + "A" * 43


def sample_path(path: str) -> str:
    """A concrete URL for a route: placeholders filled with values of the right shape."""
    if path == STATIC_PREFIX:
        return STATIC_PREFIX + "/css/app.css"
    samples = {
        "{number}": "1234567",
        "{call_id}": "1700000000.1",
        "{ticket_id}": "1",
        "{login}": "walk-agent",
        "{review_id}": "1",
        "{job_id}": "1",
    }
    for k, v in samples.items():
        path = path.replace(k, v)
    assert "{" not in path, f"no sample value for a placeholder in {path}"
    return path


async def _credentials(container, clock) -> dict[str, dict[str, str]]:
    """Headers per kind of caller: each token role, each user role by cookie, and worse."""
    creds: dict[str, dict[str, str]] = {"nobody": {}, "forged cookie": {"Cookie": FORGED}}
    for role in TOKEN_ROLES:
        token = await container.auth.create_token(f"walk-{role}", role, clock.now())
        creds[f"{role} token"] = {"Authorization": f"Bearer {token}"}
    for role in USER_ROLES:
        await container.auth.add_user(f"walk-{role}", role, PASSWORD, clock.now())
        session = await container.auth.open_session(f"walk-{role}", PASSWORD, clock.now())
        creds[f"{role} session"] = {"Cookie": f"cc_session={session.cookie}"}
    creds["bad bearer"] = {"Authorization": "Bearer cc_not-a-token"}
    return creds


async def test_every_cell_of_the_access_table(client, container, clock):
    creds = await _credentials(container, clock)
    container.fastagi_listening = lambda: True  # /healthz/ready: a 503 would read as a failure
    # logging out last: DELETE /api/v1/session (and the page's POST /logout) with a user's
    # cookie ends that session
    logouts = {("DELETE", "/api/v1/session"), ("POST", "/logout")}
    cells = sorted(ACCESS.items(), key=lambda kv: kv[0] in logouts)
    failures = []
    for (method, path), rule in cells:
        url = sample_path(path)
        for who, headers in creds.items():
            body = {} if method in ("POST", "PATCH", "PUT") else None
            r = await client.request(method, url, json=body, headers=headers, allow_redirects=False)
            role = who.split()[0]
            if rule == PUBLIC:
                expected = "allowed"
            elif who in ("nobody", "forged cookie", "bad bearer"):
                expected = 401
            else:
                expected = "allowed" if allows(rule, role) else 403
            # a page sends the visitor to log in; a form posted without a session is a 401 page
            if expected == 401 and is_page(path) and method == "GET":
                ok = r.status == 302 and r.headers["Location"].startswith("/login?next=")
            elif expected == 401 and is_page(path):  # a form posted without a session
                ok = r.status == 401
            elif expected == "allowed":
                ok = r.status not in (401, 403)
            else:
                ok = r.status == expected
            if not ok or r.status >= 500:
                failures.append(f"{method} {path} as {who}: {r.status}, expected {expected}")
    assert not failures, "\n".join(failures)


def test_every_registered_route_has_a_row_and_every_row_a_route(container):
    from callcenter.web.app import init_app

    app = init_app(container)
    registered = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    assert registered - set(ACCESS) == set(), "routes missing from web/access.py"
    assert set(ACCESS) - registered == set(), "rows of web/access.py without a route"
    for rule in ACCESS.values():
        assert rule in (PUBLIC, SIGNED_IN) or (rule and set(rule) <= set(ROLES))


def readme_roles() -> dict[tuple[str, str], object]:
    """The README's HTTP table: each route named in a row's first cell, with its roles."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### HTTP API", 1)[1].split("\n## ", 1)[0]
    found: dict[tuple[str, str], object] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first, roles_cell = line.split(" | ")[0], line.split(" | ")[1].strip()
        if roles_cell == "—":
            rule: object = PUBLIC
        elif roles_cell == "any role":
            rule = SIGNED_IN
        else:
            rule = frozenset(r.strip() for r in roles_cell.split(","))
        for method, path in re.findall(r"`(GET|POST|PATCH|PUT|DELETE) (/[^`?\[\s]*)", first):
            found[(method, re.sub(r"\{[^}]*\}", "{}", path))] = rule
    return found


def test_the_readme_table_says_what_the_access_table_does():
    documented = readme_roles()
    actual = {(m, re.sub(r"\{[^}]*\}", "{}", p)): rule for (m, p), rule in ACCESS.items()}
    wrong = {
        route: (documented.get(route, "missing"), rule)
        for route, rule in actual.items()
        if documented.get(route) != rule
    }
    assert not wrong, f"README role column differs (README, code): {wrong}"
    assert set(documented) <= set(actual), "README names routes the service does not have"


# --- sessions --------------------------------------------------------------------------------


async def _login(client, login="оператор", password=PASSWORD):
    """Logs in; the client keeps no cookie, each request below names the one it sends."""
    r = await client.post("/api/v1/session", json={"login": login, "password": password})
    client.session.cookie_jar.clear()
    return r


@pytest.fixture
async def agent(container, clock):
    await container.auth.add_user("оператор", "agent", PASSWORD, clock.now())


async def _can_read(client, cookie: str) -> int:
    r = await client.get("/api/v1/calls", headers={"Cookie": f"cc_session={cookie}"})
    return r.status


async def _ws_status(client, cookie: str) -> int:
    """101 if the push channel opens with this cookie, else the handshake's status."""
    try:
        ws = await client.ws_connect("/api/v1/stream", headers={"Cookie": f"cc_session={cookie}"})
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    hello = await ws.receive_json()
    assert hello["type"] == "hello"
    await ws.close()
    return 101


async def test_login_sets_an_opaque_http_only_cookie_stored_as_a_hash(client, container, agent):
    r = await _login(client)
    assert (await r.json()) == {"login": "оператор", "role": "agent"}
    morsel = r.cookies["cc_session"]
    cookie = morsel.value
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and not morsel["secure"]
    assert int(morsel["max-age"]) == 12 * 3600
    assert len(cookie) >= 43 and "оператор" not in cookie and "agent" not in cookie
    async with container.engine.connect() as conn:
        rows = (await conn.execute(select(t.sessions))).all()
    assert [row.token_hash for row in rows] == [hashlib.sha256(cookie.encode()).hexdigest()]
    assert cookie not in repr(rows)
    assert await _can_read(client, cookie) == 200
    assert await _ws_status(client, cookie) == 101
    who = await client.get("/api/v1/session", headers={"Cookie": f"cc_session={cookie}"})
    assert (await who.json())["login"] == "оператор"


async def test_secure_cookie_when_configured(settings, clock):
    from aiohttp.test_utils import TestClient, TestServer

    from callcenter import bootstrap
    from callcenter.adapters import db
    from callcenter.web.app import init_app

    c = bootstrap.build(settings.replace(http={"secure_cookies": True}), clock=clock)
    try:
        await db.upgrade(c.engine)
        await c.auth.add_user("оператор", "agent", PASSWORD, clock.now())
        async with TestClient(TestServer(init_app(c))) as client:
            r = await _login(client)
            assert r.status == 200
            assert r.cookies["cc_session"]["secure"]
    finally:
        await c.close()


async def test_logout_ends_the_session_for_every_copy_of_the_cookie(client, agent):
    cookie = (await _login(client)).cookies["cc_session"].value
    assert await _can_read(client, cookie) == 200
    r = await client.delete("/api/v1/session", headers={"Cookie": f"cc_session={cookie}"})
    assert r.status == 200
    assert r.cookies["cc_session"].value == ""  # the browser is told to forget it
    # and a copy kept anywhere is refused by the server
    assert await _can_read(client, cookie) == 401
    assert await _ws_status(client, cookie) == 401
    r = await client.delete("/api/v1/session", headers={"Cookie": f"cc_session={cookie}"})
    assert r.status == 200  # twice is harmless


async def test_disabling_a_user_ends_its_sessions_at_once(client, container, clock, agent):
    cookie = (await _login(client)).cookies["cc_session"].value
    assert await _can_read(client, cookie) == 200  # now cached in this process
    assert await container.auth.disable_user("оператор", clock.now())
    assert await _can_read(client, cookie) == 401
    assert await _ws_status(client, cookie) == 401
    assert (await _login(client)).status == 401
    async with container.engine.connect() as conn:
        assert (await conn.execute(select(t.sessions))).all() == []
    assert await container.auth.enable_user("оператор")
    assert await _can_read(client, cookie) == 401  # enabling does not revive old sessions
    assert (await _login(client)).status == 200


async def test_a_disabled_user_is_refused_even_if_its_session_row_survived(
    client, container, clock, agent
):
    """Authentication itself checks the user is enabled, not only the disable command."""
    from sqlalchemy import update

    cookie = (await _login(client)).cookies["cc_session"].value
    async with container.engine.begin() as conn:
        await conn.execute(update(t.users).values(disabled_at=clock.now()))
    clock.advance(3)  # past the in-process cache: as if another instance disabled the user
    assert await _can_read(client, cookie) == 401


async def test_a_new_password_ends_the_old_sessions(client, container, agent):
    cookie = (await _login(client)).cookies["cc_session"].value
    await container.auth.set_password("оператор", "новый-пароль-1")
    assert await _can_read(client, cookie) == 401
    assert await _ws_status(client, cookie) == 401
    assert (await _login(client)).status == 401
    assert (await _login(client, password="новый-пароль-1")).status == 200


async def test_the_session_cache_keeps_only_the_sessions_used_lately(container, clock, agent):
    """Twenty logins ten minutes apart, each session used once: the cache (2 s) keeps the
    last one, and then those used again, not all twenty (ended entries stayed until 10,000)."""
    auth = container.auth
    cookies = []
    for _ in range(20):
        cookies.append((await auth.open_session("оператор", PASSWORD, clock.now())).cookie)
        await auth.authenticate_session(cookies[-1], clock.now())
        clock.advance(600)
    assert len(auth._sessions) == 1
    await auth.authenticate_session(cookies[0], clock.now())  # an old session, still valid
    clock.advance(1)
    await auth.authenticate_session(cookies[-1], clock.now())
    assert len(auth._sessions) == 2  # both within their 2 s
    clock.advance(1.5)
    await auth.authenticate_session(cookies[1], clock.now())
    assert len(auth._sessions) == 2  # cookies[0]'s entry ended and left


async def test_sessions_expire(client, clock, agent):
    cookie = (await _login(client)).cookies["cc_session"].value
    clock.advance(12 * 3600 - 1)
    assert await _can_read(client, cookie) == 200
    assert await _ws_status(client, cookie) == 101
    clock.advance(2)
    assert await _can_read(client, cookie) == 401
    assert await _ws_status(client, cookie) == 401


@pytest.mark.parametrize(
    "cookie",
    [
        "A" * 43,
        "eyJuIjoiYSIsInIiOiJhZG1pbiJ9.00",  # the old signed format
        "é" * 10,
        "x" * 5000,
        "",
    ],
)
async def test_forged_cookies_are_refused(client, agent, cookie):
    await _login(client)  # a real session exists beside the forged one
    assert await _can_read(client, cookie) == 401
    assert await _ws_status(client, cookie) == 401


async def test_wrong_password_and_unknown_login_look_alike(client, agent):
    for login, password in (("оператор", "не-тот-пароль"), ("никто", PASSWORD)):
        r = await _login(client, login, password)
        assert (r.status, (await r.json())["error"]) == (401, "bad_credentials")
        assert "cc_session" not in r.cookies


async def test_password_hashing_runs_off_the_event_loop(container, clock):
    """scrypt takes ~40 ms; it runs in the service's own small pool, not on the loop."""
    loop_thread = threading.current_thread()
    seen: list[threading.Thread] = []
    from callcenter.services import auth as auth_module

    real = auth_module.verify_password

    nice: list[int] = []

    def spy(password: str, stored: str) -> bool:
        seen.append(threading.current_thread())
        if sys.platform.startswith("linux"):
            nice.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real(password, stored)

    await container.auth.add_user("оператор", "agent", PASSWORD, clock.now())
    auth_module.verify_password = spy
    try:
        await container.auth.login("оператор", PASSWORD)
    finally:
        auth_module.verify_password = real
    assert seen and all(t is not loop_thread for t in seen)
    assert all(t.name.startswith("password-hash") for t in seen)
    # below the loop's priority, so a burst of logins does not slow calls down
    assert all(n > os.getpriority(os.PRIO_PROCESS, 0) for n in nice)


@pytest.mark.parametrize("ending", ["logout", "disable", "expiry"])
async def test_an_open_socket_closes_when_its_session_ends(
    client, container, clock, agent, monkeypatch, ending
):
    from callcenter.web import calls_api

    monkeypatch.setattr(calls_api, "STREAM_RECHECK_SECONDS", 0.1)
    cookie = (await _login(client)).cookies["cc_session"].value
    ws = await client.ws_connect("/api/v1/stream", headers={"Cookie": f"cc_session={cookie}"})
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    assert (await ws.receive_json(timeout=5))["type"] == "desk"
    if ending == "logout":
        r = await client.delete("/api/v1/session", headers={"Cookie": f"cc_session={cookie}"})
        assert r.status == 200
    elif ending == "disable":
        assert await container.auth.disable_user("оператор", clock.now())
    else:
        clock.advance(container.settings.http.session_hours * 3600 + 1)
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == calls_api.SESSION_ENDED


async def test_one_recheck_for_all_sockets_closes_only_those_whose_session_ended(
    client, container, agent, monkeypatch
):
    from callcenter.web import calls_api

    monkeypatch.setattr(calls_api, "STREAM_RECHECK_SECONDS", 0.1)
    asked: list[int] = []
    real = container.auth.sessions_standing

    async def counting(cookies, now):
        asked.append(len(cookies))
        return await real(cookies, now)

    monkeypatch.setattr(container.auth, "sessions_standing", counting)
    cookies = [(await _login(client)).cookies["cc_session"].value for _ in range(3)]
    sockets = []
    for cookie in cookies:
        ws = await client.ws_connect("/api/v1/stream", headers={"Cookie": f"cc_session={cookie}"})
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        assert (await ws.receive_json(timeout=5))["type"] == "desk"
        sockets.append(ws)
    r = await client.delete("/api/v1/session", headers={"Cookie": f"cc_session={cookies[1]}"})
    assert r.status == 200
    msg = await sockets[1].receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE
    assert sockets[1].close_code == calls_api.SESSION_ENDED
    for ws in (sockets[0], sockets[2]):
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.3)  # several rechecks passed, their sessions stand
        assert not ws.closed
    assert 3 in asked  # the three sockets' sessions asked together, in one read
    for ws in (sockets[0], sockets[2]):
        await ws.close()


async def test_an_open_socket_stays_while_its_session_stands(client, agent, monkeypatch):
    from callcenter.web import calls_api

    monkeypatch.setattr(calls_api, "STREAM_RECHECK_SECONDS", 0.05)
    cookie = (await _login(client)).cookies["cc_session"].value
    ws = await client.ws_connect("/api/v1/stream", headers={"Cookie": f"cc_session={cookie}"})
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    assert (await ws.receive_json(timeout=5))["type"] == "desk"
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.5)  # ten rechecks passed, nothing closed it
    assert not ws.closed
    await ws.close()


async def test_an_open_socket_stays_while_the_database_cannot_recheck_its_session(
    client, container, clock, agent, monkeypatch, tmp_path, db_url
):
    """The database away at a re-check says nothing about the session: the socket stays
    (found by bench_load: every quiet socket closed at once in a moment of overload)."""
    from callcenter.web import calls_api

    if not db_url.startswith("sqlite"):
        pytest.skip("the database is taken away by moving its file")
    monkeypatch.setattr(calls_api, "STREAM_RECHECK_SECONDS", 0.05)
    cookie = (await _login(client)).cookies["cc_session"].value
    ws = await client.ws_connect("/api/v1/stream", headers={"Cookie": f"cc_session={cookie}"})
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    assert (await ws.receive_json(timeout=5))["type"] == "desk"
    files = [tmp_path / f"callcenter.sqlite3{end}" for end in ("", "-wal", "-shm")]
    away = tmp_path / "away"
    away.mkdir()
    await container.engine.dispose()
    for f in files:
        if f.exists():
            f.rename(away / f.name)
    clock.advance(60)  # past the sessions' short cache: each re-check reads the database
    try:  # a new connection finds an empty file: "no such table", an outage
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.5)  # ten re-checks failed, nothing closed it
        assert not ws.closed
    finally:
        await container.engine.dispose()
        for f in files:
            f.unlink(missing_ok=True)
            if (away / f.name).exists():
                (away / f.name).rename(f)
    # back: the re-checks resume, and a logout still closes the socket
    r = await client.delete("/api/v1/session", headers={"Cookie": f"cc_session={cookie}"})
    assert r.status == 200
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == calls_api.SESSION_ENDED
