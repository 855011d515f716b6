"""Guessing certificate numbers over HTTP, on SQLite and PostgreSQL: the IVR check's strict
body, its per-caller limit, and the portal's unknown-certificate answers rate-limited per
token and per address."""

from __future__ import annotations

import logging
import re

from tests.integration.test_http_api import bearer, seed


async def test_ivr_check_refuses_a_caller_under_another_key(client, pbx_token):
    """Naming the caller under another key would turn the per-caller lock off: refused."""
    body = {"call_id": "1.1", "number": "999999", "caller_id": "+79005550101"}
    r = await client.post("/api/v1/ivr/check", json=body, headers=bearer(pbx_token))
    assert r.status == 422
    assert "caller_id" in (await r.json())["fields"]


async def test_ivr_check_locks_a_guessing_caller_but_not_the_real_lookups(
    client, container, clock, pbx_token
):
    await seed(container, clock)
    h = bearer(pbx_token)

    async def check(number, caller="+79005550101"):
        body = {"call_id": "1.2", "number": number, "caller": caller}
        r = await client.post("/api/v1/ivr/check", json=body, headers=h)
        assert r.status == 200, await r.text()
        return (await r.json())["status"]

    assert [await check(f"90000{i}") for i in range(5)] == ["UNKNOWN"] * 4 + ["LOCKED"]
    assert await check("123456") == "LOCKED"  # nothing is looked up while locked
    assert await check("123456", caller="+79005550102") == "VALID"  # another caller
    clock.advance(container.ivr.rule.window_seconds + 1)
    assert await check("123456") == "VALID"  # the window has passed
    metrics = await (await client.get("/metrics")).text()
    assert 'callcenter_ivr_checks_total{status="LOCKED"} 2.0' in metrics


async def test_the_portal_cannot_enumerate_certificates(client, container, clock, caplog):
    await seed(container, clock)
    portal = bearer(await container.auth.create_token("portal", "portal", clock.now()))
    caplog.set_level(logging.WARNING, logger="callcenter.services.tickets")

    async def ticket(number):
        body = {"full_name": "Смирнова Анна", "certificate": number, "description": "Вопрос"}
        return await client.post("/api/v1/tickets", json=body, headers=portal)

    # a right number does not count; unknown ones do: 20 free
    assert (await ticket("123456")).status == 201
    statuses = [(await ticket(f"90{i:04d}")).status for i in range(25)]
    assert statuses == [422] * 20 + [429] * 5
    r = await ticket("123456")  # while throttled a right number is refused too: no oracle
    assert r.status == 429 and r.headers["Retry-After"] == "2"
    assert (await r.json())["error"] == "throttled"
    assert len([m for m in caplog.messages if "portal tickets throttled" in m]) == 1
    clock.advance(2)
    assert (await ticket("123456")).status == 201  # the wait is over
    assert (await ticket("900100")).status == 422
    r = await ticket("900101")
    assert r.status == 429 and r.headers["Retry-After"] == "4"  # and it grows
    metrics = await (await client.get("/metrics")).text()
    assert re.search(r'callcenter_refusals_total\{kind="throttled"\} 7\.0', metrics), metrics


async def test_a_second_portal_token_from_the_same_address_is_throttled_too(
    client, container, clock
):
    """The address is a key of its own: new tokens do not buy new guesses."""
    await seed(container, clock)
    statuses = []
    for t in range(3):
        token = await container.auth.create_token(f"portal-{t}", "portal", clock.now())
        for i in range(10):
            body = {"full_name": "А", "certificate": f"8{t}{i:04d}", "description": "В"}
            r = await client.post("/api/v1/tickets", json=body, headers=bearer(token))
            statuses.append(r.status)
    assert statuses == [422] * 20 + [429] * 10


async def test_the_portal_enumerates_no_faster_than_the_documented_rate(client, container, clock):
    """A guesser who comes back exactly when told: about 85 unknown numbers in an hour."""
    await seed(container, clock)
    portal = bearer(await container.auth.create_token("portal", "portal", clock.now()))
    start, learnt, guess = clock.now(), 0, 0
    while (clock.now() - start).total_seconds() < 3600:
        guess += 1
        body = {"full_name": "А", "certificate": f"7{guess:05d}", "description": "В"}
        r = await client.post("/api/v1/tickets", json=body, headers=portal)
        if r.status == 429:
            clock.advance(int(r.headers["Retry-After"]))
        else:
            assert r.status == 422
            learnt += 1
    assert 20 < learnt <= 85
