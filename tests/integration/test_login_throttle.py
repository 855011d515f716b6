"""Login throttling over a real socket, on SQLite and PostgreSQL: growing delays per login
and per address, 429 with Retry-After before any password is checked, one log line per
throttled key, the refusals in /metrics."""

from __future__ import annotations

import logging
import re

PASSWORD = "пароль-длинный"


async def _login(client, login="оператор", password=PASSWORD):
    r = await client.post("/api/v1/session", json={"login": login, "password": password})
    client.session.cookie_jar.clear()
    return r


async def test_fifty_wrong_passwords_then_the_right_one_is_throttled(
    client, container, clock, caplog
):
    await container.auth.add_user("оператор", "agent", PASSWORD, clock.now())
    caplog.set_level(logging.WARNING, logger="callcenter.services.auth")
    statuses = [(await _login(client, password=f"wrong-{i}")).status for i in range(50)]
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}, statuses  # the clock stands still: no wait is over
    r = await _login(client)  # the right password, but the wait is not over: not checked
    assert r.status == 429
    body = await r.json()
    assert body["error"] == "throttled" and body["retry_after"] == 2
    assert r.headers["Retry-After"] == "2"
    throttled = [m for m in caplog.messages if "login throttled" in m]
    assert len(throttled) == 1 and "оператор" in throttled[0], caplog.messages

    clock.advance(2)
    assert (await _login(client)).status == 200  # the wait is over, and a success resets
    for _ in range(5):
        assert (await _login(client, password="wrong-again")).status == 401

    metrics = await (await client.get("/metrics")).text()
    assert re.search(r'callcenter_refusals_total\{kind="throttled"\} 46\.0', metrics), metrics


async def test_delays_grow_and_each_try_after_the_wait_counts(client, container, clock):
    await container.auth.add_user("оператор", "agent", PASSWORD, clock.now())
    for _ in range(5):
        assert (await _login(client, password="wrong-password")).status == 401
    waits = []
    for _ in range(4):
        r = await _login(client, password="wrong-password")
        assert r.status == 429
        waits.append(int(r.headers["Retry-After"]))
        clock.advance(waits[-1])
        assert (await _login(client, password="wrong-password")).status == 401
    assert waits == [2, 4, 8, 16]


async def test_an_address_guessing_many_logins_is_throttled(client, container, clock):
    """Other logins from the same address: the address's own count (20 free) stops it."""
    await container.auth.add_user("оператор", "agent", PASSWORD, clock.now())
    for i in range(20):
        assert (await _login(client, login=f"user-{i}", password="wrong-password")).status == 401
    r = await _login(client, login="оператор")  # even a right login from this address waits
    assert r.status == 429 and r.headers["Retry-After"] == "2"
    # a good login does not wipe the address's other failures
    clock.advance(2)
    assert (await _login(client, login="оператор")).status == 200
    assert (await _login(client, login="user-x", password="wrong-password")).status == 401
    assert (await _login(client, login="user-y", password="wrong-password")).status == 429


async def test_throttled_logins_leave_other_logins_alone_at_the_service(container, clock):
    """Through the use case directly (no address): one login's failures do not lock another."""
    import pytest

    from callcenter.domain.errors import TooManyAttempts, Unauthorized

    await container.auth.add_user("оператор", "agent", PASSWORD, clock.now())
    await container.auth.add_user("другой", "agent", PASSWORD, clock.now())
    for _ in range(5):
        with pytest.raises(Unauthorized):
            await container.auth.open_session("оператор", "wrong-password", clock.now(), "10.0.0.1")
    with pytest.raises(TooManyAttempts):
        await container.auth.open_session("ОПЕРАТОР", PASSWORD, clock.now(), "10.0.0.2")
    session = await container.auth.open_session("другой", PASSWORD, clock.now(), "10.0.0.1")
    assert session.principal.name == "другой"


async def test_forty_good_logins_at_once_from_one_address_all_get_in(client, container, clock):
    """A shift starting behind one NAT: the logins take turns instead of running into the
    address's allowance on their own unsettled attempts."""
    import asyncio

    for i in range(40):
        await container.auth.add_user(f"оператор-{i}", "agent", PASSWORD, clock.now())
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/session", json={"login": f"оператор-{i}", "password": PASSWORD})
            for i in range(40)
        )
    )
    statuses = [r.status for r in responses]
    assert statuses == [200] * 40, statuses
    bodies = [await r.json() for r in responses]
    assert sorted(b["login"] for b in bodies) == sorted(f"оператор-{i}" for i in range(40))


async def test_a_parallel_guess_from_one_address_gains_nothing(client, container, clock):
    """Forty wrong passwords at once for forty logins: exactly the address's 20 free failures
    are checked, the rest are refused before any hash, as if they had come one by one."""
    import asyncio

    responses = await asyncio.gather(
        *(
            client.post("/api/v1/session", json={"login": f"user-{i}", "password": "wrong"})
            for i in range(40)
        )
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [401] * 20 + [429] * 20, statuses
