"""/metrics as an operator reads it: prometheus_client's format, and gauges read at scrape."""

from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.web.app import init_app
from tests.integration.test_http_api import bearer, seed


def gauge(text: str, name: str) -> float:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    return float(line.split()[1])


@pytest.fixture
async def forwarding_client(settings, clock):
    """Forwarding on, no outbox worker running: delivered tickets would leave the backlog."""
    c = bootstrap.build(settings.replace(forwarding={"url": "http://127.0.0.1:9/t"}), clock=clock)
    await db.upgrade(c.engine)
    async with TestClient(TestServer(init_app(c))) as cli:
        yield c, cli
    await c.close()


async def test_gauges_count_what_is_in_the_database(forwarding_client, clock):
    container, client = forwarding_client
    await seed(container, clock)
    sup = bearer(await container.auth.create_token("sup", "supervisor", clock.now()))
    first_received = clock.now()  # Tuesday 11:00: due Wednesday 14:00 (12 working hours)
    request = {"full_name": "Смирнова Анна Сергеевна", "certificate": "123456"}
    r = await client.post("/api/v1/tickets", json={**request, "description": "1"}, headers=sup)
    assert r.status == 201, await r.text()
    clock.advance(24 * 3600)  # Wednesday 11:00: due Thursday 14:00
    r = await client.post("/api/v1/tickets", json={**request, "description": "2"}, headers=sup)
    assert r.status == 201
    clock.advance(24 * 3600 + 2.5 * 3600)  # Thursday 13:30
    for body in (
        {"event": "call_started", "call_id": "c1", "caller_number": "+79001112233"},
        {"event": "call_started", "call_id": "c2"},
        {"event": "agent_connected", "call_id": "c2", "agent": "PJSIP/101"},
        {"event": "call_started", "call_id": "c3"},
        {"event": "call_ended", "call_id": "c3", "hangup_by": "caller"},
    ):
        r = await client.post("/api/v1/events", json=body, headers=sup)
        assert r.status == 201, await r.text()

    r = await client.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await r.text()
    assert gauge(text, "callcenter_calls_in_progress") == 2  # c1 and c2; c3 has ended
    assert gauge(text, "callcenter_oral_windows_open") == 1
    assert gauge(text, "callcenter_tickets_due_soon") == 1  # Thursday 14:00
    assert gauge(text, "callcenter_tickets_overdue") == 1  # Wednesday 14:00
    assert gauge(text, "callcenter_outbox_backlog") == 2
    age = (clock.now() - first_received).total_seconds()
    assert gauge(text, "callcenter_outbox_oldest_age_seconds") == pytest.approx(age)
    assert 'callcenter_http_request_duration_seconds_bucket{le="0.001",method="POST",' in text
    assert "# TYPE callcenter_timer_fire_lag_seconds histogram" in text
    assert "# TYPE callcenter_agi_lookup_duration_seconds histogram" in text

    clock.advance(timedelta(days=1).total_seconds())  # a lost hangup stops counting after 24 h
    text = await (await client.get("/metrics")).text()
    assert gauge(text, "callcenter_calls_in_progress") == 0
    assert gauge(text, "callcenter_tickets_due_soon") == 0
    assert gauge(text, "callcenter_tickets_overdue") == 2


async def test_a_scrape_answers_when_the_database_does_not(client, container):
    await container.engine.dispose()
    container.sessions.configure(bind=db.create_engine("postgresql+asyncpg://x@127.0.0.1:1/x"))
    r = await client.get("/metrics")
    assert r.status == 200
    assert "callcenter_http_request_duration_seconds" in await r.text()


async def test_lookup_latency_and_timer_lag_are_observed(client, container, clock, pbx_token):
    await seed(container, clock)
    body = {"call_id": "1795480500.3", "number": "123456", "caller": "+79002223344"}
    r = await client.post("/api/v1/ivr/check", json=body, headers=bearer(pbx_token))
    assert r.status == 200, await r.text()
    event = {"event": "agent_connected", "call_id": "1795480500.3", "agent": "PJSIP/101"}
    r = await client.post("/api/v1/events", json=event, headers=bearer(pbx_token))
    assert r.status == 201
    clock.advance(container.settings.policy.oral_window_seconds + 60)
    await container.scheduler.load()
    assert await container.scheduler.fire_due() >= 1
    text = await (await client.get("/metrics")).text()
    assert 'callcenter_agi_lookup_duration_seconds_count{transport="http"} 1.0' in text
    lags = [ln for ln in text.splitlines() if ln.startswith("callcenter_timer_fire_lag_seconds_")]
    assert 'callcenter_timer_fire_lag_seconds_count{kind="window_deadline"} 1.0' in lags
    (total,) = [
        ln
        for ln in lags
        if ln.startswith('callcenter_timer_fire_lag_seconds_sum{kind="window_deadline"}')
    ]
    # fired at the moved clock: lag = 60 s past the deadline, less the grace it waits for
    grace = container.settings.timers.grace_seconds
    assert float(total.split()[-1]) == pytest.approx(60 - grace)
