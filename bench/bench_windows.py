"""10,000 concurrently open oral windows: how late do they fire, and what do they cost?

Usage: python bench/bench_windows.py [--pg URL] [--windows N] [--spread SECONDS]

N answered calls are written straight into the database with deadlines spread evenly over
the next SPREAD seconds (every one of them left talking: the worst case, each fire creates a
ticket). Then the scheduler starts as after a restart: it loads every open window and fires
each at its deadline. Prints the distribution of the fire lag (from the timer's due time,
the deadline plus the grace, to the end of its fire: the ticket committed; the scheduler's
``lag_seconds``, taken after the commit since the fires were batched; before, it was taken
as the fire started) and the process's extra memory for the armed timers. ``--spread 0``:
every deadline at the same instant.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import FIGURES, json_option

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.config import Settings
from callcenter.domain.calls import CallRecord, OralWindow


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def run(url: str, n: int, spread: float, label: str, lead: float = 15.0) -> None:
    c = bootstrap.build(Settings().replace(database={"url": url}))
    await db.upgrade(c.engine)
    now = c.clock.now()
    # the first deadline falls after the set-up (~0.6 ms a window on SQLite, ~2.2 ms on
    # PostgreSQL here), so every timer is armed before it is due
    start = now + timedelta(seconds=lead + n * 0.004)
    async with c.uow() as uow:
        records = []
        for i in range(n):
            deadline = start + timedelta(seconds=spread * i / n)
            opened = deadline - timedelta(seconds=600)
            records.append(
                CallRecord(
                    f"bench.{i}",
                    caller_number="79001234567",
                    started_at=opened,
                    agent="PJSIP/101",
                    connected_at=opened,
                )
            )
        log = await uow.call_log()
        await log.lock_calls([r.call_id for r in records], now)
        await log.save_calls(records, now)
        for rec in records:
            await uow.windows.insert(OralWindow.open(rec.call_id, rec.connected_at, 600, 0, None))
        await uow.commit()
    setup = (c.clock.now() - now).total_seconds()
    before = rss_mib()
    loaded = await c.scheduler.load()
    armed = rss_mib()
    task = asyncio.create_task(c.scheduler.run())
    try:
        deadline_all = time.monotonic() + spread + 600
        while c.scheduler.fired < n and time.monotonic() < deadline_all:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    lag = sorted(c.scheduler.lag_seconds)
    started = sorted(c.scheduler.start_lag_seconds)
    total = (await c.tickets.search(c.clock.now(), limit=1)).total
    await c.close()
    q = lambda p: lag[min(len(lag) - 1, int(len(lag) * p))]  # noqa: E731
    within = sum(1 for x in lag if x <= 1.0) / len(lag) * 100
    print(
        f"{label}: {n} windows (set up in {setup:.0f} s), {loaded} timers loaded, deadlines "
        f"over {spread:.0f} s; fired {c.scheduler.fired}, tickets {total}"
    )
    print(
        f"  due -> ticket committed: median {statistics.median(lag) * 1000:.0f} ms, p99 "
        f"{q(0.99) * 1000:.0f} ms, p99.9 {q(0.999) * 1000:.0f} ms, max {lag[-1] * 1000:.0f} ms;"
        f" within 1 s: {within:.2f} %"
    )
    s99 = started[min(len(started) - 1, int(len(started) * 0.99))]
    print(
        f"  due -> fire started (the figure before fires were batched): median "
        f"{statistics.median(started) * 1000:.0f} ms, p99 {s99 * 1000:.0f} ms, max "
        f"{started[-1] * 1000:.0f} ms"
    )
    print(f"  memory: {armed - before:+.1f} MiB for the armed timers (process RSS {armed:.0f} MiB)")
    FIGURES.add(f"{n:,} windows, {label}: fire lag p50", statistics.median(lag) * 1000, "ms")
    FIGURES.add(f"{n:,} windows, {label}: fire lag p99", q(0.99) * 1000, "ms")
    FIGURES.add(f"{n:,} windows, {label}: fire lag max", lag[-1] * 1000, "ms")
    FIGURES.add(f"{n:,} windows, {label}: due -> fire started p99", s99 * 1000, "ms")
    FIGURES.add(f"{n:,} windows, {label}: fired within 1 s", within, "%", goal=">= 99.9")
    FIGURES.add(f"{n:,} windows, {label}: tickets made", total, "", goal=f">= {n}")
    FIGURES.add(f"{n:,} windows, {label}: memory of the armed timers", armed - before, "MiB",
                goal="< 100")  # fmt: skip


def main() -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg")
    ap.add_argument("--windows", type=int, default=10_000)
    ap.add_argument("--spread", type=float, default=120.0)
    ap.add_argument("--lead", type=float, default=15.0, help="seconds before the first deadline")
    json_option(ap)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cc-bench-win-"))
    asyncio.run(
        run(f"sqlite+aiosqlite:///{work}/w.sqlite3", args.windows, args.spread, "SQLite", args.lead)
    )
    if args.pg:
        from tests.conftest import reset_postgres

        asyncio.run(reset_postgres(args.pg))
        asyncio.run(run(args.pg, args.windows, args.spread, "PostgreSQL", args.lead))
    FIGURES.write(args.json, "bench_windows", windows=args.windows, spread=args.spread)


if __name__ == "__main__":
    main()
