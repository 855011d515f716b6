"""Pause and unpause: the page to Asterisk (``QueuePause``) and the phone to the page
(``QueueMemberPause``), against the fake AMI server on a real socket, on both databases."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.serve import ami_context
from callcenter.web.app import init_app
from tests.ami_server import FakeAmiServer
from tests.integration.desk_people import PASSWORD, cookie
from tests.integration.test_agent_desk import _next, _open


async def test_without_ami_pausing_is_refused_with_a_reason(client, container, clock):
    await container.auth.add_user("иванова", "agent", PASSWORD, clock.now())
    headers = cookie((await container.auth.open_session("иванова", PASSWORD, clock.now())).cookie)
    r = await client.put("/api/v1/agent/state", json={"paused": True}, headers=headers)
    body = await r.json()
    assert (r.status, body["error"]) == (409, "ami_unavailable") and "AMI" in body["message"]
    r = await client.put("/api/v1/agent/state", json={"paused": "yes"}, headers=headers)
    assert (r.status, list((await r.json())["fields"])) == (422, ["paused"])


@pytest.fixture
async def ami():
    async with FakeAmiServer() as server:
        server.members = {"PJSIP/101": ["support", "vip"], "PJSIP/102": ["support"]}
        yield server


@pytest.fixture
async def ami_client(settings, clock, ami):
    s = settings.replace(
        ami={"enabled": True, "host": ami.host, "port": ami.port, "username": "test",
             "secret": "test"},
    )  # fmt: skip
    c = bootstrap.build(s, clock=clock)
    await db.upgrade(c.engine)
    try:
        async with TestClient(TestServer(init_app(c, extra_contexts=[ami_context]))) as cli:
            await ami.wait_logins(1)
            yield cli, c
    finally:
        await c.close()


async def _people(c, clock):
    out = {}
    for login, iface in (("иванова", "PJSIP/101"), ("петров", "PJSIP/102")):
        await c.auth.add_user(login, "agent", PASSWORD, clock.now())
        await c.desk.set_interfaces(login, [iface], clock.now())
        out[login] = cookie((await c.auth.open_session(login, PASSWORD, clock.now())).cookie)
    return out


async def test_pause_reaches_asterisk_and_the_phone_reaches_the_page(ami_client, ami, clock):
    client, c = ami_client
    people = await _people(c, clock)
    a, desk = await _open(client, people["иванова"])
    assert desk["agent"]["pause"] == {"available": True, "why": None}
    b, _ = await _open(client, people["петров"])

    r = await client.put(
        "/api/v1/agent/state", json={"paused": True, "reason": "обед"}, headers=people["иванова"]
    )
    body = await r.json()
    assert r.status == 200, body
    assert body["state"] == {"state": "paused", "reason": "обед", "since": clock.now().isoformat()}
    pauses = [x for x in ami.actions if x["Action"] == "QueuePause"]
    assert [(x["Interface"], x["Paused"], x["Reason"]) for x in pauses] == [
        ("PJSIP/101", "true", "обед")
    ]
    msg = await _next(a)
    assert (msg["type"], msg["login"], msg["state"]["state"]) == (
        "agent_state",
        "иванова",
        "paused",
    )
    desk = await (await client.get("/api/v1/agent/desk", headers=people["иванова"])).json()
    assert desk["agent"]["state"]["reason"] == "обед"

    # unpaused on the phone: QueueMemberPause (one per queue) reaches her page, once
    clock.advance(60)
    await ami.member_paused("PJSIP/101", False)
    msg = await _next(a)
    assert (msg["type"], msg["state"]["state"], msg["state"]["reason"]) == (
        "agent_state", "available", None,
    )  # fmt: skip
    await ami.member_paused("PJSIP/101", True, "перерыв")
    msg = await _next(a)
    assert (msg["state"]["state"], msg["state"]["reason"]) == ("paused", "перерыв")

    # Petrov heard none of it: his first message is his own state
    await ami.member_paused("PJSIP/102", True, "звонок")
    msg = await _next(b)
    assert (msg["type"], msg["login"], msg["state"]["reason"]) == (
        "agent_state",
        "петров",
        "звонок",
    )

    r = await client.put("/api/v1/agent/state", json={"paused": False}, headers=people["иванова"])
    assert (await r.json())["state"]["state"] == "available"
    last = [x for x in ami.actions if x["Action"] == "QueuePause"][-1]
    assert (last["Interface"], last["Paused"]) == ("PJSIP/101", "false")
    assert "Reason" not in last

    # an interface Asterisk does not know: its refusal, named
    await c.desk.set_interfaces("петров", ["PJSIP/555"], clock.now())
    r = await client.put("/api/v1/agent/state", json={"paused": True}, headers=people["петров"])
    body = await r.json()
    assert (r.status, body["error"]) == (409, "ami_refused") and "Interface not found" in body[
        "message"
    ]

    # AMI down: 503, and nothing recorded
    await ami.stop()
    r = await client.put("/api/v1/agent/state", json={"paused": True}, headers=people["иванова"])
    assert (r.status, (await r.json())["error"]) == (503, "ami_down")
    desk = await (await client.get("/api/v1/agent/desk", headers=people["иванова"])).json()
    assert desk["agent"]["state"]["state"] == "available"
    await a.close()
    await b.close()


def test_queue_member_pause_mapping():
    from callcenter.adapters.ami_events import member_pause, to_call_event

    ev = {"Event": "QueueMemberPause", "Interface": "PJSIP/101", "Paused": "1",
          "PausedReason": "обед", "Queue": "support"}  # fmt: skip
    assert member_pause(ev) == ("PJSIP/101", True, "обед")
    assert to_call_event(ev) is None  # not a call event
    assert member_pause({**ev, "Paused": "0", "PausedReason": ""}) == ("PJSIP/101", False, None)
    assert member_pause({**ev, "Paused": "maybe"}) is None
    assert member_pause({"Event": "QueueMemberStatus", "Interface": "PJSIP/101"}) is None
