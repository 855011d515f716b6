"""A short load run (issue 14): bench/bench_load.py's harness for ~30 s against two instances
on the test PostgreSQL database, 40 agent sockets, 40 calls in flight; exact counts, no
timing: every call stored once, each answered call one window and its pop once on its own
agent's socket, each overrun window one ticket and each of its frames once."""

from __future__ import annotations

import sys

from tests.conftest import ROOT
from tests.faults.conftest import postgres

sys.path.insert(0, str(ROOT / "bench"))

import bench_load

#: the realistic mix, with more long talks so that every run has windows overrun
MIX = {**bench_load.simulator.MIX, "long_talk": 20}


def test_a_short_load_run_on_two_instances_loses_and_doubles_nothing(tmp_path):
    url = postgres()
    res = bench_load.run_load(
        url, tmp_path, agents=40, in_flight=40, duration=30, speed=0.025, sample=5,
        out=lambda *_: None, mix=MIX,
    )  # fmt: skip
    assert res.errors == []
    assert res.problems == []
    c = res.counts
    assert c["calls"] == len(res.calls) > 100
    assert c["windows"] == c["answered"] == sum(call.connected for call in res.calls) > 0
    # each long talk went past its window: warned, overrun, a ticket (counted, not timed)
    assert c["tickets"] == c["overrun"] >= c["long_talks"] > 0
    assert c["warned"] >= c["long_talks"]
    # both transports carried calls: HTTP posts, and FastAGI for all three scripts
    assert any(call.posts_ms for call in res.calls)
    assert any(len(call.sessions_ms) == 3 for call in res.calls)
