"""The agent's desk over a real socket, on SQLite and PostgreSQL (docs/agent-screen.md):
interfaces, ownership of calls, the pop, the push socket's targeting and catch-up, the
number the caller dictates, wrap-up, the agent's own lists."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import date

import pytest

from callcenter.domain.certificates import Certificate, Contact, HolderType, Service

CERT = "1234567"  # not a real check digit rule: numbers are free-form by default
CALLER = "+79161234567"


async def event(container, clock, **body):
    body.setdefault("at", clock.now().isoformat())
    await container.calls.record(body, clock.now())


async def connect(container, clock, call_id, agent, *, cert=CERT, status="VALID", ended=False):
    await event(container, clock, event="call_started", call_id=call_id, caller_number=CALLER)
    if cert:
        await event(
            container, clock, event="certificate_checked", call_id=call_id, certificate=cert,
            status=status, attempt=1,
        )  # fmt: skip
    await event(container, clock, event="queued", call_id=call_id, queue="support")
    if agent:
        await event(container, clock, event="agent_connected", call_id=call_id, agent=agent)
    if ended:
        await event(container, clock, event="call_ended", call_id=call_id, hangup_by="caller")


@pytest.fixture
async def registry(container, clock):
    await container.registry.import_certificates(
        [
            Certificate(
                number=CERT,
                holder_type=HolderType.ORGANISATION,
                holder_name="Пётр Сидоров",
                organisation="ООО «Ромашка»",
                product="Крипто-Про",
                version="5.0.13000",
                valid_from=date(2026, 1, 1),
                valid_to=date(2026, 12, 31),
                services=(Service.INSTALL, Service.ADMIN, Service.BUILD_UPDATE),
                contacts=[
                    Contact("Пётр Сидоров", CALLER),
                    Contact("Анна Смирнова", "+79990000000"),
                ],
            )
        ],
        clock.now(),
    )


# --- interfaces ------------------------------------------------------------------------------


async def test_admin_sets_interfaces_and_lists_users(client, people):
    r = await client.get("/api/v1/users", headers=people["root"])
    body = await r.json()
    assert r.status == 200
    by_login = {u["login"]: u for u in body["items"]}
    assert by_login["иванова"]["interfaces"] == ["PJSIP/101"]
    assert by_login["иванова"]["display_name"] == "Иванова Мария"
    assert (await client.get("/api/v1/users", headers=people["boss"])).status == 403

    url = "/api/v1/users/иванова/interfaces"
    r = await client.put(url, json={"interfaces": ["PJSIP/101", "Local/agent1@agents"]},
                         headers=people["root"])  # fmt: skip
    assert (r.status, (await r.json())["interfaces"]) == (
        200,
        ["PJSIP/101", "Local/agent1@agents"],
    )
    r = await client.put(url, json={"interfaces": ["PJSIP/102"]}, headers=people["root"])
    body = await r.json()
    assert (r.status, body["error"]) == (409, "interface_taken") and "петров" in body["message"]
    for bad in ({"interfaces": "PJSIP/1"}, {"interfaces": ["no slash"]}, {"x": []}):
        r = await client.put(url, json=bad, headers=people["root"])
        assert r.status == 422, bad
    r = await client.put(
        "/api/v1/users/nobody/interfaces", json={"interfaces": []}, headers=people["root"]
    )
    assert (r.status, (await r.json())["error"]) == (404, "no_such_user")
    r = await client.put(url, json={"interfaces": []}, headers=people["иванова"])
    assert r.status == 403


# --- ownership -------------------------------------------------------------------------------

CALL_ROUTES = [
    ("GET", "", None),
    ("PATCH", "", {"subject": "КриптоПро CSP"}),
    ("POST", "/extend", {"reason": "долгий вопрос", "seconds": 60}),
    ("POST", "/certificate", {"number": CERT}),
    ("POST", "/outcome", {"outcome": "resolved"}),
    ("POST", "/escalate", {"description": "нужен письменный ответ"}),
]


@pytest.mark.parametrize(
    ("who", "call", "allowed"),
    [
        ("иванова", "A.1", True),  # her own call
        ("петров", "A.1", False),  # another agent's call
        ("boss", "A.1", True),  # supervisors and admins see every call
        ("root", "A.1", True),
        ("петров", "N.1", True),  # a call on an interface nobody owns is everyone's
        ("иванова", "N.1", True),
    ],
)
async def test_ownership_on_every_call_route(client, container, clock, people, registry, who,
                                            call, allowed):  # fmt: skip
    await connect(container, clock, "A.1", "PJSIP/101")
    await connect(container, clock, "N.1", "PJSIP/999")
    for method, tail, body in CALL_ROUTES:
        r = await client.request(
            method, f"/api/v1/calls/{call}{tail}", json=body, headers=people[who]
        )
        if allowed:
            # allowed: whatever the action answers (a closed window's 409), never a 403
            assert r.status != 403 and r.status < 500, (method, tail, r.status)
            if method == "GET":
                assert r.status == 200
        else:
            assert (r.status, (await r.json())["error"]) == (403, "not_your_call"), (method, tail)
    listed = await client.get("/api/v1/calls", headers=people[who])
    ids = {c["call_id"] for c in (await listed.json())["items"]}
    assert ("A.1" in ids) == (who != "петров")
    assert "N.1" in ids


async def test_an_unknown_call_is_404_for_an_agent_too(client, people):
    r = await client.get("/api/v1/calls/nope.1", headers=people["петров"])
    assert (r.status, (await r.json())["error"]) == (404, "call_not_found")


# --- the desk and the pop --------------------------------------------------------------------


async def test_desk_with_the_pop(client, container, clock, people, registry):
    r = await client.get("/api/v1/agent/desk", headers=people["иванова"])
    desk = await r.json()
    assert r.status == 200 and desk["call"] is None
    assert desk["agent"]["display_name"] == "Иванова Мария"
    assert desk["agent"]["interfaces"] == ["PJSIP/101"]
    assert desk["agent"]["state"]["state"] == "available"
    assert desk["agent"]["pause"] == {"available": False, "why": desk["agent"]["pause"]["why"]}
    assert "AMI" in desk["agent"]["pause"]["why"]

    # an earlier call of the same certificate, escalated: its open ticket shows in the pop
    await connect(container, clock, "old.1", "PJSIP/102")
    await container.calls.escalate("old.1", "петров", clock.now(), description="старая беда")
    clock.advance(600)
    await connect(container, clock, "A.2", "PJSIP/101")
    desk = await (await client.get("/api/v1/agent/desk", headers=people["иванова"])).json()
    assert desk["agent"]["state"]["state"] == "in_call"
    pop = desk["call"]
    assert pop["call_id"] == "A.2" and pop["caller_number"] == CALLER
    assert pop["certificate_status"] == "VALID"
    cert = pop["certificate"]
    assert cert["holder_name"] == "Пётр Сидоров" and cert["organisation"] == "ООО «Ромашка»"
    assert cert["holder_type"] == "organisation"
    assert cert["days_left"] == (date(2026, 12, 31) - date(2026, 3, 17)).days
    assert cert["version"] == "5" and cert["build"] == "0.13000" and "5" in cert["version_note"]
    covered = {s["code"]: s["covered"] for s in cert["services"]}
    assert covered == {
        "install": True, "admin": True, "kit_restore": False, "recovery": False,
        "build_update": True,
    }  # fmt: skip
    assert cert["services"][0]["title"] == "Установка и настройка"
    contacts = {c["full_name"]: c["is_caller"] for c in cert["contacts"]}
    assert contacts == {"Пётр Сидоров": True, "Анна Смирнова": False}
    assert pop["window"]["status"] == "open" and pop["window"]["remaining_seconds"] == 600.0
    assert [c["call_id"] for c in pop["last_calls"]] == ["old.1"]
    assert pop["last_calls"][0]["outcome"] == "escalated"
    assert [t["description"] for t in pop["open_tickets"]] == ["старая беда"]
    assert pop["open_tickets"][0]["due_at"].endswith("+03:00")
    assert pop["identity"] == {"caller_name": "", "organisation": "", "check": None}

    # the agent's own records: subject, identity mark (and clearing it), Cyrillic round trip
    url = "/api/v1/calls/A.2"
    r = await client.patch(
        url,
        json={"caller_name": "Пётр Сидоров", "subject": "КриптоПро CSP 5.0",
              "identity_check": "mismatch", "category": "install"},
        headers=people["иванова"],
    )  # fmt: skip
    assert r.status == 200
    pop = (await (await client.get("/api/v1/agent/desk", headers=people["иванова"])).json())["call"]
    assert pop["identity"] == {"caller_name": "Пётр Сидоров", "organisation": "",
                               "check": "mismatch"}  # fmt: skip
    assert (pop["subject"], pop["category"]) == ("КриптоПро CSP 5.0", "install")
    r = await client.patch(url, json={"identity_check": None}, headers=people["иванова"])
    assert r.status == 200
    r = await client.patch(url, json={"identity_check": "maybe"}, headers=people["иванова"])
    assert (r.status, list((await r.json())["fields"])) == (422, ["identity_check"])
    desk = await (await client.get("/api/v1/agent/desk", headers=people["иванова"])).json()
    assert desk["call"]["identity"]["check"] is None

    # escalating: the ticket with its due time in words
    r = await client.post(
        f"{url}/escalate", json={"description": "нужен ответ"}, headers=people["иванова"]
    )
    assert r.status == 200
    desk = await (await client.get("/api/v1/agent/desk", headers=people["иванова"])).json()
    ticket = desk["call"]["ticket"]
    # Tue 17 March 11:10 + 12 working hours (6:50 on Tuesday, 5:10 on Wednesday from 09:00)
    assert ticket["due_at"] == "2026-03-18T14:10:00+03:00"
    assert ticket["due_words_ru"] == "до 14:10 среды, 18 марта"
    assert ticket["due_words_en"] == "by 14:10 on Wednesday, 18 March"
    # Petrov's desk shows none of it
    other = await (await client.get("/api/v1/agent/desk", headers=people["петров"])).json()
    assert other["call"] is None or other["call"]["call_id"] != "A.2"


async def test_the_pops_driver_read_equals_the_unit_of_works(container, clock, people, registry):
    """The pop's rows are read on the driver (``CertificateReader.pop_parts``, no unit of
    work); the unit of work's repositories read the same rows: the same pop either way."""
    from callcenter.web import views

    await connect(container, clock, "old.1", "PJSIP/102")
    await container.calls.escalate("old.1", "петров", clock.now(), description="старая беда")
    clock.advance(600)
    await connect(container, clock, "old.2", "PJSIP/102", ended=True)
    clock.advance(600)
    await connect(container, clock, "A.2", "PJSIP/101")
    await container.calls.extend("A.2", "долгий разговор", "иванова", clock.now(), 120)
    clock.advance(10)
    await container.calls.extend("A.2", "ещё вопрос", "иванова", clock.now(), 60)
    clock.advance(30)
    await container.calls.escalate("A.2", "иванова", clock.now(), description="письменно")
    desk, now = container.desk, clock.now()
    reader = desk.reader
    assert reader is not None
    fast = await desk.pop("A.2", now)
    desk.reader = None
    try:
        slow = await desk.pop("A.2", now)
    finally:
        desk.reader = reader
    assert fast.detail.call == slow.detail.call
    assert fast.detail.window == slow.detail.window
    assert [x.reason for x in fast.detail.window.extensions] == ["долгий разговор", "ещё вопрос"]
    assert fast.detail.ticket == slow.detail.ticket and fast.detail.ticket is not None
    assert fast.last_calls == slow.last_calls
    assert [c["call_id"] for c in fast.last_calls] == ["old.2", "old.1"]  # the latest first
    assert fast.open_tickets == slow.open_tickets and len(fast.open_tickets) == 2
    assert views.pop_json(fast, now) == views.pop_json(slow, now)
    assert await reader.pop_parts("no-such-call") is None


async def test_wrapup_and_the_agents_own_lists(client, container, clock, people, registry):
    await connect(container, clock, "A.3", "PJSIP/101")
    r = await client.post("/api/v1/agent/wrapup/done", json={}, headers=people["иванова"])
    assert (r.status, (await r.json())["error"]) == (409, "call_in_progress")
    clock.advance(60)
    await event(container, clock, event="call_ended", call_id="A.3", hangup_by="caller")
    desk = await (await client.get("/api/v1/agent/desk", headers=people["иванова"])).json()
    assert desk["agent"]["state"]["state"] == "wrap_up"
    assert desk["call"]["ended_at"] == "2026-03-17T11:01:00+03:00"
    r = await client.post("/api/v1/agent/wrapup/done", json={}, headers=people["иванова"])
    body = await r.json()
    assert r.status == 200 and body["call_id"] == "A.3"
    assert body["state"]["state"] == "available"
    desk = await (await client.get("/api/v1/agent/desk", headers=people["иванова"])).json()
    assert desk["call"] is None

    await connect(container, clock, "B.1", "PJSIP/102")
    await container.calls.escalate("B.1", "петров", clock.now(), description="письменно")
    r = await client.get("/api/v1/agent/calls", headers=people["иванова"])
    body = await r.json()
    assert body["day"] == "2026-03-17"
    assert [c["call_id"] for c in body["items"]] == ["A.3"]
    assert body["items"][0]["window_status"] == "met"
    r = await client.get("/api/v1/agent/calls?day=2026-03-16", headers=people["иванова"])
    assert (await r.json())["items"] == []
    r = await client.get("/api/v1/agent/calls?day=вчера", headers=people["иванова"])
    assert (r.status, (await r.json())["error"]) == (422, "invalid_query")
    r = await client.get("/api/v1/agent/tickets", headers=people["петров"])
    items = (await r.json())["items"]
    assert [t["call_id"] for t in items] == ["B.1"]
    assert items[0]["due_words_ru"].startswith("до ")
    r = await client.get("/api/v1/agent/tickets", headers=people["иванова"])
    assert (await r.json())["items"] == []


# --- the number the caller dictates ----------------------------------------------------------


async def test_certificate_typed_by_the_agent(client, container, clock, people, registry):
    await connect(container, clock, "U.1", "PJSIP/101", cert=None)
    await event(container, clock, event="certificate_checked", call_id="U.1",
                status="UNVERIFIED", attempt=1)  # fmt: skip
    url = "/api/v1/calls/U.1/certificate"
    r = await client.post(url, json={"number": CERT}, headers=people["иванова"])
    pop = await r.json()
    assert r.status == 200, pop
    assert pop["certificate_status"] == "VALID"
    assert pop["certificate"]["holder_name"] == "Пётр Сидоров"
    events = (await (await client.get("/api/v1/calls/U.1", headers=people["иванова"])).json())[
        "events"
    ]
    typed = [e for e in events if e["event"] == "certificate_checked" and e["source"] == "agent"]
    assert [(e["certificate"], e["status"]) for e in typed] == [(CERT, "VALID")]

    r = await client.post(url, json={"number": ""}, headers=people["иванова"])
    assert r.status == 422
    # unknown numbers count against the caller's number, as in the IVR: 5 and locked
    statuses = []
    for n in range(5):
        clock.advance(1)  # each try at its own instant, as typed
        r = await client.post(url, json={"number": f"99900{n:02d}"}, headers=people["иванова"])
        statuses.append((r.status, (await r.json())["error"]))
    assert statuses[:4] == [(404, "certificate_unknown")] * 4
    assert statuses[4][0] == 429
    clock.advance(1)
    r = await client.post(url, json={"number": CERT}, headers=people["иванова"])
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0  # even a valid number
    call = await (await client.get("/api/v1/calls/U.1", headers=people["иванова"])).json()
    assert call["certificate_status"] == "LOCKED"


# --- the push socket -------------------------------------------------------------------------


async def _open(client, headers):
    ws = await client.ws_connect("/api/v1/stream", headers=headers)
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    desk = await ws.receive_json(timeout=5)
    assert desk["type"] == "desk"
    return ws, desk


async def _next(ws, *skip: str) -> dict:
    while True:
        msg = await ws.receive_json(timeout=5)
        if msg["type"] not in skip:
            return msg


async def _popped(ws, call_id: str, *skip: str) -> dict:
    """The call's pop on this socket, window and all: one ``call_connected``, sent as the
    event is received (no window yet: then a ``call_updated`` brings the pop with it once the
    event is stored) or, when the event was stored before the socket read the call, with its
    ``window_opened``. Nothing about another call comes in between."""
    pop = None
    while True:
        msg = await _next(ws, "window_opened", *skip)
        call = msg.get("call") or {}
        assert call.get("call_id") == call_id, msg
        if msg["type"] == "call_connected":
            assert pop is None, f"{call_id} popped twice"
            pop = msg
            assert call["connected_at"] is not None and call["agent"] is not None
        else:
            assert (msg["type"], pop is not None) == ("call_updated", True), msg
        if call["window"] is not None:
            return msg


@contextlib.asynccontextmanager
async def _writes_held(db_url: str):
    """The call log's writes held by another connection (the database's own lock): what the
    service stores waits until the block ends."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.split("///", 1)[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # the one writer's lock: the service's writer waits
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    tx = conn.transaction()
    await tx.start()
    await conn.execute("LOCK TABLE call_events IN SHARE ROW EXCLUSIVE MODE")  # no inserts
    try:
        yield
    finally:
        await tx.rollback()
        await conn.close()


async def test_the_pop_does_not_wait_for_the_event_to_be_stored(
    client, container, clock, people, registry, db_url
):
    """The agent sees who calls as the event arrives, while the call log's write still waits;
    the window (the countdown) follows once it is stored; the same event again pops nothing."""
    a, _ = await _open(client, people["иванова"])
    await connect(container, clock, "E.1", None)  # the IVR's part, stored
    async with _writes_held(db_url):
        stored = asyncio.ensure_future(
            event(container, clock, event="agent_connected", call_id="E.1", agent="PJSIP/101")
        )
        msg = await _next(a)
        assert (msg["type"], msg["call"]["call_id"]) == ("call_connected", "E.1")
        assert msg["call"]["certificate"]["holder_name"] == "Пётр Сидоров"
        assert msg["call"]["connected_at"] == clock.now().isoformat()
        assert (msg["call"]["agent"], msg["call"]["window"]) == ("PJSIP/101", None)
        await asyncio.sleep(0.2)
        assert not stored.done()  # still waiting for the database: the pop did not
    await stored
    msg = await _next(a, "window_opened")
    assert (msg["type"], msg["call"]["call_id"]) == ("call_updated", "E.1")
    assert msg["call"]["window"]["status"] == "open"

    # the same event again (a retry): stored once, popped once
    await event(container, clock, event="agent_connected", call_id="E.1", agent="PJSIP/101")
    await event(container, clock, event="call_ended", call_id="E.1", hangup_by="caller")
    assert (await _next(a, "window_met"))["type"] == "call_ended"
    await a.close()


async def test_stream_targets_owners_and_catches_up(client, container, clock, people, registry):
    # no socket open: event ingest builds no pop at all
    await connect(container, clock, "early.1", "PJSIP/101", ended=True)
    assert container.desk.pops_built == 0

    a, desk_a = await _open(client, people["иванова"])
    b, _ = await _open(client, people["петров"])
    boss, _ = await _open(client, people["boss"])
    assert desk_a["call"]["call_id"] == "early.1"  # ended, not done: wrap-up
    assert desk_a["agent"]["state"]["state"] == "wrap_up"
    await client.post("/api/v1/agent/wrapup/done", json={}, headers=people["иванова"])
    assert (await _next(a, "call_updated"))["type"] == "agent_state"
    assert (await _next(boss, "call_updated"))["login"] == "иванова"

    built = container.desk.pops_built
    await connect(container, clock, "A.1", "PJSIP/101")
    msg = await _popped(a, "A.1")
    assert msg["call"]["certificate"]["holder_name"] == "Пётр Сидоров"
    assert msg["call"]["agent"] == "PJSIP/101"
    assert (await _popped(boss, "A.1", "queue_changed"))["call"]["call_id"] == "A.1"
    # one pop built per note (the event received, the event stored), shared by both sockets
    assert container.desk.pops_built == built + 2

    # Petrov's next message is about his own call: nothing of A.1 reached him before it
    await connect(container, clock, "B.1", "PJSIP/102")
    assert (await _popped(b, "B.1"))["call"]["agent"] == "PJSIP/102"
    await _popped(boss, "B.1", "queue_changed")

    # an update by the owner reaches the owner and the supervisor, with the pop
    r = await client.patch("/api/v1/calls/A.1", json={"subject": "ЭЦП"}, headers=people["иванова"])
    assert r.status == 200
    msg = await _next(a)
    assert (msg["type"], msg["call"]["subject"]) == ("call_updated", "ЭЦП")
    assert (await _next(boss))["call"]["subject"] == "ЭЦП"

    # a reload mid-call: the desk frame carries the pop and the countdown back
    await a.close()
    clock.advance(120)
    a, desk_a = await _open(client, people["иванова"])
    assert desk_a["call"]["call_id"] == "A.1" and desk_a["call"]["subject"] == "ЭЦП"
    assert desk_a["call"]["window"]["remaining_seconds"] == 480.0
    assert desk_a["agent"]["state"]["state"] == "in_call"

    # the warning, the overrun and the ticket, keyed by call, each with what it carries
    clock.advance(360)
    await container.scheduler.fire_due()
    msg = await _next(a)
    assert (msg["type"], msg["call_id"]) == ("window_warning", "A.1")
    assert msg["window"]["warned_at"] is not None
    clock.advance(200)
    await container.scheduler.fire_due()
    kinds = {}
    while len(kinds) < 2:
        m = await _next(a)
        kinds[m["type"]] = m
    assert kinds["window_overrun"]["window"]["status"] == "overrun"
    assert kinds["ticket_created"]["ticket"]["due_words_ru"].startswith("до ")

    # call ended: the owner hears of it; the other agent does not (his next is his own)
    await event(container, clock, event="call_ended", call_id="A.1", hangup_by="caller")
    msg = await _next(a, "window_met", "ticket_withdrawn")
    assert (msg["type"], msg["call_id"]) == ("call_ended", "A.1")
    assert msg["ended_at"] == clock.now().isoformat()
    await event(container, clock, event="call_ended", call_id="B.1", hangup_by="caller")
    msg = await _next(b, "window_met", "window_overrun", "ticket_created", "window_warning")
    assert (msg["type"], msg["call_id"]) == ("call_ended", "B.1")

    # a call on nobody's interface reaches every agent
    await connect(container, clock, "N.1", "PJSIP/999")
    for ws in (a, b):
        await _popped(ws, "N.1", "window_met", "ticket_withdrawn")
    for ws in (a, b, boss):
        await ws.close()


async def test_the_owners_kept_in_memory_follow_the_call_rate_not_the_calls_served(
    container, clock, monkeypatch
):
    """The owners cache (for routing pushes) prunes what expired: a service that has routed
    many calls keeps only the recent ones (the load test's memory must not grow with calls)."""
    from callcenter.services import agent_desk

    monkeypatch.setattr(agent_desk, "OWNERS_PRUNE_AT", 20)
    monkeypatch.setattr(agent_desk, "OWNER_CACHE_SECONDS", 0.0)  # each expires at once
    for i in range(200):
        note = {"type": "window_opened", "call_id": f"9.{i}", "agent": "PJSIP/101"}
        await container.desk.owner_of_note(note)
    assert container.desk.owners_kept <= 20
    monkeypatch.setattr(agent_desk, "OWNER_CACHE_SECONDS", 3600.0)  # all live: bounded too
    for i in range(200):
        note = {"type": "window_opened", "call_id": f"8.{i}", "agent": "PJSIP/101"}
        await container.desk.owner_of_note(note)
    assert container.desk.owners_kept <= 20
