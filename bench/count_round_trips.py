"""PostgreSQL round trips per FastAGI dialogue, counted (not timed): steady on a busy box.

Usage: python bench/count_round_trips.py --pg URL [--dialogues 50]

`callcenter serve` in a child process under `strace -e sendto,write`; this process plays
Asterisk (as bench_fastagi.py does) for full valid-number dialogues, one at a time, so no
two dialogues' events share a batch (the worst case). Every message the service sends to
PostgreSQL starts with its type byte and a length whose high bytes are zero; each Bind
(``B``, an extended-protocol statement) or simple Query (``Q``: BEGIN, COMMIT, a reset) is
one round trip. Needs strace and permission to trace one's own child (ptrace_scope <= 1).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_fastagi as b
from _common import ROOT, Served

sys.path.insert(0, str(ROOT))

MESSAGE = re.compile(r'(?:sendto|write)\(\d+, "(.)\\0\\0')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", required=True)
    ap.add_argument("--dialogues", type=int, default=50)
    args = ap.parse_args()
    from tests.conftest import reset_postgres

    work = Path(tempfile.mkdtemp(prefix="cc-bench-trips-"))
    b.OPEN.update(
        CALLCENTER_CALENDAR_OVERRIDES_FILE=str(b.always_open(work)),
        CALLCENTER_POLICY_DAY_START="00:00",
        CALLCENTER_POLICY_DAY_END="23:59",
    )
    asyncio.run(reset_postgres(args.pg))
    b.prepare(args.pg, work)
    served = Served(args.pg, work, **b.OPEN)
    trace = work / "strace.txt"
    try:
        asyncio.run(b.dialogues(served.agi_port, 20, 1))  # caches and statements warm
        command = ["strace", "-f", "-qq", "-e", "trace=sendto,write", "-s", "6"]
        tracer = subprocess.Popen([*command, "-o", str(trace), "-p", str(served.proc.pid)])
        time.sleep(1.5)  # attached to every thread
        asyncio.run(b.dialogues(served.agi_port, args.dialogues, 1))
        time.sleep(1.0)
        tracer.terminate()
        tracer.wait()
    finally:
        served.stop()
    kinds: collections.Counter[str] = collections.Counter()
    for line in trace.read_text(errors="replace").splitlines():
        if m := MESSAGE.search(line):
            kinds[m.group(1)] += 1
    trips = sum(kinds.values())
    print(
        f"{args.dialogues} dialogues one at a time: {trips} PostgreSQL round trips, "
        f"{trips / args.dialogues:.2f} per dialogue (by message type: {dict(kinds)})"
    )


if __name__ == "__main__":
    main()
