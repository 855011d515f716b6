#!/usr/bin/env python3
"""The supervisor's board and history reads at scale: times ``SupervisorQueries.board`` (the
board's and the wallboard's refresh) and a few filtered history pages against an existing
database (read only: nothing is written), and prints each board query's plan.

    .venv/bin/python bench/bench_board.py postgresql+asyncpg://postgres@127.0.0.1/bench \\
        [--at 2025-12-31T18:30:00+03:00] [--runs 20]

The database is the one ``bench/bench_reports.py`` seeds (1,000,000 calls, 200,000 tickets).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import FIGURES, json_option
from sqlalchemy import text

from callcenter import bootstrap
from callcenter.adapters.clock import FixedClock
from callcenter.config import Settings
from callcenter.services.call_filters import parse_call_filters

HISTORY = {
    "history: first page, no filter": {},
    "history: a month, one agent": {"from": "2025-11-01", "to": "2025-11-30", "agent": "PJSIP/107"},
    "history: a month, overrun, by agent": {
        "from": "2025-11-01",
        "to": "2025-11-30",
        "window": "overrun",
        "sort": "agent",
    },
    "history: organisation contains": {"organisation": "ромашка"},
    "history: caller number contains": {"caller": "1234"},
}


async def timed(fn, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--at", default="2025-12-31T18:30:00+03:00")
    ap.add_argument("--runs", type=int, default=20)
    json_option(ap)
    args = ap.parse_args()
    now = datetime.fromisoformat(args.at)
    c = bootstrap.build(Settings().replace(database={"url": args.url}), clock=FixedClock(now))
    try:
        async with c.engine.connect() as conn:
            calls = (await conn.execute(text("select count(*) from calls"))).scalar_one()
            tickets = (await conn.execute(text("select count(*) from tickets"))).scalar_one()
        print(f"{calls} calls, {tickets} tickets; now = {now.isoformat()}")
        board = await c.supervisor.board(now)
        print(
            f"board: {len(board.active)} active, {len(board.waiting)} waiting, "
            f"{len(board.agents)} agents, {len(board.due_soon)} due soon, "
            f"{len(board.breached)} breached"
        )
        med, worst = await timed(lambda: c.supervisor.board(now), args.runs)
        print(f"{'board refresh (all its queries)':45s} median {med:7.1f} ms  max {worst:7.1f} ms")
        FIGURES.add("board refresh (all its queries), median", med, "ms", goal="<= 100")
        for name, query in HISTORY.items():
            f = parse_call_filters(query)
            med, worst = await timed(lambda f=f: c.supervisor.history(f, 50, 0), args.runs)
            print(f"{name:45s} median {med:7.1f} ms  max {worst:7.1f} ms")
            FIGURES.add(f"{name} (board's reads), median", med, "ms", goal="<= 200")
        if c.engine.dialect.name == "postgresql":
            await plans(c, now)
    finally:
        await c.close()
    FIGURES.write(args.json, "bench_board", runs=args.runs)
    return 0


async def plans(c, now: datetime) -> None:
    """EXPLAIN ANALYZE of the board's statements, compiled as the adapter sends them."""
    from datetime import timedelta

    from sqlalchemy.dialects import postgresql

    from callcenter.adapters import board_sql

    soon = await c.supervisor.soon(now)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    captured: list[tuple[str, object]] = []

    class Spy:
        def __init__(self, session) -> None:
            self.session = session

        async def execute(self, stmt, *a, **kw):
            captured.append(stmt)
            return await self.session.execute(stmt, *a, **kw)

    async with c.uow() as uow:
        reads = board_sql.SupervisorReads(Spy(uow.session))
        reads.session.bind = uow.session.bind
        await reads.active_calls(now)
        await reads.waiting_calls(now)
        await reads.agents(now)
        await reads.tickets_due_before(soon)
        await reads.day_figures(day, day + timedelta(days=1))
        history = parse_call_filters(HISTORY["history: a month, overrun, by agent"])
        await reads.history(history, 50, 0)
        for stmt in captured:
            sql = stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
            rows = (await uow.session.execute(text(f"EXPLAIN ANALYZE {sql}"))).all()
            print("\n" + str(sql).splitlines()[0][:100] + " ...")
            for (line,) in rows:
                print("   ", line)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
