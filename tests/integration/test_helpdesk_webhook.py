"""The signed webhook both ways, against real sockets.

Out: a receiver (a real aiohttp server) verifies ``X-Callcenter-Signature`` over the raw body
with the shared secret, as the contract tells a helpdesk to, and refuses forged, stale and
replayed requests. In: the helpdesk posts answers to ``POST /api/v1/helpdesk/answers``, signed
the same way; the time is the injected clock's, on both sides.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.calendar import MOSCOW
from callcenter.domain import signing
from callcenter.domain.certificates import Certificate, HolderType, luhn_complete
from callcenter.domain.errors import Unauthorized
from callcenter.web import schemas
from callcenter.web.app import init_app
from tests.conftest import ROOT, free_port
from tests.wire import wire

SECRET = "общий-секрет-для-подписи-42"
NUMBER = luhn_complete("66000000001")


@dataclass
class Receiver:
    """A helpdesk's webhook endpoint, verifying as the README's "Webhook" says."""

    clock: object
    port: int = field(default_factory=free_port)
    guard: signing.ReplayGuard = field(default_factory=lambda: signing.ReplayGuard(300))
    stored: dict = field(default_factory=dict)
    refused: list = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        now = self.clock.now().timestamp()
        try:
            sig = signing.verify(
                SECRET, request.headers.get(signing.HEADER), raw, now, tolerance=300
            )
            self.guard.admit(sig, now)
        except Unauthorized as exc:
            self.refused.append(exc.code)
            return web.json_response({"error": exc.code}, status=401)
        key = request.headers["Idempotency-Key"]
        if key in self.stored:
            return web.json_response({"duplicate": key}, status=409)
        self.stored[key] = json.loads(raw)
        n = len(self.stored)
        return web.json_response({"id": f"HD-{n}", "url": f"https://hd.example/t/{n}"}, status=201)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
async def receiver(clock):
    r = Receiver(clock)
    await r.start()
    yield r
    await r.runner.cleanup()


@pytest.fixture
async def webhook(settings, clock, receiver):
    c = bootstrap.build(
        settings.replace(helpdesk={"kind": "webhook", "url": receiver.url, "secret": SECRET}),
        clock=clock,
    )
    c.helpdesk.wall_clock = lambda: clock.now().timestamp()
    await db.upgrade(c.engine)
    today = clock.now().astimezone(MOSCOW).date()
    await c.registry.import_certificates(
        [
            Certificate(
                NUMBER,
                HolderType.PERSON,
                "Петров Пётр",
                "",
                "П",
                "5.0.1",
                today - timedelta(days=1),
                today + timedelta(days=300),
            )
        ],
        clock.now(),
    )
    yield c
    await c.close()


@pytest.fixture
async def api(webhook):
    async with TestClient(TestServer(init_app(webhook))) as cli:
        yield cli


async def new_ticket(c, text="Письменный вопрос") -> dict:
    tk = await c.tickets.create_from_portal(
        c.clock.now(), full_name="Петров Пётр", certificate=NUMBER, description=text
    )
    return wire(tk, c)


async def test_the_receiver_verifies_what_we_send_and_refuses_forgeries(webhook, receiver, clock):
    tk = await new_ticket(webhook)
    assert await webhook.outbox.deliver_due() == 1
    body = receiver.stored[f"ticket-{tk['id']}"]
    assert body["id"] == tk["id"] and body["description"] == "Письменный вопрос"
    assert body["due_at"] == tk["due_at"]
    assert body["coverage"]["holder_name"] == "Петров Пётр"
    # the documented contract: every field sent is described, every required one sent
    schema = json.loads((ROOT / "docs" / "helpdesk-webhook.schema.json").read_text("utf-8"))
    ticket_schema = schema["$defs"]["ticket"]
    assert set(body) <= set(ticket_schema["properties"])
    assert set(ticket_schema["required"]) <= set(body)
    assert set(body["coverage"]) <= set(ticket_schema["properties"]["coverage"]["properties"])
    answer_schema = schema["$defs"]["answer"]
    assert set(answer_schema["properties"]) == {
        f.name for f in dataclasses.fields(schemas.HelpdeskAnswer)
    }
    assert receiver.refused == []
    # where the helpdesk keeps it, from its answer
    assert (await webhook.tickets.get(tk["id"])).helpdesk_url == "https://hd.example/t/1"

    # (the very bytes the outbox sent, at its time, would be a replay: a new body here)
    raw = json.dumps({**body, "description": "Письменный вопрос №2"}, ensure_ascii=False).encode()
    stamp = int(clock.now().timestamp())
    good = signing.sign(SECRET, raw, stamp)
    headers = {"Idempotency-Key": "ticket-x", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as s:

        async def post(sig: str | None, data: bytes = raw) -> int:
            h = dict(headers, **({signing.HEADER: sig} if sig else {}))
            async with s.post(receiver.url, data=data, headers=h) as r:
                return r.status

        assert await post(signing.sign("не тот секрет", raw, stamp)) == 401  # forged
        assert await post(good, raw.replace("Письменный".encode(), b"Other")) == 401  # altered
        assert await post(None) == 401
        assert await post(signing.sign(SECRET, raw, stamp - 301)) == 401  # stale
        assert await post(good) == 201  # the genuine one
        assert await post(good) == 401  # the same request again: a replay
    assert receiver.refused == [
        "bad_signature",
        "bad_signature",
        "missing_signature",
        "stale_signature",
        "replayed",
    ]


def signed(body: dict, clock, secret: str = SECRET, shift: int = 0) -> tuple[bytes, dict]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    sig = signing.sign(secret, raw, int(clock.now().timestamp()) + shift)
    return raw, {"Content-Type": "application/json", signing.HEADER: sig}


async def test_the_helpdesk_posts_the_answer_back_signed_and_once(webhook, api, clock):
    tk = await new_ticket(webhook)
    answered = clock.now() + timedelta(hours=2)
    clock.advance(5 * 3600)  # it reaches us later than it was given
    body = {
        "ticket_id": tk["id"],
        "answered_at": answered.isoformat(),
        "answer": "Ответ: переустановите драйвер «ключа»",
        "id": "HD-1",
        "url": "https://hd.example/t/1",
    }
    raw, headers = signed(body, clock)

    forged = signed(body, clock, secret="x" * 20)[1]
    r = await api.post("/api/v1/helpdesk/answers", data=raw, headers=forged)
    assert r.status == 401 and (await r.json())["error"] == "bad_signature"
    r = await api.post(
        "/api/v1/helpdesk/answers", data=raw, headers=signed(body, clock, shift=-400)[1]
    )
    assert r.status == 401 and (await r.json())["error"] == "stale_signature"
    r = await api.post(
        "/api/v1/helpdesk/answers", data=raw, headers={"Content-Type": "application/json"}
    )
    assert r.status == 401 and (await r.json())["error"] == "missing_signature"
    assert (await webhook.tickets.get(tk["id"])).answered_at is None

    r = await api.post("/api/v1/helpdesk/answers", data=raw, headers=headers)
    assert r.status == 200, await r.text()
    got = await r.json()
    assert got["recorded"] is True
    t = got["ticket"]
    assert t["answered_at"] == answered.astimezone(MOSCOW).isoformat()  # theirs, not ours
    assert t["answer"] == body["answer"] and t["answer_source"] == "helpdesk"
    assert t["deadline_met"] is True and t["helpdesk_url"] == "https://hd.example/t/1"

    # the very same request again is a replay; the same answer signed anew is idempotent
    r = await api.post("/api/v1/helpdesk/answers", data=raw, headers=headers)
    assert r.status == 401 and (await r.json())["error"] == "replayed"
    clock.advance(1)
    later = dict(body, answered_at=clock.now().isoformat(), answer="другое")
    r = await api.post(
        "/api/v1/helpdesk/answers", data=signed(later, clock)[0], headers=signed(later, clock)[1]
    )
    assert r.status == 200
    again = await r.json()
    assert again["recorded"] is False and again["ticket"] == t  # the first answer stands


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"ticket_id": 999999, "answered_at": "2026-03-17T10:30:00+03:00", "answer": "a"},
            404,
            "ticket_not_found",
        ),
        ({"ticket_id": 1, "answered_at": "2026-03-17", "answer": "a"}, 422, "invalid_instant"),
        (
            {"ticket_id": 1, "answered_at": "2099-01-01T00:00:00+03:00", "answer": "a"},
            422,
            "invalid_instant",
        ),
        ({"ticket_id": "1", "answer": ""}, 422, "invalid_request"),
        (
            {
                "ticket_id": 1,
                "answered_at": "2026-03-17T10:30:00+03:00",
                "answer": "a",
                "url": "javascript:x",
            },
            422,
            "invalid_request",
        ),
    ],
)
async def test_bad_answers_get_a_clear_4xx(webhook, api, clock, body, status, code):
    await new_ticket(webhook)
    raw, headers = signed(body, clock)
    r = await api.post("/api/v1/helpdesk/answers", data=raw, headers=headers)
    assert r.status == status, await r.text()
    assert (await r.json())["error"] == code


async def test_without_a_webhook_the_endpoint_says_so(container, client, clock):
    raw, headers = signed({"ticket_id": 1}, clock)
    r = await client.post("/api/v1/helpdesk/answers", data=raw, headers=headers)
    assert r.status == 404
    assert (await r.json())["error"] == "webhook_not_configured"


async def test_an_answer_recorded_here_stands_and_says_so(webhook, api, clock):
    tk = await new_ticket(webhook)
    here = await webhook.tickets.answer(tk["id"], "Ответ оператора", clock.now())
    assert wire(here, webhook)["answer_source"] == "here"
    body = {"ticket_id": tk["id"], "answered_at": clock.now().isoformat(), "answer": "оттуда"}
    r = await api.post(
        "/api/v1/helpdesk/answers", data=signed(body, clock)[0], headers=signed(body, clock)[1]
    )
    assert r.status == 200
    got = await r.json()
    assert got["recorded"] is False
    assert got["ticket"]["answer"] == "Ответ оператора"
    assert got["ticket"]["answer_source"] == "here"


async def test_the_webhook_check_names_what_is_missing(webhook, receiver):
    ok, missing = await webhook.helpdesk.check()
    assert missing == []
    assert ok == [
        "secret: set (X-Callcenter-Signature on every POST)",
        f"url: {receiver.url} answers (HTTP 405 to HEAD)",
    ]
    from callcenter.adapters.helpdesk.webhook import WebhookHelpdesk

    dead = WebhookHelpdesk(f"http://127.0.0.1:{free_port()}/hook")
    try:
        ok, missing = await dead.check()
    finally:
        await dead.close()
    assert ok == []
    assert missing[0] == "secret: not set, the receiver cannot verify what it gets"
    assert missing[1].startswith(f"url: {dead.url} cannot be reached (ClientConnectorError")
