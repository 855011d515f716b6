"""The oral window's deadline across real ``callcenter serve`` processes.

Every test runs the real command in subprocesses on real sockets, talks HTTP to it and
asserts on what the API (and the CLI) say afterwards: one ticket per overrun window, never
zero and never two, whether the process runs through, is killed with SIGKILL before the
deadline, or shares the database with a second process. Waits are bounded polls; nothing
asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime

import aiohttp
import pytest

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.config import Settings
from tests.conftest import PG_SKIP, PG_URL, reset_postgres
from tests.e2e.conftest import Cli, Service, base_env
from tests.wire import wire

pytestmark = pytest.mark.slow

WINDOW = 3  # seconds of oral window in every test here
POLL_TIMEOUT = 20.0
_ids = itertools.count(1)


def serve_env(url: str, **extra: str) -> dict[str, str]:
    return base_env(
        CALLCENTER_DATABASE_URL=url,
        CALLCENTER_POLICY_ORAL_WINDOW_SECONDS=str(WINDOW),
        CALLCENTER_POLICY_WARNING_SECONDS="1",
        CALLCENTER_TIMERS_RESYNC_SECONDS="0.5",
        CALLCENTER_TIMERS_GRACE_SECONDS="0.5",  # short: these windows last 3 s
        CALLCENTER_LOGGING_LEVEL="INFO",
        **extra,
    )


def new_call_id() -> str:
    """A linkedid-like id, unique across runs of the suite on a shared database."""
    return f"{int(time.time())}.{os.getpid()}{next(_ids):04d}"


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture
def spawn(tmp_path):
    """Start ``callcenter serve`` (no demo data) in its own folder; all stopped at teardown."""
    started: list[Service] = []

    def start(env: dict[str, str], *, wait: bool = True) -> Service:
        workdir = tmp_path / f"serve-{len(started)}"
        workdir.mkdir()
        svc = Service(workdir, env, args=())
        started.append(svc)
        if wait:
            svc.wait_ready()
        return svc

    yield start
    for svc in started:
        svc.stop()


def sigkill(svc: Service) -> None:
    svc.proc.kill()
    assert svc.proc.wait(10) == -signal.SIGKILL


async def make_tokens(url: str, *, migrate: bool = True) -> tuple[str, str]:
    """A pbx and a supervisor token in the database the services will use."""
    c = bootstrap.build(Settings().replace(database={"url": url}))
    try:
        if migrate:
            await db.upgrade(c.engine)
        now = c.clock.now()
        pbx = await c.auth.create_token("e2e-pbx", "pbx", now)
        sup = await c.auth.create_token("e2e-supervisor", "supervisor", now)
    finally:
        await c.close()
    return pbx, sup


async def read_call(url: str, call_id: str) -> dict:
    """The call as stored, read straight from the database while no service runs."""
    c = bootstrap.build(Settings().replace(database={"url": url}))
    try:
        return wire(await c.calls.get(call_id), c)
    finally:
        await c.close()


async def expected_due(url: str, received: list[datetime]) -> list[datetime]:
    """Due times by the same calendar and policy the service uses (for many tickets at once)."""
    c = bootstrap.build(Settings().replace(database={"url": url}))
    try:
        out = []
        for at in received:
            version = await c.policy.in_force_at(at)
            cal = c.calendars.for_policy(version)
            out.append(cal.add_working_hours(at, version.written_answer_hours))
        return out
    finally:
        await c.close()


def cli_due(tmp_path, url: str, received_at: str) -> str:
    """``callcenter calendar due --received ...`` against the same database, its stdout."""
    cli = Cli(tmp_path, base_env(CALLCENTER_DATABASE_URL=url))
    return cli.run("calendar", "due", "--received", received_at, check=True).stdout.strip()


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str, pbx: str, sup: str) -> None:
        self.http, self.base = http, base
        self.pbx = {"Authorization": f"Bearer {pbx}"}
        self.sup = {"Authorization": f"Bearer {sup}"}

    async def event(self, body: dict) -> int:
        async with self.http.post(
            f"{self.base}/api/v1/events", json=body, headers=self.pbx
        ) as resp:
            text = await resp.text()
            assert resp.status in (200, 201), f"{body} -> {resp.status} {text}"
            return resp.status

    async def get(self, path: str) -> dict:
        async with self.http.get(f"{self.base}{path}", headers=self.sup) as resp:
            assert resp.status == 200, f"GET {path} -> {resp.status} {await resp.text()}"
            return await resp.json()

    async def call(self, call_id: str) -> dict:
        return await self.get(f"/api/v1/calls/{call_id}")

    async def tickets(self) -> dict:
        return await self.get("/api/v1/tickets?limit=500")


async def until(check, what: str, within: float = POLL_TIMEOUT):
    """Poll ``check()`` until it returns ``(True, value)``; fail with the last value."""
    deadline = time.monotonic() + within
    while True:
        ok, value = await check()
        if ok:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {within} s; last seen {value!r}")
        await asyncio.sleep(0.2)


async def wait_overrun(api: Api, call_id: str) -> dict:
    async def check():
        call = await api.call(call_id)
        return call["window"]["status"] == "overrun", call["window"]

    await until(check, f"window of {call_id} overrun")
    return await api.call(call_id)


def tickets_of(listing: dict, call_id: str) -> list[dict]:
    return [t for t in listing["items"] if t["call_id"] == call_id]


def check_ticket(call: dict, ticket: dict) -> None:
    """The ticket is the call's, raised by the overrun at the moment the window closed."""
    window = call["window"]
    assert ticket["source"] == "call"
    assert ticket["escalation_reason"] == "overrun"
    assert call["ticket"] is not None and call["ticket"]["id"] == ticket["id"]
    received = parse(ticket["received_at"])
    assert received >= parse(window["deadline_at"])  # never before the deadline
    assert received == parse(window["closed_at"])  # the escalation moment itself
    assert received == parse(window["deadline_at"])  # which is the deadline


# --- one process ----------------------------------------------------------------------------


async def test_overrun_creates_exactly_one_ticket_due_by_the_calendar(db_url, spawn, tmp_path):
    pbx, sup = await make_tokens(db_url)
    svc = spawn(serve_env(db_url))
    call_id = new_call_id()
    async with aiohttp.ClientSession() as http:
        api = Api(http, svc.url, pbx, sup)
        assert (
            await api.event(
                {"event": "call_started", "call_id": call_id, "caller_number": "79001234567"}
            )
            == 201
        )
        assert (
            await api.event({"event": "agent_connected", "call_id": call_id, "agent": "PJSIP/101"})
            == 201
        )
        opened = (await api.call(call_id))["window"]
        assert opened["status"] in ("open", "extended")
        assert (parse(opened["deadline_at"]) - parse(opened["opened_at"])).total_seconds() == WINDOW
        assert (await api.call(call_id))["ticket"] is None

        call = await wait_overrun(api, call_id)
        listing = await api.tickets()
        mine = tickets_of(listing, call_id)
        assert len(mine) == 1, listing
        assert listing["total"] == 1
        ticket = mine[0]
        check_ticket(call, ticket)

        # due_at is what the command line says for that received_at (which prints whole
        # seconds, so the API's value is compared truncated to the second)
        due = cli_due(tmp_path, db_url, ticket["received_at"])
        assert parse(ticket["due_at"]).replace(microsecond=0) == parse(due)
        assert parse(ticket["due_at"]) > parse(ticket["received_at"])

        # the caller finally hangs up: the call ends, the window stays overrun, no new ticket
        assert (
            await api.event({"event": "call_ended", "call_id": call_id, "hangup_by": "caller"})
            == 201
        )
        after = await api.call(call_id)
        assert after["ended_at"] is not None
        assert after["window"]["status"] == "overrun"
        assert after["ticket"]["id"] == ticket["id"]
        await asyncio.sleep(0.6)  # > one resync: a late second escalation would show
        listing = await api.tickets()
        assert listing["total"] == 1 and [t["id"] for t in listing["items"]] == [ticket["id"]]


# --- SIGKILL before the deadline -----------------------------------------------------------


async def test_kill_9_before_the_deadline_then_restart_gives_one_ticket(db_url, spawn, tmp_path):
    pbx, sup = await make_tokens(db_url)
    env = serve_env(db_url)
    first = spawn(env)
    call_id = new_call_id()
    async with aiohttp.ClientSession() as http:
        api = Api(http, first.url, pbx, sup)
        assert (
            await api.event({"event": "agent_connected", "call_id": call_id, "agent": "PJSIP/101"})
            == 201
        )
        sigkill(first)

    # Nobody fired: the kill really came before the deadline, the window is still running.
    stored = await read_call(db_url, call_id)
    assert stored["window"]["status"] in ("open", "extended"), stored["window"]
    assert stored["ticket"] is None
    deadline = parse(stored["window"]["deadline_at"])
    await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)
    assert datetime.now(UTC) > deadline

    second = spawn(env)
    async with aiohttp.ClientSession() as http:
        api = Api(http, second.url, pbx, sup)
        call = await wait_overrun(api, call_id)
        listing = await api.tickets()
        mine = tickets_of(listing, call_id)
        assert len(mine) == 1, listing
        assert listing["total"] == 1
        check_ticket(call, mine[0])
        # raised by the restarted process, but dated at the deadline: an outage must not
        # push the written answer's due time later
        assert parse(mine[0]["received_at"]) == deadline
        due = cli_due(tmp_path, db_url, mine[0]["received_at"])
        assert parse(mine[0]["due_at"]).replace(microsecond=0) == parse(due)
        await asyncio.sleep(0.6)
        assert (await api.tickets())["total"] == 1


# --- two processes on one PostgreSQL -----------------------------------------------------------

N_CALLS = 100


async def _two_services(tmp_path, spawn, *, kill_one: bool) -> None:
    if not PG_URL:
        pytest.skip(PG_SKIP)
    await reset_postgres(PG_URL)
    Cli(tmp_path, base_env(CALLCENTER_DATABASE_URL=PG_URL)).run("db", "upgrade", check=True)
    pbx, sup = await make_tokens(PG_URL, migrate=False)
    env = serve_env(PG_URL, CALLCENTER_DATABASE_AUTO_MIGRATE="false")
    a, b = spawn(env, wait=False), spawn(env, wait=False)
    a.wait_ready()
    b.wait_ready()
    call_ids = [new_call_id() for _ in range(N_CALLS)]
    async with aiohttp.ClientSession() as http:
        apis = [Api(http, a.url, pbx, sup), Api(http, b.url, pbx, sup)]
        gate = asyncio.Semaphore(10)

        async def connect(i: int, call_id: str) -> int:
            async with gate:
                return await apis[i % 2].event(
                    {"event": "agent_connected", "call_id": call_id, "agent": f"PJSIP/{100 + i}"}
                )

        statuses = await asyncio.gather(*(connect(i, cid) for i, cid in enumerate(call_ids)))
        assert statuses == [201] * N_CALLS
        api = apis[0]

        if kill_one:
            # SIGKILL the second process as soon as the first escalations are under way, so
            # it may die in the middle of its own; the survivor must finish every window.
            async def started():
                page = await api.get("/api/v1/calls?status=overrun&limit=1")
                return page["total"] >= 1, page["total"]

            await until(started, "first overrun")
            sigkill(b)

        async def all_overrun():
            page = await api.get("/api/v1/calls?status=overrun&limit=500")
            return page["total"] == N_CALLS, page["total"]

        await until(all_overrun, f"{N_CALLS} windows overrun")
        running = await api.get("/api/v1/calls?status=open&limit=500")
        assert running["total"] == 0

        listing = await api.tickets()
        assert listing["total"] == N_CALLS
        counts = Counter(t["call_id"] for t in listing["items"])
        assert set(counts) == set(call_ids)
        assert all(n == 1 for n in counts.values()), [c for c, n in counts.items() if n != 1]
        assert {t["source"] for t in listing["items"]} == {"call"}
        received = [parse(t["received_at"]) for t in listing["items"]]
        due = await expected_due(PG_URL, received)
        assert [parse(t["due_at"]) for t in listing["items"]] == due

        await asyncio.sleep(0.6)  # another resync period in each survivor
        assert (await api.tickets())["total"] == N_CALLS
        if not kill_one:
            again = await apis[1].tickets()
            assert again["total"] == N_CALLS


@pytest.mark.postgres
async def test_two_processes_one_postgres_one_ticket_per_window(tmp_path, spawn):
    await _two_services(tmp_path, spawn, kill_one=False)


@pytest.mark.postgres
async def test_two_processes_one_killed_mid_escalation(tmp_path, spawn):
    await _two_services(tmp_path, spawn, kill_one=True)
