"""PostgreSQL restarted while events arrive: nothing acknowledged is lost, the service
recovers without a restart of its own, and the push sockets get a fresh desk once the
relay between instances is connected again.

This restarts the machine's shared PostgreSQL server (``pg_ctlcluster ... restart``): every
other test using it fails meanwhile. It runs only with CALLCENTER_FAULTS_RESTART_POSTGRES=1
(set by CI's .ci/run).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

import aiohttp
import pytest

from tests.e2e.desk_stack import DeskStack
from tests.faults.conftest import postgres, scalar

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        os.environ.get("CALLCENTER_FAULTS_RESTART_POSTGRES") != "1",
        reason="restarts the shared PostgreSQL server: set CALLCENTER_FAULTS_RESTART_POSTGRES=1",
    ),
]


def _post(url: str, token: str, body: dict) -> int:
    req = urllib.request.Request(
        url + "/api/v1/events",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=120,
    )
    for _ in range(60):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError("PostgreSQL did not come back")


async def test_postgres_restarted_while_events_arrive(tmp_path):
    url = postgres()
    stack = await asyncio.to_thread(DeskStack, tmp_path / "s", database_url=url)
    token = stack.cli.run("tokens", "create", "sup", "--role", "supervisor", check=True)
    token = token.stdout.strip().splitlines()[-1]
    acknowledged: list[str] = []
    refused: list[tuple[str, int]] = []
    stop = threading.Event()
    ids = itertools.count(1)

    def feed() -> None:  # the switch, posting one call after another
        while not stop.is_set():
            cid = f"1795500000.{next(ids)}"
            status = _post(stack.url, stack.token, {"event": "call_started", "call_id": cid,
                                                    "caller_number": "+79001234567"})  # fmt: skip
            (acknowledged.append(cid) if 200 <= status < 300 else refused.append((cid, status)))
            time.sleep(0.01)

    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(
                stack.url + "/api/v1/stream", headers={"Authorization": f"Bearer {token}"}
            )
            assert (await ws.receive_json(timeout=10))["type"] == "hello"
            assert (await ws.receive_json(timeout=10))["type"] == "desk"
            feeder = threading.Thread(target=feed)
            feeder.start()
            await asyncio.sleep(1)
            before = len(acknowledged)
            await asyncio.to_thread(_restart_postgres)
            # the service keeps going: events are taken again without its restart
            back = len(acknowledged)
            for _ in range(300):
                if len(acknowledged) >= back + 20:
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.to_thread(feeder.join)
            assert stack.service.proc.poll() is None  # the same process throughout
            # the relay connected again: the socket got a fresh desk (its catch-up)
            kinds = []
            while "desk" not in kinds:
                kinds.append((await ws.receive_json(timeout=30))["type"])
            await ws.close()
        assert before > 0 and len(acknowledged) >= back + 20
        stored = scalar(url, "SELECT count(*) FROM calls WHERE call_id LIKE '1795500000.%'")
        in_ = "(" + ",".join(f"'{c}'" for c in acknowledged) + ")"
        kept = scalar(url, f"SELECT count(*) FROM calls WHERE call_id IN {in_}")
        assert kept == len(acknowledged)  # nothing acknowledged is lost
        assert stored >= kept
        assert all(status in (0, 503) for _, status in refused), refused[:5]
    finally:
        stop.set()
        await asyncio.to_thread(stack.stop)
