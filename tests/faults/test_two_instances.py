"""Two instances on one PostgreSQL, one killed (``kill -9``) mid-run: every window fires
exactly once (warned once, overrun once, one ticket), and every agent's pop reaches them
through whichever instance their page is connected to (the page reconnects to the other)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections import Counter

import aiohttp

from tests.e2e.conftest import Service
from tests.e2e.desk_stack import PASSWORD, DeskStack
from tests.faults.conftest import kill9, postgres, scalar

FAST = {
    "CALLCENTER_POLICY_ORAL_WINDOW_SECONDS": "12",
    "CALLCENTER_POLICY_WARNING_SECONDS": "6",
    "CALLCENTER_TIMERS_GRACE_SECONDS": "0.5",
    "CALLCENTER_TIMERS_RESYNC_SECONDS": "1",
}
IFACE = {"agent1": "PJSIP/101", "agent2": "PJSIP/102"}


class Socket:
    """A push socket and every frame it received, kept by a task of its own."""

    def __init__(self, http: aiohttp.ClientSession, url: str, headers: dict) -> None:
        self.http, self.url, self.headers = http, url, headers
        self.frames: list[dict] = []
        self.task: asyncio.Task | None = None
        self.opened = asyncio.Event()

    async def start(self) -> None:
        self.opened.clear()
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.opened.wait(), 10)

    async def _run(self) -> None:
        async with self.http.ws_connect(self.url + "/api/v1/stream", headers=self.headers) as ws:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(msg.data)
                self.frames.append(frame)
                if frame["type"] == "desk":
                    self.opened.set()

    def count(self, kind: str) -> Counter:
        return Counter(f.get("call_id") for f in self.frames if f["type"] == kind)


async def _login(http, url: str, login: str) -> dict:
    async with http.post(url + "/api/v1/session", json={"login": login, "password": PASSWORD}) as r:
        assert r.status == 200
        return {"Cookie": f"cc_session={r.cookies['cc_session'].value}"}


async def _until(predicate, seconds: float, what: str) -> None:
    for _ in range(int(seconds * 10)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {seconds} s")


async def test_two_instances_one_killed_mid_run(tmp_path):
    url = postgres()
    a = await asyncio.to_thread(DeskStack, tmp_path / "a", database_url=url, **FAST)
    (tmp_path / "b").mkdir()
    b_service = Service(tmp_path / "b", a.env, args=())
    try:
        await asyncio.to_thread(b_service.wait_ready)
        b = copy.copy(a)
        b.url = b_service.url
        sup_token = a.cli.run("tokens", "create", "sup", "--role", "supervisor", check=True)
        sup_token = sup_token.stdout.strip().splitlines()[-1]
        async with aiohttp.ClientSession() as http:
            sup = Socket(http, b.url, {"Authorization": f"Bearer {sup_token}"})
            agents = {
                "agent1": Socket(http, a.url, await _login(http, a.url, "agent1")),
                "agent2": Socket(http, b.url, await _login(http, b.url, "agent2")),
            }
            for s in (sup, *agents.values()):
                await s.start()
            mine: dict[str, list[str]] = {"agent1": [], "agent2": []}

            async def calls(stacks, n: int) -> None:
                for i in range(n):
                    login = ("agent1", "agent2")[i % 2]
                    stack = stacks[i % len(stacks)]
                    cid = await asyncio.to_thread(stack.new_call, IFACE[login], status=None)
                    mine[login].append(cid)

            await calls([a, b], 10)  # events to both instances
            await _until(
                lambda: all(len(agents[x].count("call_connected")) == 5 for x in agents),
                15,
                "the first pops",
            )
            kill9(a.service)  # mid-run: ten windows open
            await asyncio.wait_for(agents["agent1"].task, 10)  # its socket went with A
            agents["agent1"].url = b.url  # the page reconnects, to the instance that is left
            await agents["agent1"].start()
            await calls([b], 10)

            every = mine["agent1"] + mine["agent2"]
            tickets = "SELECT count(*) FROM tickets WHERE source = 'call'"
            await _until(lambda: scalar(url, tickets) == 20, 60, "20 tickets")
            await _until(lambda: len(sup.count("window_overrun")) == 20, 15, "20 overruns")
            await asyncio.sleep(2)  # two resyncs more: nothing fires again

            assert scalar(url, tickets) == 20
            assert sup.count("window_warning") == dict.fromkeys(every, 1)
            assert sup.count("window_overrun") == dict.fromkeys(every, 1)
            assert sup.count("call_connected") == dict.fromkeys(every, 1)
            for login, socket in agents.items():
                # each pop once, through A or B; none of the other agent's calls
                assert socket.count("call_connected") == dict.fromkeys(mine[login], 1)
            for s in (sup, *agents.values()):
                s.task.cancel()
    finally:
        b_service.stop()
        a.stop()
