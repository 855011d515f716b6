"""The fault suite (issue 14): real ``callcenter serve`` processes on SQLite or PostgreSQL,
put through what an operations team would throw at them; each case asserts exact counts.

Every test here carries the ``faults`` marker (``pytest -m faults`` runs the suite alone;
``make test`` runs it with the rest). The PostgreSQL restart restarts the machine's shared
server and runs only when ``CALLCENTER_FAULTS_RESTART_POSTGRES=1`` (CI sets it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import text

from callcenter.adapters import db
from tests.conftest import PG_SKIP, PG_URL, reset_postgres
from tests.e2e.conftest import Service


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.slow)


def run_async(coro):
    """Run a coroutine to its end from synchronous test code (a loop of its own)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def scalar(url: str, sql: str, **params):
    async def go():
        engine = db.create_engine(url)
        try:
            async with engine.connect() as conn:
                return (await conn.execute(text(sql), params)).scalar()
        finally:
            await engine.dispose()

    return run_async(go())


def rows(url: str, sql: str, **params) -> list[tuple]:
    async def go():
        engine = db.create_engine(url)
        try:
            async with engine.connect() as conn:
                return [tuple(r) for r in (await conn.execute(text(sql), params))]
        finally:
            await engine.dispose()

    return run_async(go())


def wait_for(predicate, timeout: float, what: str, step: float = 0.2):
    """Poll ``predicate`` until it returns something true (returned), or fail saying what."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def kill9(service: Service) -> None:
    os.kill(service.proc.pid, signal.SIGKILL)
    service.proc.wait(10)
    service.out.close()


class SamePorts(Service):
    """``serve`` again on the ports an earlier one had (what a restart under systemd does:
    the PBX's configured address stays right)."""

    def __init__(self, before: Service, env: dict[str, str]) -> None:
        import subprocess

        from tests.e2e.conftest import CLI

        self.http_port, self.agi_port = before.http_port, before.agi_port
        env = {
            **env,
            "CALLCENTER_HTTP_PORT": str(self.http_port),
            "CALLCENTER_FASTAGI_PORT": str(self.agi_port),
        }
        workdir = Path(before.out.name).parent
        self.out = (workdir / "serve.log").open("a+")
        self.proc = subprocess.Popen(
            [*CLI, "serve"], cwd=workdir, env=env, stdout=self.out, stderr=subprocess.STDOUT
        )
        self.url = before.url


def restart(stack, *, same_ports: bool = False) -> Service:
    """A new ``serve`` for the stack's folder and database, ready (new ports unless told)."""
    if same_ports:
        s = SamePorts(stack.service, stack.env)
    else:
        s = Service(stack.cli.workdir, stack.env, args=())
    s.wait_ready()
    stack.service, stack.url = s, s.url
    return s


def post(url: str, path: str, body, token: str, timeout: float = 10) -> int:
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request, tmp_path) -> str:
    """The database URL of the case: a SQLite file of its own, or the PostgreSQL test DB."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/faults.sqlite3"
    return postgres()


def postgres() -> str:
    if not PG_URL:
        pytest.skip(PG_SKIP)
    run_async(reset_postgres(PG_URL))
    return PG_URL
