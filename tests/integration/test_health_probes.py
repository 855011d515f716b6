"""/healthz/live and /healthz/ready: a restart cures the first, a balancer waits on the second."""

from __future__ import annotations

from sqlalchemy import text


async def test_live_answers_whatever_the_rest_does(client):
    r = await client.get("/healthz/live")
    assert r.status == 200
    assert await r.json() == {"status": "ok"}


async def test_ready_names_each_part(client, container):
    # the fixture's container runs no FastAGI server: not ready, and it says why
    r = await client.get("/healthz/ready")
    assert r.status == 503
    body = await r.json()
    assert body == {
        "status": "not_ready",
        "database": "ok",
        "migrations": "ok",
        "fastagi": "not listening",
    }
    container.fastagi_listening = lambda: True
    r = await client.get("/healthz/ready")
    assert r.status == 200
    assert (await r.json())["status"] == "ok"
    # the old probe is unchanged
    r = await client.get("/healthz")
    assert r.status == 200 and await r.json() == {"status": "ok", "database": "ok"}


async def test_ready_refuses_a_schema_behind_the_code(client, container):
    container.fastagi_listening = lambda: True
    async with container.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    r = await client.get("/healthz/ready")
    assert r.status == 503
    body = await r.json()
    assert body["migrations"].startswith("at 0001, code at ")
    assert body["database"] == "ok"
