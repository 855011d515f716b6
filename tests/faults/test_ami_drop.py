"""The AMI connection dropped mid-call (after the agent answered, before the hangup), against
a real ``serve``: the client reconnects and logs in again, the call is recorded once, and its
timing is the switch's (the events' own Timestamp), however long the line was down."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from tests.ami_server import FakeAmiServer
from tests.e2e.conftest import base_env
from tests.faults.conftest import rows
from tests.integration.test_ami import Q5, Q5_CALL

WANTED = (b"Privilege: call,", b"Privilege: agent,")


def _stamped(data: bytes, at: float) -> bytes:
    assert data.endswith(b"\r\n\r\n")
    return data[:-2] + f"Timestamp: {at:.6f}\r\n\r\n".encode()


def _instant(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace(" ", "T"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def test_ami_dropped_mid_call_reconnects_and_keeps_the_timing(tmp_path, database):
    from tests.e2e.conftest import Service

    async with FakeAmiServer() as ami:
        env = base_env(
            CALLCENTER_DATABASE_URL=database,
            CALLCENTER_AMI_ENABLED="true",
            CALLCENTER_AMI_PORT=str(ami.port),
            CALLCENTER_AMI_USERNAME="test",
            CALLCENTER_AMI_SECRET="test",
        )
        service = Service(tmp_path, env, args=())
        try:
            await asyncio.to_thread(service.wait_ready)
            await ami.wait_logins(1, 30)
            stamps: dict[str, float] = {}
            cut = next(i for i, e in enumerate(Q5.events) if e.name == "AgentConnect") + 1
            for first, part in ((True, Q5.events[:cut]), (False, Q5.events[cut:])):
                for ev in part:
                    if ev.data.startswith(b"Event: ") and any(w in ev.data for w in WANTED):
                        now = time.time()
                        if ev.name in ("QueueCallerJoin", "AgentConnect") or (
                            ev.name == "Hangup" and ev.get("Uniqueid") == Q5_CALL
                        ):
                            stamps[ev.name] = now
                        await ami.send_raw(_stamped(ev.data, now))
                if first:
                    await asyncio.sleep(0.5)  # what was sent is taken
                    await ami.drop()  # the network goes away mid-call
                    await asyncio.sleep(2)  # and stays away a while
                    await ami.wait_logins(2, 30)

            def recorded():
                got = rows(
                    database,
                    "SELECT queued_at, connected_at, ended_at FROM calls WHERE call_id = :c",
                    c=Q5_CALL,
                )
                return got if got and got[0][2] is not None else None

            for _ in range(100):
                got = await asyncio.to_thread(recorded)
                if got:
                    break
                await asyncio.sleep(0.1)
            assert got, service.log()
            queued, connected, ended = (_instant(v) for v in got[0])
            want = {k: datetime.fromtimestamp(v, UTC) for k, v in stamps.items()}
            assert abs((queued - want["QueueCallerJoin"]).total_seconds()) < 1e-3
            assert abs((connected - want["AgentConnect"]).total_seconds()) < 1e-3
            assert abs((ended - want["Hangup"]).total_seconds()) < 1e-3
            counts = dict(
                rows(
                    database,
                    "SELECT event, count(*) FROM call_events WHERE call_id = :c GROUP BY event",
                    c=Q5_CALL,
                )
            )
            assert counts == {"queued": 1, "agent_connected": 1, "call_ended": 1}, counts
            logins = [a for a in ami.actions if a.get("Action") == "Login"]
            assert len(logins) == 2  # logged in again after the drop
        finally:
            await asyncio.to_thread(service.stop)
