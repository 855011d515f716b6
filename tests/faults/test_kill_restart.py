"""``kill -9`` with 100 oral windows open, started again after their deadlines: every window
is escalated once, 100 tickets, none doubled (the timers live in the database)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tests.e2e.desk_stack import DeskStack
from tests.faults.conftest import kill9, restart, rows, scalar, wait_for

N = 100
FAST = {
    "CALLCENTER_POLICY_ORAL_WINDOW_SECONDS": "20",
    "CALLCENTER_POLICY_WARNING_SECONDS": "10",
    "CALLCENTER_TIMERS_GRACE_SECONDS": "0.5",
    "CALLCENTER_TIMERS_RESYNC_SECONDS": "1",
}


def _in(ids: list[str]) -> str:
    return "(" + ",".join(f"'{i}'" for i in ids) + ")"


def test_kill_9_with_100_windows_open_restarted_after_their_deadlines(tmp_path, database):
    stack = DeskStack(tmp_path / "s", database_url=database, **FAST)
    try:
        ids = [stack.new_call(interface=f"PJSIP/{300 + i}", status=None) for i in range(N)]
        calls = _in(ids)
        opened = scalar(database, f"SELECT count(*) FROM oral_windows WHERE call_id IN {calls}")
        tickets = f"SELECT count(*) FROM tickets WHERE call_id IN {calls}"
        assert (opened, scalar(database, tickets)) == (N, 0)

        kill9(stack.service)
        (last,) = rows(
            database, f"SELECT max(deadline_at) FROM oral_windows WHERE call_id IN {calls}"
        )[0]
        last = last if isinstance(last, datetime) else datetime.fromisoformat(str(last))
        last = last if last.tzinfo else last.replace(tzinfo=UTC)
        # down until every deadline has passed (nothing could fire meanwhile)
        time.sleep(max(0.0, (last - datetime.now(UTC)).total_seconds()) + 1)
        assert scalar(database, tickets) == 0

        restart(stack)
        wait_for(lambda: scalar(database, tickets) == N, 60, f"{N} tickets after the restart")
        time.sleep(3)  # three resyncs more: nothing fires again
        assert scalar(database, tickets) == N
        assert (
            scalar(
                database,
                f"SELECT count(DISTINCT call_id) FROM tickets WHERE call_id IN {calls}",
            )
            == N
        )
        statuses = rows(
            database,
            f"SELECT status, count(*) FROM oral_windows WHERE call_id IN {calls} GROUP BY status",
        )
        assert len(statuses) == 1 and statuses[0][1] == N and statuses[0][0] != "open", statuses
    finally:
        stack.stop()
