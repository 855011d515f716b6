"""Microbenchmark of event validation (``parse_event``), the ingest hot path's CPU part.

Run: .venv/bin/python bench/bench_parse_event.py [rounds]. Prints events/s for the five event
kinds as the PBX sends them (with ``at``), best of five rounds, in this process alone.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from _common import FIGURES

from callcenter.domain.events import parse_event

NOW = datetime(2026, 3, 17, 8, 0, tzinfo=UTC)
AT = "2026-03-17T11:00:00.123456+03:00"
BODIES = [
    {"event": "call_started", "call_id": "1795483251.54", "at": AT, "caller_number": "79001234567",
     "channel": "PJSIP/trunk-00000001", "source": "fastagi"},
    {"event": "certificate_checked", "call_id": "1795483251.54", "at": AT,
     "certificate": "1234567", "status": "VALID", "attempt": 1, "source": "fastagi"},
    {"event": "queued", "call_id": "1795483251.54", "at": AT, "queue": "support"},
    {"event": "agent_connected", "call_id": "1795483251.54", "at": AT, "agent": "PJSIP/101",
     "agent_name": "Иванова"},
    {"event": "call_ended", "call_id": "1795483251.54", "at": AT, "hangup_by": "caller",
     "cause": "16"},
]  # fmt: skip


def main(n: int = 40_000, json_path: str | None = None) -> None:
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(n):
            parse_event(BODIES[i % 5], NOW)
        best = max(best, n / (time.perf_counter() - t0))
    print(f"parse_event: {best:,.0f} events/s (best of 5 x {n})")
    FIGURES.add("parse_event, the five kinds", best, "/s")
    FIGURES.write(json_path, "bench_parse_event", rounds=n)


if __name__ == "__main__":
    argv = sys.argv[1:]
    path = None
    if "--json" in argv:  # bench/run_all.py's option, as the other scripts take it
        i = argv.index("--json")
        path, argv = argv[i + 1], argv[:i] + argv[i + 2 :]
    main(int(argv[0]) if argv else 40_000, path)
