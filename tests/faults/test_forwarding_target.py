"""The forwarding target (a helpdesk webhook) down, then answering 503, then up, against a
real ``serve``: every ticket is delivered exactly once, each under its own key."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp

from tests.conftest import free_port
from tests.e2e.desk_stack import VALID, DeskStack
from tests.faults.conftest import scalar
from tests.integration.test_forwarding import Helpdesk

N_DOWN, N_503 = 10, 5


async def _until(predicate, seconds: float, what: str) -> None:
    for _ in range(int(seconds * 10)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {seconds} s")


async def test_forwarding_target_down_then_up_delivers_each_ticket_once(tmp_path, database):
    helpdesk = Helpdesk(free_port())  # not listening yet: connections refused
    stack = await asyncio.to_thread(
        DeskStack,
        tmp_path / "s",
        database_url=database,
        CALLCENTER_FORWARDING_URL=helpdesk.url,
        CALLCENTER_FORWARDING_MAX_BACKOFF_SECONDS="1",
        CALLCENTER_FORWARDING_TIMEOUT_SECONDS="2",
    )
    token = stack.cli.run("tokens", "create", "portal", "--role", "portal", check=True)
    token = token.stdout.strip().splitlines()[-1]
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:

            async def ticket(n: int) -> int:
                body = {
                    "full_name": "Сидоров Пётр Иванович",
                    "certificate": VALID,
                    "description": f"Не запускается, обращение №{n}",
                }
                async with http.post(stack.url + "/api/v1/tickets", json=body) as r:
                    assert r.status == 201, await r.text()
                    return (await r.json())["id"]

            ids = [await ticket(n) for n in range(N_DOWN)]
            await asyncio.sleep(1)  # a few refused tries
            await helpdesk.start()  # up, but answering 503
            ids += [await ticket(n) for n in range(N_DOWN, N_DOWN + N_503)]
            await _until(lambda: any(p.answer == "503" for p in helpdesk.posts), 20, "a 503")
            helpdesk.mode = "up"
            n = N_DOWN + N_503
            await _until(lambda: len(helpdesk.stored) == n, 60, f"{n} tickets stored")
            delivered = "SELECT count(*) FROM tickets WHERE helpdesk_ref IS NOT NULL"
            await _until(lambda: scalar(database, delivered) == n, 30, "every ticket marked")
            await asyncio.sleep(2)  # nothing is sent again
        assert len(ids) == len(set(ids)) == n
        created = Counter(p.key for p in helpdesk.posts if p.answer == "201")
        assert len(created) == n and set(created.values()) == {1}
        assert not [p for p in helpdesk.posts if p.answer == "409"]  # none sent twice
        assert scalar(database, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL") == 0
    finally:
        await asyncio.to_thread(stack.stop)
        await helpdesk.stop()
