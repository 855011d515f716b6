"""The call/ticket API over a real socket: roles, errors, session login, push."""

from __future__ import annotations

from datetime import date

import pytest

from callcenter.domain.certificates import Certificate, HolderType


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def agent_client(client, container, clock):
    await container.auth.add_user(
        "оператор", "agent", "пароль-агента", clock.now(), display_name="Оператор Иванова"
    )
    r = await client.post(
        "/api/v1/session", json={"login": "оператор", "password": "пароль-агента"}
    )
    assert r.status == 200
    return client


async def post_event(client, token, **body):
    return await client.post("/api/v1/events", json=body, headers=bearer(token))


async def test_events_are_strict_and_idempotent(client, pbx_token):
    r = await post_event(
        client,
        pbx_token,
        event="agent_connected",
        call_id="5.1",
        agent="PJSIP/101",
        at="2026-03-17T11:00:00+03:00",
    )
    assert r.status == 201
    again = await post_event(
        client,
        pbx_token,
        event="agent_connected",
        call_id="5.1",
        agent="PJSIP/101",
        at="2026-03-17T11:00:00+03:00",
    )
    assert (again.status, (await again.json())["duplicate"]) == (200, True)
    for bad in (
        {"event": "teleported", "call_id": "5.1"},
        {"event": "queued", "call_id": "5.1"},
        {"event": "queued", "call_id": "5.1", "queue": 7},
        {"event": "queued", "call_id": "5.1", "queue": "q", "colour": "red"},
        {"event": "queued", "call_id": "a b", "queue": "q"},
        {"event": "queued", "call_id": "5.1", "queue": "q", "at": "yesterday"},
        {"event": "certificate_checked", "call_id": "5.1", "status": "MAYBE"},
    ):
        r = await client.post("/api/v1/events", json=bad, headers=bearer(pbx_token))
        body = await r.json()
        assert r.status == 422, bad
        assert body["error"] == "invalid_event" and body["fields"]
    as_json = {**bearer(pbx_token), "Content-Type": "application/json"}
    r = await client.post("/api/v1/events", data=b"{not json", headers=as_json)
    assert (r.status, (await r.json())["error"]) == (400, "malformed_json")
    r = await client.post("/api/v1/events", data="[1,2]", headers=as_json)
    assert r.status == 400
    r = await client.post("/api/v1/events", data=b"{}", headers=bearer(pbx_token))
    assert (r.status, (await r.json())["error"]) == (415, "unsupported_media_type")


async def test_roles(client, pbx_token, supervisor_token, container, clock):
    await post_event(client, pbx_token, event="agent_connected", call_id="5.2", agent="PJSIP/1")
    assert (await client.get("/api/v1/calls/5.2", headers=bearer(pbx_token))).status == 403
    r = await client.get("/api/v1/calls/5.2", headers=bearer(supervisor_token))
    body = await r.json()
    assert r.status == 200 and body["window"]["status"] == "open"
    assert body["window"]["deadline_at"].endswith("+03:00")
    r = await client.get("/api/v1/calls/nope", headers=bearer(supervisor_token))
    assert (r.status, (await r.json())["error"]) == (404, "call_not_found")
    r = await client.get("/api/v1/calls?status=open", headers=bearer(supervisor_token))
    assert (await r.json())["total"] == 1
    r = await client.get("/api/v1/calls?from=someday", headers=bearer(supervisor_token))
    assert r.status == 422
    r = await client.get("/api/v1/calls?limit=100000", headers=bearer(supervisor_token))
    assert r.status == 422
    r = await client.get("/api/v1/tickets/abc", headers=bearer(supervisor_token))
    assert r.status == 422
    r = await client.get("/api/v1/tickets/77", headers=bearer(supervisor_token))
    assert r.status == 404


async def test_agent_session_and_actions(agent_client, pbx_token, container, clock):
    client = agent_client
    assert (await (await client.get("/api/v1/session")).json())["role"] == "agent"
    await post_event(client, pbx_token, event="agent_connected", call_id="5.3", agent="PJSIP/1")
    r = await client.patch(
        "/api/v1/calls/5.3",
        json={
            "caller_name": "Щербакова Ёлка Юрьевна",
            "organisation": "ООО «Ёж»",
            "description": "Ошибка при запуске",
            "category": "recovery",
        },
    )
    assert (await r.json())["caller_name"] == "Щербакова Ёлка Юрьевна"
    r = await client.patch("/api/v1/calls/5.3", json={"category": "astrology"})
    assert r.status == 422
    r = await client.post("/api/v1/calls/5.3/extend", json={"seconds": 120})
    assert (r.status, (await r.json())["error"]) == (422, "reason_required")
    r = await client.post("/api/v1/calls/5.3/extend", json={"reason": "проверка", "seconds": 120})
    assert (await r.json())["window"]["status"] == "extended"
    r = await client.post("/api/v1/calls/5.3/escalate", json={})
    body = await r.json()
    assert body["ticket"]["full_name"] == "Щербакова Ёлка Юрьевна"
    assert body["ticket"]["organisation"] == "ООО «Ёж»"
    r = await client.post("/api/v1/calls/5.3/escalate", json={})
    assert (r.status, (await r.json())["error"]) == (409, "window_closed")
    r = await client.post("/api/v1/calls/5.3/outcome", json={"outcome": "maybe"})
    assert r.status == 422
    r = await client.get("/api/v1/reviews")
    assert r.status == 403  # agents do not read the review list
    await client.delete("/api/v1/session")
    assert (await client.get("/api/v1/calls/5.3")).status == 401


async def test_tampered_session_cookie_is_refused(client):
    client.session.cookie_jar.update_cookies({"cc_session": "eyJuIjoiYSIsInIiOiJhZG1pbiJ9.00"})
    assert (await client.get("/api/v1/calls")).status == 401


async def test_portal_tickets_over_http(client, container, clock, pbx_token):
    token = await container.auth.create_token("portal", "portal", clock.now())
    await container.registry.import_certificates(
        [
            Certificate(
                "7654321",
                HolderType.PERSON,
                "Иванов",
                "",
                "П",
                "5.0.1",
                date(2026, 1, 1),
                date(2026, 12, 31),
            )
        ],
        clock.now(),
    )
    r = await client.post(
        "/api/v1/tickets", json={"description": "не работает"}, headers=bearer(token)
    )
    body = await r.json()
    assert r.status == 422 and set(body["fields"]) == {"full_name", "certificate"}
    r = await client.post(
        "/api/v1/tickets",
        json={
            "full_name": "Иванов Иван Иванович",
            "certificate": "7654321",
            "description": "Не устанавливается",
            "category": "install",
        },
        headers=bearer(token),
    )
    created = await r.json()
    assert r.status == 201 and created["source"] == "portal"
    assert created["due_at"] == "2026-03-18T14:00:00+03:00"  # Tue 11:00 + 12 working hours
    r = await client.get(f"/api/v1/tickets/{created['id']}", headers=bearer(token))
    assert (await r.json())["full_name"] == "Иванов Иван Иванович"
    r = await client.post("/api/v1/tickets", json={"description": "x"}, headers=bearer(pbx_token))
    assert r.status == 403


async def test_push_over_websocket(agent_client, pbx_token, container, clock):
    async with agent_client.ws_connect("/api/v1/stream") as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello" and hello["role"] == "agent"
        desk = await ws.receive_json(timeout=5)  # the catch-up frame (docs/agent-screen.md)
        assert (desk["type"], desk["call"]) == ("desk", None)
        await post_event(
            agent_client, pbx_token, event="agent_connected", call_id="5.9", agent="PJSIP/1"
        )
        msg = await ws.receive_json(timeout=5)
        assert (msg["type"], msg["call_id"]) == ("window_opened", "5.9")
        msg = await ws.receive_json(timeout=5)
        assert (msg["type"], msg["call"]["call_id"]) == ("call_connected", "5.9")
        clock.advance(480)
        await container.scheduler.fire_due()
        msg = await ws.receive_json(timeout=5)
        assert msg["type"] == "window_warning"


async def test_odd_shapes_are_4xx_not_500(agent_client, pbx_token):
    r = await agent_client.post(
        "/api/v1/events", json={"event": [], "call_id": "1.1"}, headers=bearer(pbx_token)
    )
    assert r.status == 422
    await post_event(
        agent_client, pbx_token, event="agent_connected", call_id="6.1", agent="PJSIP/1"
    )
    r = await agent_client.post(
        "/api/v1/calls/6.1/outcome", json={"outcome": "refused", "reason": {"a": 1}}
    )
    assert r.status == 422
    r = await agent_client.post("/api/v1/calls/6.1/extend", json={"reason": "x", "seconds": 0})
    assert r.status == 422


async def test_every_instant_is_moscow_time_with_its_offset(client, pbx_token, supervisor_token):
    """The README's promise, for the two answers that gave UTC: a call's events and the IVR."""
    await post_event(
        client,
        pbx_token,
        event="agent_connected",
        call_id="5.9",
        agent="PJSIP/1",
        at="2026-03-17T08:00:00Z",
    )
    body = await (await client.get("/api/v1/calls/5.9", headers=bearer(supervisor_token))).json()
    assert [e["at"] for e in body["events"]] == ["2026-03-17T11:00:00+03:00"]
    r = await client.get(
        "/api/v1/ivr/working-time?at=2026-03-17T08:00:00Z", headers=bearer(pbx_token)
    )
    body = await r.json()
    assert body["at"] == "2026-03-17T11:00:00+03:00"
    assert body["next_opening"].endswith("+03:00")


async def test_patch_takes_description_as_the_readme_says(client, supervisor_token, pbx_token):
    await post_event(client, pbx_token, event="agent_connected", call_id="5.10", agent="PJSIP/1")
    r = await client.patch(
        "/api/v1/calls/5.10",
        json={"description": "Не запускается модуль", "category": "recovery"},
        headers=bearer(supervisor_token),
    )
    assert (r.status, (await r.json())["description"]) == (200, "Не запускается модуль")
    r = await client.patch(
        "/api/v1/calls/5.10", json={"problem": "x"}, headers=bearer(supervisor_token)
    )
    assert r.status == 422 and "problem" in (await r.json())["fields"]


async def test_a_socket_that_falls_a_queue_behind_gets_a_resync_desk(
    client, supervisor_token, container
):
    """The board's socket takes every note; one that falls a whole queue behind is not left
    with a stream with holes in it: it gets a fresh desk marked ``resync`` (the board reads
    itself again on it), then what came after."""
    async with client.ws_connect("/api/v1/stream", headers=bearer(supervisor_token)) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        assert (await ws.receive_json(timeout=5))["type"] == "desk"
        for i in range(600):  # at once: the socket's task gets no turn in between
            container.notifier.publish({"type": "queue_changed", "n": i})
        container.notifier.publish({"type": "queue_changed", "n": "last"})
        frames = []
        while not frames or frames[-1].get("n") != "last":
            frames.append(await ws.receive_json(timeout=5))
    resyncs = [f for f in frames if f["type"] == "desk"]
    assert len(resyncs) >= 1 and all(f["resync"] is True for f in resyncs)
    assert frames[0]["type"] == "desk"  # what was lost is not sent: the desk comes first
    assert len(frames) < 600
