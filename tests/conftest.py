"""Shared fixtures: real SQLite always, real PostgreSQL when CALLCENTER_TEST_DATABASE_URL is set."""

from __future__ import annotations

import os
import socket
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.adapters.clock import FixedClock
from callcenter.calendar import MOSCOW
from callcenter.config import Settings

PG_URL = os.environ.get("CALLCENTER_TEST_DATABASE_URL", "")
PG_SKIP = "CALLCENTER_TEST_DATABASE_URL is not set: PostgreSQL tests skipped"
ROOT = Path(__file__).resolve().parent.parent

# A Tuesday at 11:00 Moscow time: a plain working moment, whatever the wall clock says.
WORKING_MOMENT = datetime(2026, 3, 17, 11, 0, tzinfo=MOSCOW)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def reset_postgres(url: str) -> None:
    """The test database is ours: start every test from an empty public schema."""
    engine = db.create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/callcenter.sqlite3"
    if not PG_URL:
        pytest.skip(PG_SKIP)
    await reset_postgres(PG_URL)
    return PG_URL


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(WORKING_MOMENT)


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    # the spool in the test's own folder, not the shared default under the system temp dir
    return Settings().replace(database={"url": db_url}, agi={"spool_dir": str(tmp_path / "spool")})


@pytest.fixture
async def container(settings, clock):
    c = bootstrap.build(settings, clock=clock)
    await db.upgrade(c.engine)
    yield c
    await c.close()


@pytest.fixture
async def client(container):
    """A real aiohttp server on a real socket, with a real HTTP client."""
    from aiohttp.test_utils import TestClient, TestServer

    from callcenter.web.app import init_app

    server = TestServer(init_app(container))
    async with TestClient(server) as cli:
        yield cli


@pytest.fixture
async def pbx_token(container, clock) -> str:
    return await container.auth.create_token("test-pbx", "pbx", clock.now())


@pytest.fixture
async def supervisor_token(container, clock) -> str:
    return await container.auth.create_token("test-supervisor", "supervisor", clock.now())
