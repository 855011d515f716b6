"""The service stopped while calls arrive (process AGI): every call is still routed, those
that met the stopped service ``UNVERIFIED`` within the 3 s budget, their events kept in the
spool and delivered exactly once after the restart."""

from __future__ import annotations

import concurrent.futures
import time

from tests.agi_peer import Caller, Dtmf, Hangup, run_process_agi
from tests.conftest import ROOT
from tests.e2e.conftest import agi_env, local_calendar_env
from tests.e2e.desk_stack import VALID, DeskStack
from tests.e2e.test_ivr import SOUNDS
from tests.faults.conftest import restart, rows, scalar

COLLECT = ROOT / "agi_scripts" / "collect_certificate.py"
ENDED = ROOT / "agi_scripts" / "call_ended.py"
N = 16


def _call(env: dict, n: int):
    caller = Caller(
        caller_id=f"7900{n:07d}",
        uniqueid=f"1795490000.{n}",
        actions=[Dtmf(VALID + "#")],
    )
    t0 = time.monotonic()
    res = run_process_agi([COLLECT], caller, options=SOUNDS, extra_env=env, timeout=30)
    return res, time.monotonic() - t0


def test_service_stopped_while_calls_arrive(tmp_path, database):
    open_now = local_calendar_env(tmp_path, open_now=True)  # the service's and the scripts'
    stack = DeskStack(tmp_path / "s", database_url=database, **open_now)
    env = agi_env(stack.url, stack.token, tmp_path) | open_now
    try:
        results = []
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            first = [pool.submit(_call, env, n) for n in range(N // 2)]
            results += [f.result() for f in first[:4]]  # some calls done with it up
            stack.service.stop()  # SIGTERM while the others are arriving
            rest = [pool.submit(_call, env, n) for n in range(N // 2, N)]
            results += [f.result() for f in first[4:] + rest]
        statuses = [r.variables.get("CC_CERT_STATUS") for r, _ in results]
        assert [r.variables.get("CC_ROUTE") for r, _ in results] == ["QUEUE"] * N, statuses
        assert set(statuses) <= {"VALID", "UNVERIFIED"} and statuses[:4] == ["VALID"] * 4
        unverified = statuses.count("UNVERIFIED")
        assert unverified >= N // 2  # at least every call placed after the stop
        slowest = max(seconds for _, seconds in results)
        assert slowest < 10, slowest  # generous: the 3 s budget is the scripts' own

        # back on the same address: the next hangup handler delivers what was kept
        restart(stack, same_ports=True)
        ids = [r.variables["CC_CALL_ID"] for r, _ in results]
        hangup = Caller(
            dead=True,
            uniqueid="1795490000.99",
            linkedid=ids[-1],
            context="cc-hangup",
            variables={"CC_ROUTE": "QUEUE", "CC_CALL_ID": ids[-1]},
            actions=[Hangup()],
        )
        run_process_agi([ENDED], hangup, extra_env=env, timeout=30)
        assert list((tmp_path / "spool").glob("*.json")) == []
        in_ = "(" + ",".join(f"'{i}'" for i in ids) + ")"
        assert scalar(database, f"SELECT count(*) FROM calls WHERE call_id IN {in_}") == N
        counts = dict(
            rows(
                database,
                f"SELECT event, count(*) FROM call_events WHERE call_id IN {in_} GROUP BY event",
            )
        )
        # every call's three reports exactly once, whichever way they came
        assert counts.get("call_started") == N and counts.get("queued") == N, counts
        assert counts.get("certificate_checked") == N, counts
        assert counts.get("call_ended") == 1, counts
    finally:
        stack.stop()
