"""A browser's session cookie cannot be made to act from another site (issue 9, Doors)."""

import pytest
from aiohttp import ClientSession, WSServerHandshakeError

USER = ("agent1", "agent-password-1")


@pytest.fixture
async def agent_cookie(client, container, clock):
    await container.auth.add_user(USER[0], "agent", USER[1], clock.now())
    r = await client.post("/api/v1/session", json={"login": USER[0], "password": USER[1]})
    assert r.status == 200
    return {"cc_session": r.cookies["cc_session"].value}


def origin(client) -> str:
    return f"http://{client.server.host}:{client.server.port}"


async def post(client, cookies, path, headers, **kw):
    async with ClientSession(cookies=cookies) as s:
        async with s.post(str(client.make_url(path)), headers=headers, **kw) as r:
            return r.status, await r.json()


@pytest.mark.parametrize(
    ("headers", "body", "refused"),
    [
        ({"Origin": "https://evil.example"}, {"json": {"note": "x"}}, (403, "csrf_refused")),
        ({"Origin": "null"}, {"json": {"note": "x"}}, (403, "csrf_refused")),
        ({"Sec-Fetch-Site": "cross-site"}, {"json": {"note": "x"}}, (403, "csrf_refused")),
        # what a cross-site form or a no-preflight fetch can send: refused before it is read
        ({}, {"data": "note=x", "headers": None}, (415, "unsupported_media_type")),
        ({}, {"data": '{"note": "x"}', "headers": None}, (415, "unsupported_media_type")),
    ],
)
async def test_cross_site_state_changes_are_refused(client, agent_cookie, headers, body, refused):
    kw = {k: v for k, v in body.items() if k != "headers"}
    if "data" in kw:
        headers = {**headers, "Content-Type": "text/plain"}
    status, answer = await post(client, agent_cookie, "/api/v1/complaints", headers, **kw)
    assert (status, answer["error"]) == refused
    r = await client.get("/metrics")
    kind = "csrf" if refused[1] == "csrf_refused" else "bad_input"
    assert f'callcenter_refusals_total{{kind="{kind}"}} 1.0' in await r.text()


async def test_same_origin_and_bearer_requests_go_through(client, agent_cookie, container, clock):
    same = {"Origin": origin(client), "Sec-Fetch-Site": "same-origin"}
    status, answer = await post(
        client, agent_cookie, "/api/v1/complaints", same, json={"note": "x"}
    )
    assert status == 201, answer
    status, _ = await post(client, agent_cookie, "/api/v1/complaints", {}, json={"note": "y"})
    assert status == 201  # no Origin at all: not a browser acting cross-site
    token = await container.auth.create_token("sup", "supervisor", clock.now())
    evil = {"Origin": "https://evil.example", "Authorization": f"Bearer {token}"}
    status, _ = await post(
        client, {}, "/api/v1/events", evil, json={"event": "call_started", "call_id": "1.1"}
    )
    assert status == 201  # a bearer token is not ambient: a foreign page cannot attach it


async def test_the_push_socket_refuses_a_foreign_origin(client, agent_cookie):
    url = str(client.make_url("/api/v1/stream"))
    async with ClientSession(cookies=agent_cookie) as s:
        with pytest.raises(WSServerHandshakeError) as refused:
            await s.ws_connect(url, headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
        async with s.ws_connect(url, headers={"Origin": origin(client)}) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello" and hello["login"] == USER[0]
