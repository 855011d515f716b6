"""Issue 12: no caller stranded, none misrouted, over both transports with the AGI test peer.

Each test names the item of the issue it holds. ``process``: the real
``agi_scripts/collect_certificate.py`` subprocess against the peer; ``fastagi``: the peer over
real TCP to the FastAGI server answering in-process.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from callcenter.adapters import db
from callcenter.adapters.repositories import CertificateReader
from callcenter.calendar import MOSCOW
from callcenter.telephony.fastagi import fastagi_server
from tests.agi_peer import Caller, Dtmf, PeerOptions, run_fastagi, run_process_agi
from tests.conftest import ROOT
from tests.e2e.conftest import VALID, agi_env, free_port, local_calendar_env

SOUNDS = PeerOptions(sound_patterns=("callcenter/*", "silence/*", "digits/*"))
SCRIPT = ROOT / "agi_scripts" / "collect_certificate.py"
SATURDAY_NOON = datetime(2026, 3, 21, 12, 0, tzinfo=MOSCOW)


def routed(result, route, status):
    assert result.variables.get("CC_ROUTE") == route, result.timeline
    assert result.variables.get("CC_CERT_STATUS") == status, result.timeline


def cut_database(container) -> None:
    """Point the container at a database that refuses every connection (an outage)."""
    dead = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    container.engine = db.create_engine(dead)
    container.sessions.configure(bind=container.engine)
    container.registry.reader = CertificateReader(dead)
    container.registry._cache.clear()
    container.policy._book = None


# --- item 2: the local calendar decides when the service cannot ------------------------------


async def test_service_down_closed_day_process_agi(container, registry_data, tmp_path):
    """The service is not running, the day is a day off: CLOSED from the local calendar, not
    UNVERIFIED into the queue (the failed call_started report no longer skips the question)."""
    env = agi_env(f"http://127.0.0.1:{free_port()}", "x", tmp_path)
    env |= local_calendar_env(tmp_path, open_now=False)
    res = await asyncio.to_thread(
        run_process_agi, [SCRIPT], Caller(actions=[Dtmf(VALID + "#")]), options=SOUNDS,
        extra_env=env,
    )  # fmt: skip
    routed(res, "CLOSED", "CLOSED")
    assert any("callcenter/closed" in c for c in res.commands)
    assert not any(c.startswith("GET DATA") for c in res.commands)


async def test_database_down_closed_day_fastagi(container, registry_data, clock):
    clock.at = SATURDAY_NOON
    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await container.engine.dispose()
        cut_database(container)
        res = await run_fastagi(
            "127.0.0.1", port, "collect_certificate", Caller(actions=[Dtmf(VALID + "#")]),
            options=SOUNDS,
        )  # fmt: skip
    routed(res, "CLOSED", "CLOSED")
    say = next(c for c in res.commands if c.startswith("SAY DATETIME"))
    monday = int(datetime(2026, 3, 23, 9, 0, tzinfo=MOSCOW).timestamp())
    assert say.split()[2] == str(monday)


async def test_database_down_working_hours_fastagi_still_queues(container, registry_data):
    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await container.engine.dispose()
        cut_database(container)
        res = await run_fastagi(
            "127.0.0.1", port, "collect_certificate", Caller(actions=[Dtmf(VALID + "#")]),
            options=SOUNDS,
        )  # fmt: skip
    routed(res, "QUEUE", "UNVERIFIED")
