"""Issue 12, item 1: no caller is held by a frozen database or a busy web side.

The FastAGI server of ``serve`` (``serve.fastagi_context``) runs on its own thread, event loop
and database pool, and bounds every service answer (``[fastagi] step_budget_seconds``).
"Routes within 3 s" is a correctness bound here: each test requires the whole dialogue to
complete before a 3 s deadline, and fails if it does not.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from aiohttp import web

from callcenter import bootstrap, serve
from callcenter.adapters.clock import FixedClock
from callcenter.config import Settings
from callcenter.telephony import sdnotify
from callcenter.telephony.fastagi import FastAgiThread
from callcenter.web.app import init_app
from tests.agi_peer import Caller, Dtmf, PeerOptions, run_fastagi
from tests.conftest import WORKING_MOMENT
from tests.e2e.conftest import VALID

SOUNDS = PeerOptions(sound_patterns=("callcenter/*", "silence/*", "digits/*"))
DEADLINE = 3.0


def routed(result, route, status):
    assert result.variables.get("CC_ROUTE") == route, result.timeline
    assert result.variables.get("CC_CERT_STATUS") == status, result.timeline


class BlackHole:
    """A database server that accepts connections and answers nothing: a frozen database."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        async def hold(reader, writer):
            self.writers.append(writer)
            await reader.read()

        self.server = await asyncio.start_server(hold, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        self.server.close()


async def _started(container):
    app = init_app(container, extra_contexts=[serve.fastagi_context])
    runner = web.AppRunner(app)
    await runner.setup()  # starts the FastAGI thread
    return app, runner


async def test_a_frozen_database_holds_no_fastagi_caller(tmp_path):
    hole = BlackHole()
    port = await hole.start()
    settings = Settings().replace(
        database={"url": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/frozen"},
        fastagi={"port": 0},
        agi={"spool_dir": str(tmp_path / "spool")},
    )
    container = bootstrap.build(settings, clock=FixedClock(WORKING_MOMENT))
    app, runner = await _started(container)
    try:
        host, agi_port = app[serve.FASTAGI_ADDRESS]
        res = await asyncio.wait_for(
            run_fastagi(host, agi_port, "collect_certificate",
                        Caller(actions=[Dtmf(VALID + "#")]), options=SOUNDS),
            DEADLINE,
        )  # fmt: skip
        # working time from the local calendar (a Tuesday at 11:00: open), no lookup answer
        routed(res, "QUEUE", "UNVERIFIED")
    finally:
        await hole.close()
        await runner.cleanup()
        await container.close()


async def test_a_blocked_web_side_holds_no_fastagi_caller(container, registry_data):
    container.settings = container.settings.replace(fastagi={"port": 0})
    app, runner = await _started(container)
    host, port = app[serve.FASTAGI_ADDRESS]
    got: dict = {}

    def caller() -> None:
        call = run_fastagi(host, port, "collect_certificate",
                           Caller(actions=[Dtmf(VALID + "#")]), options=SOUNDS)  # fmt: skip
        try:
            got["result"] = asyncio.run(asyncio.wait_for(call, DEADLINE))
        except BaseException as exc:  # reported below
            got["error"] = exc

    try:
        peer = threading.Thread(target=caller)
        peer.start()
        # the web side's loop is held, on purpose (as by a page, a report, an import)
        time.sleep(DEADLINE + 1)  # noqa: ASYNC251
        peer.join()
        assert "error" not in got, got.get("error")
        routed(got["result"], "QUEUE", "VALID")
        events = await container.calls.events(got["result"].variables["CC_CALL_ID"])
        assert [e.event for e in events] == ["call_started", "certificate_checked", "queued"]
    finally:
        await runner.cleanup()


def test_sd_notify_ready_watchdog_and_stopping(tmp_path, settings):
    """The FastAGI thread speaks systemd's notify protocol over a real datagram socket."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    environ = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"}

    async def make():
        return bootstrap.build(settings, clock=FixedClock(WORKING_MOMENT))

    thread = FastAgiThread(make, "127.0.0.1", 0, environ=environ)
    try:
        thread.start()
        got = [sock.recv(100) for _ in range(3)]
        assert got[0] == b"READY=1"
        assert got[1:] == [b"WATCHDOG=1", b"WATCHDOG=1"]
    finally:
        thread.stop()
    rest = []
    sock.settimeout(0.5)
    while True:
        try:
            rest.append(sock.recv(100))
        except TimeoutError:
            break
    assert rest[-1] == b"STOPPING=1"
    sock.close()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "x"}, None),
    ],
)
def test_watchdog_interval(environ, expected):
    assert sdnotify.watchdog_interval(environ) == expected
    assert sdnotify.notify("READY=1", environ) is False  # no NOTIFY_SOCKET: nothing sent
