"""Forwarding tickets to an external helpdesk through the outbox, against a real HTTP server.

The helpdesk here is an aiohttp server on 127.0.0.1 that stores each ticket once per
``Idempotency-Key`` (answering 409 to a key it has already stored) and logs every POST it
sees. It can be not listening at all, answer 503, store a ticket and then cut the
connection before answering, or store it and answer 500. The outbox worker runs as a real
task with the real clock (backoff capped at 1 s); the tests wait for outcomes, never for
durations.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from aiohttp import web
from sqlalchemy import select

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.adapters import tables as t
from callcenter.calendar import MOSCOW
from callcenter.domain.certificates import Certificate, Contact, HolderType, luhn_complete
from tests.conftest import free_port
from tests.wire import wire

N_TICKETS = 20
NUMBER = luhn_complete("77000000001")  # valid whatever check digit is configured


@dataclass
class Post:
    key: str | None
    body: dict
    answer: str  # "503", "201", "409", "cut", "500-stored"


@dataclass
class Helpdesk:
    """A fake helpdesk; ``mode`` says how it answers right now."""

    port: int
    mode: str = "503"  # "503" | "up"
    cut_once: set[str] = field(default_factory=set)  # store, then drop the connection
    fail_once: set[str] = field(default_factory=set)  # store, then answer 500
    posts: list[Post] = field(default_factory=list)
    stored: dict[str, dict] = field(default_factory=dict)
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        body = await request.json()
        if self.mode == "503":
            self.posts.append(Post(key, body, "503"))
            return web.Response(status=503, text="maintenance")
        if not key:
            self.posts.append(Post(key, body, "400"))
            return web.Response(status=400, text="Idempotency-Key required")
        if key in self.stored:
            self.posts.append(Post(key, body, "409"))
            return web.json_response({"duplicate": key}, status=409)
        self.stored[key] = body
        if key in self.cut_once:
            self.cut_once.discard(key)
            self.posts.append(Post(key, body, "cut"))
            request.transport.close()  # stored, but the answer never leaves
            raise ConnectionResetError("helpdesk cut the connection after storing")
        if key in self.fail_once:
            self.fail_once.discard(key)
            self.posts.append(Post(key, body, "500-stored"))
            return web.Response(status=500, text="stored, then failed")
        self.posts.append(Post(key, body, "201"))
        return web.json_response({"id": len(self.stored)}, status=201)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/tickets", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tickets"

    def answers(self, key: str) -> list[str]:
        return [p.answer for p in self.posts if p.key == key]


@pytest.fixture
async def helpdesk():
    h = Helpdesk(free_port())
    yield h
    await h.stop()


async def forwarding_container(settings, url: str):
    c = bootstrap.build(settings.replace(forwarding={"url": url, "max_backoff_seconds": 1}))
    await db.upgrade(c.engine)
    return c


async def make_tickets(c, n: int = N_TICKETS) -> list[dict]:
    now = c.clock.now()
    today = now.astimezone(MOSCOW).date()
    holder = "Тестов Тест Тестович"
    await c.registry.import_certificates(
        [
            Certificate(
                NUMBER,
                HolderType.PERSON,
                holder,
                "",
                "Продукт",
                "5.0.13000",
                today - timedelta(days=30),
                today + timedelta(days=300),
                contacts=[Contact(holder, "+79001234567")],
            )
        ],
        now,
    )
    return [
        wire(
            await c.tickets.create_from_portal(
                c.clock.now(), full_name=holder, certificate=NUMBER, description=f"Вопрос №{i}"
            ),
            c,
        )
        for i in range(n)
    ]


async def until(check, what: str, within: float = 20.0) -> None:
    """Poll ``check()`` (plain or async) until it is true; bounded."""
    deadline = time.monotonic() + within
    while True:
        ok = check()
        if inspect.isawaitable(ok):
            ok = await ok
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {within} s")
        await asyncio.sleep(0.05)


async def outbox_rows(c) -> list[dict]:
    async with c.engine.connect() as conn:
        rows = await conn.execute(select(t.outbox).order_by(t.outbox.c.id))
        return [dict(r) for r in rows.mappings().all()]


async def all_delivered(c) -> bool:
    async with c.uow() as uow:
        return (await uow.outbox.stats())["pending"] == 0


def run_workers(*workers) -> list[asyncio.Task]:
    return [asyncio.create_task(w.run(), name=f"outbox-{i}") for i, w in enumerate(workers)]


async def stop_tasks(tasks) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            pass


async def test_tickets_survive_a_down_helpdesk_and_arrive_once_per_key(settings, helpdesk):
    c = await forwarding_container(settings, helpdesk.url)
    tasks = []
    try:
        tickets = await make_tickets(c)
        keys = [f"ticket-{tk['id']}" for tk in tickets]
        assert len(set(keys)) == N_TICKETS
        # a fifth of them will be stored and then the connection cut; a fifth stored with a 500
        helpdesk.cut_once = set(keys[0::5])
        helpdesk.fail_once = set(keys[1::5])
        flaky = helpdesk.cut_once | helpdesk.fail_once

        # 1. nobody listens: every message fails (connection refused) and is kept
        tasks = run_workers(c.outbox)
        await until(lambda: c.outbox.failures >= N_TICKETS, "every first try refused")
        assert c.outbox.delivered == 0
        assert not await all_delivered(c)

        # 2. the helpdesk is up but answers 503: every key is retried and refused again
        await helpdesk.start()
        await until(
            lambda: {p.key for p in helpdesk.posts} >= set(keys),
            "every key retried against the 503",
        )
        assert helpdesk.stored == {}

        # 3. it accepts: everything arrives, the flaky ones after one more retry
        helpdesk.mode = "up"
        await until(lambda: all_delivered(c), "outbox drained")
        posts_when_drained = len(helpdesk.posts)
        await asyncio.sleep(1.2)  # past the 1 s backoff cap: a stray retry would show
        assert len(helpdesk.posts) == posts_when_drained, helpdesk.posts[posts_when_drained:]
    finally:
        await stop_tasks(tasks)
        rows = await outbox_rows(c)
        await c.close()

    # every ticket is stored at the helpdesk exactly once, under its own key, with its body
    assert set(helpdesk.stored) == set(keys)
    assert len(helpdesk.stored) == N_TICKETS
    for tk in tickets:
        body = helpdesk.stored[f"ticket-{tk['id']}"]
        assert body["id"] == tk["id"]
        assert body["source"] == "portal"
        assert body["certificate"] == NUMBER
        assert (body["received_at"], body["due_at"]) == (tk["received_at"], tk["due_at"])
        assert body["description"] == tk["description"]
    for key in keys:
        answers = helpdesk.answers(key)
        assert "503" in answers, answers  # failures came first and were retried
        assert answers.index("503") < len(answers) - 1
        # exactly one success reached the worker, and it was the last POST for that key
        assert answers[-1] in ("201", "409"), answers
        assert sum(a in ("201", "409") for a in answers) == 1, answers
        if key in flaky:
            # stored, answer lost -> the retry carried the same key and was deduplicated
            assert answers[-2:] in (["cut", "409"], ["500-stored", "409"]), answers
        else:
            assert answers[-1] == "201", answers
    stored_posts = Counter(
        p.key for p in helpdesk.posts if p.answer in ("201", "cut", "500-stored")
    )
    assert stored_posts == Counter({k: 1 for k in keys})
    # the outbox agrees: all delivered, nothing left to do
    assert len(rows) == N_TICKETS
    assert {r["idempotency_key"] for r in rows} == set(keys)
    assert all(r["delivered_at"] is not None and r["claimed_until"] is None for r in rows)
    for r in rows:
        assert json.loads(r["payload"])["id"] == int(r["idempotency_key"].removeprefix("ticket-"))
        # every attempt is counted: refused ones never reached the helpdesk
        assert r["attempts"] >= len(helpdesk.answers(r["idempotency_key"])) + 1


async def test_two_workers_on_one_database_send_each_ticket_once(settings, helpdesk):
    """The claim lease keeps a second instance off a message the first is sending."""
    helpdesk.mode = "up"
    await helpdesk.start()
    a = await forwarding_container(settings, helpdesk.url)
    b = bootstrap.build(a.settings)  # a second instance: its own engine, sender and worker
    tasks = []
    try:
        tickets = await make_tickets(a)
        a.outbox.batch = b.outbox.batch = 1  # claim one at a time, so the two interleave
        tasks = run_workers(a.outbox, b.outbox)
        await until(lambda: all_delivered(a), "outbox drained")
        await asyncio.sleep(0.5)
    finally:
        await stop_tasks(tasks)
        await b.close()
        await a.close()
    keys = {f"ticket-{tk['id']}" for tk in tickets}
    assert set(helpdesk.stored) == keys
    assert Counter(p.key for p in helpdesk.posts) == Counter({k: 1 for k in keys})
    assert {p.answer for p in helpdesk.posts} == {"201"}
    assert a.outbox.delivered + b.outbox.delivered == N_TICKETS
