"""The supervisor's reports at scale on PostgreSQL: a month's report, filtered history pages
and the CSV export of every call, with each query's plan (EXPLAIN ANALYZE).

    .venv/bin/python bench/bench_reports.py seed --calls 1000000 --tickets 200000
    .venv/bin/python bench/bench_reports.py measure
    .venv/bin/python bench/bench_reports.py export      # a fresh process: its peak memory

``--url`` (default ``postgresql+asyncpg://postgres@127.0.0.1:5432/bench``): the database is
emptied by ``seed``. Calls spread over 2025 (working hours mostly), 40 agents, 50,000
certificates: 70 % answered (windows: 80 % met, 10 % escalated into a ticket, 8 % overrun,
2 % extended), 8 % abandoned in the queue, 5 % in the IVR, 10 % refused, 7 % on the closed
line; the rest of the tickets come from the portal. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import FIGURES, json_option  # noqa: E402
from sqlalchemy import event, text  # noqa: E402

from callcenter import bootstrap  # noqa: E402
from callcenter.adapters import db  # noqa: E402
from callcenter.adapters.clock import FixedClock  # noqa: E402
from callcenter.calendar import MOSCOW  # noqa: E402
from callcenter.config import Settings  # noqa: E402
from callcenter.services.call_filters import OUTCOMES, parse_call_filters  # noqa: E402
from callcenter.services.reports import Period  # noqa: E402

URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench"
NOW = datetime(2026, 1, 20, 12, 0, tzinfo=MOSCOW)
YEAR0 = datetime(2025, 1, 1, tzinfo=MOSCOW)
STATUSES_REFUSED = ("UNKNOWN", "EXPIRED", "NOT_COVERED", "LOCKED", "NO_INPUT")


def _calls(n: int, rnd: random.Random):
    """Rows of calls, windows and call tickets, generated in one pass."""
    calls, windows, tickets = [], [], []
    # in time order, as a live service writes them (a month's calls lie together on disk)
    starts = sorted(
        YEAR0 + timedelta(days=rnd.randrange(365), hours=8 + rnd.random() * 11) for _ in range(n)
    )
    for i, start in enumerate(starts):
        started = start.astimezone(UTC)
        call_id = f"{1735700000 + i}.{i % 1000}"
        cert = f"{1000000 + rnd.randrange(50_000)}"
        agent = queued = connected = ended = abandoned = None
        status = "VALID"
        r = rnd.random()
        if r < 0.70:
            queued = started + timedelta(seconds=20 + rnd.random() * 40)
            connected = queued + timedelta(seconds=rnd.expovariate(1 / 15))
            ended = connected + timedelta(seconds=rnd.expovariate(1 / 300) + 30)
            agent = f"PJSIP/{101 + rnd.randrange(40)}"
        elif r < 0.78:
            queued = started + timedelta(seconds=30)
            ended = queued + timedelta(seconds=rnd.random() * 120)
            abandoned = "queue"
        elif r < 0.83:
            ended = started + timedelta(seconds=15)
            abandoned = "ivr"
        elif r < 0.93:
            status = STATUSES_REFUSED[i % len(STATUSES_REFUSED)]
            ended = started + timedelta(seconds=40)
        else:
            status = "CLOSED"
            ended = started + timedelta(seconds=25)
        calls.append(
            (
                call_id,
                f"+7900{i % 10_000_000:07d}",
                started,
                cert,
                status,
                queued,
                agent,
                connected,
                ended,
                abandoned,
                "ООО «Ромашка»" if i % 3 else "АО «Вектор»",
                ended or started,
            )
        )
        if connected is not None:
            w = rnd.random()
            wstatus = "met" if w < 0.80 else "escalated" if w < 0.90 else "overrun"
            windows.append(
                (
                    call_id,
                    connected,
                    connected + timedelta(minutes=10),
                    wstatus,
                    connected + timedelta(minutes=10),
                    600,
                )
            )
            if wstatus == "escalated":
                received = connected + timedelta(minutes=10)
                tickets.append((call_id, received))
    return calls, windows, tickets


async def seed(url: str, n_calls: int, n_tickets: int) -> None:
    import asyncpg

    engine = db.create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await db.upgrade(engine)
    await engine.dispose()
    rnd = random.Random(11)
    t0 = time.perf_counter()
    calls, windows, call_tickets = _calls(n_calls, rnd)
    portal = max(0, n_tickets - len(call_tickets))
    tickets = []
    for call_id, received in call_tickets + [(None, None)] * portal:
        if received is None:
            received = (YEAR0 + timedelta(days=rnd.random() * 365)).astimezone(UTC)
        due = received + timedelta(hours=36)  # near enough for load: the figures are not checked
        answered = received + timedelta(hours=rnd.random() * 48) if rnd.random() < 0.9 else None
        tickets.append(
            (
                "call" if call_id else "portal",
                call_id,
                "1000001",
                "Описание",
                "install",
                received,
                due,
                "answered" if answered else "open",
                answered,
                received,
            )
        )
    tickets.sort(key=lambda row: row[5])  # by receipt, as they are made
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "calls",
            records=calls,
            columns=[
                "call_id",
                "caller_number",
                "started_at",
                "certificate_number",
                "certificate_status",
                "queued_at",
                "agent",
                "connected_at",
                "ended_at",
                "abandoned",
                "organisation",
                "updated_at",
            ],
        )
        await conn.copy_records_to_table(
            "oral_windows",
            records=windows,
            columns=[
                "call_id",
                "opened_at",
                "deadline_at",
                "status",
                "closed_at",
                "length_seconds",
            ],
        )
        extended = [
            (w[0], w[1] + timedelta(minutes=5), 300, "сложный случай", "bench")
            for w in windows[::50]
        ]
        await conn.copy_records_to_table(
            "window_extensions",
            records=extended,
            columns=["call_id", "at", "seconds", "reason", "by"],
        )
        await conn.copy_records_to_table(
            "tickets",
            records=tickets,
            columns=[
                "source",
                "call_id",
                "certificate_number",
                "description",
                "category",
                "received_at",
                "due_at",
                "status",
                "answered_at",
                "created_at",
            ],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    took = time.perf_counter() - t0
    print(
        f"seeded {len(calls):,} calls, {len(windows):,} windows, {len(tickets):,} tickets "
        f"in {took:.0f} s"
    )
    FIGURES.add(f"seed {len(calls):,} calls and {len(tickets):,} tickets", took, "s")


class Plans:
    """Every statement the engine runs, kept so that it can be explained afterwards."""

    def __init__(self, engine) -> None:
        self.seen: list[tuple[str, object]] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._keep)

    def _keep(self, conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            self.seen.append((statement, parameters))

    async def explain(self, engine, title: str) -> None:
        taken, self.seen = self.seen, []
        async with engine.connect() as conn:
            for statement, parameters in taken:
                rows = await conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                )
                print(f"\n--- plan: {title} ---")
                print(statement.strip()[:300].replace("\n", " "), "...")
                for (line,) in rows.all():
                    print("   ", line)


def container_for(url: str):
    return bootstrap.build(Settings().replace(database={"url": url}), clock=FixedClock(NOW))


async def timed(fn, runs: int = 5) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _backend_cpu(pids: list[int]) -> float | None:
    """Seconds of CPU the database's backends have used (utime + stime from /proc), or None
    when the server is not on this host."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def cpu_per_run(engine, fn, runs: int = 10) -> str:
    """CPU per call of ``fn``: this process and the database's backends (steadier than the
    wall time on a shared box: other jobs' load stretches the one, not the other)."""
    await fn()  # every connection the call needs is open now
    async with engine.connect() as conn:
        pids = [
            pid
            for (pid,) in (
                await conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid()"
                    )
                )
            ).all()
        ]
    db0, py0 = _backend_cpu(pids), time.process_time()
    for _ in range(runs):
        await fn()
    py = (time.process_time() - py0) / runs * 1000
    db1 = _backend_cpu(pids)
    if db0 is None or db1 is None:
        return f"CPU per run: this process {py:.0f} ms (the database is on another host)"
    db = (db1 - db0) / runs * 1000
    return f"CPU per run {py + db:.0f} ms: database {db:.0f} ms, this process {py:.0f} ms"


def show(name: str, ms: list[float], goal: str) -> None:
    print(
        f"{name:<46} median {statistics.median(ms):7.1f} ms  min {min(ms):7.1f}  "
        f"max {max(ms):7.1f}  (goal {goal})"
    )
    FIGURES.add(name + ", median", statistics.median(ms), "ms", goal=goal.removesuffix(" ms"))


async def measure(url: str, plans: bool) -> None:
    c = container_for(url)
    try:
        async with c.engine.connect() as conn:
            n = (await conn.execute(text("SELECT count(*) FROM calls"))).scalar_one()
            k = (await conn.execute(text("SELECT count(*) FROM tickets"))).scalar_one()
        print(f"database: {n:,} calls, {k:,} tickets")
        month = Period(date(2025, 6, 1), date(2025, 6, 30), "day", 20)

        async def page(period):
            return await c.reports.charts(await c.reports.report(period, heatmap=True))

        by_agent = Period(date(2025, 6, 1), date(2025, 6, 30), "agent", 20)
        cases = [
            ("month report by day (June 2025)", lambda: c.reports.report(month), "<= 500 ms"),
            ("month report by agent", lambda: c.reports.report(by_agent), "<= 500 ms"),
            ("month report by day + its charts (the page)", lambda: page(month), "<= 500 ms"),
        ]
        filters = {
            "history: first page, no filter": {},
            "history: one agent, a month": {
                "agent": "PJSIP/107",
                "from": "2025-06-01",
                "to": "2025-06-30",
            },
            "history: one certificate": {"certificate": "1000777"},
            "history: refused, a month, sorted by agent": {
                "route": "refused",
                "from": "2025-06-01",
                "to": "2025-06-30",
                "sort": "agent",
            },
            "history: overrun windows, a week": {
                "window": "overrun",
                "from": "2025-06-02",
                "to": "2025-06-08",
            },
            "history: organisation contains, a month": {
                "organisation": "вектор",
                "from": "2025-06-01",
                "to": "2025-06-30",
            },
            "history: organisation contains, no match, a month": {
                "organisation": "не найдётся",
                "from": "2025-06-01",
                "to": "2025-06-30",
            },
            # a substring of the number: the trigram index of migration 0010 (PostgreSQL)
            'history: caller number contains "1234", all time': {"caller": "1234"},
            'history: caller number contains "99999", all time': {"caller": "99999"},
            "history: caller number contains, a month": {
                "caller": "1234",
                "from": "2025-06-01",
                "to": "2025-06-30",
            },
            "history: overrun windows, a month, sorted by agent": {
                "window": "overrun",
                "from": "2025-06-01",
                "to": "2025-06-30",
                "sort": "agent",
            },
            "history: abandoned in the queue, all time": {"route": "abandoned_queue"},
            "history: an outcome, a month": {
                "outcome": OUTCOMES[0],
                "from": "2025-06-01",
                "to": "2025-06-30",
            },
        }
        for name, query in filters.items():
            f = parse_call_filters(query)
            cases.append((name, lambda f=f: c.reports.calls_page(f, 50, 0), "<= 200 ms"))
            cases.append(
                (
                    name + " (count to 10,000)",
                    lambda f=f: c.reports.calls_page(f, 50, 0, count_limit=10_001),
                    "<= 200 ms",
                )
            )
        p = Plans(c.engine) if plans else None
        for name, fn, goal in cases:
            await fn()  # warm
            show(name, await timed(fn), goal)
            if name.startswith("month report"):
                print(
                    " " * 47 + await cpu_per_run(c.engine, fn), f"(load {os.getloadavg()[0]:.1f})"
                )
            if p is not None:
                p.seen.clear()
                await fn()
                await p.explain(c.engine, name)
    finally:
        await c.close()


def _peak_kib() -> int:
    """This process's peak resident memory (VmHWM, KiB). Not ``ru_maxrss``: Linux keeps that
    across fork and exec, so a child started by the 1M-call seeding process would report the
    parent's peak as its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def export(url: str, limit_rows: int | None) -> None:
    """The CSV export of every call through the page's own writer, into a counting sink."""
    from callcenter.web.pages.reports import _CsvStream

    class Sink:
        def __init__(self) -> None:
            self.bytes = 0

        async def write(self, data: bytes) -> None:
            self.bytes += len(data)

    c = container_for(url)
    try:
        f = parse_call_filters({})
        sink = Sink()
        out = _CsvStream(sink, ";")
        before = _peak_kib()
        t0 = time.perf_counter()
        rows = 0
        async for r in c.reports.stream_calls(f):
            await out.row(list(r.values()))
            rows += 1
            if rows == 10_000:
                at_10k = _peak_kib()
            if limit_rows and rows >= limit_rows:
                break
        await out.flush()
        dt = time.perf_counter() - t0
        peak = _peak_kib()
        print(
            f"export: {rows:,} rows, {sink.bytes / 1e6:.0f} MB of CSV in {dt:.1f} s = "
            f"{rows / dt:,.0f} rows/s; peak RSS {peak / 1024:.0f} MiB (before {before / 1024:.0f}"
            f" MiB, after 10,000 rows {at_10k / 1024:.0f} MiB)"
        )
        FIGURES.add(f"CSV export of {rows:,} calls", rows / dt, "rows/s")
        FIGURES.add(
            "CSV export: peak memory",
            peak / 1024,
            "MiB",
            baseline=at_10k / 1024,
            baseline_label="after its first 10,000 rows",
            goal="ratio <= 1.5",
        )
    finally:
        await c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "phase",
        choices=("seed", "measure", "export", "all"),
        nargs="?",
        default="all",
        help="all (the default): seed, measure, export, the board",
    )
    ap.add_argument("--url", "--pg", dest="url", default=URL)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--tickets", type=int, default=200_000)
    ap.add_argument("--no-plans", action="store_true")
    ap.add_argument("--rows", type=int, default=0, help="export: stop after this many rows")
    json_option(ap)
    args = ap.parse_args()
    if args.phase in ("seed", "all"):
        asyncio.run(seed(args.url, args.calls, args.tickets))
    if args.phase in ("measure", "all"):
        asyncio.run(measure(args.url, not args.no_plans))
    if args.phase == "export":
        asyncio.run(export(args.url, args.rows or None))
    if args.phase == "all":
        # the export and the board each in a fresh process: the export's peak memory is its own
        FIGURES.rows += _child(["bench/bench_reports.py", "export", "--url", args.url])
        FIGURES.rows += _child(["bench/bench_board.py", args.url])
    FIGURES.write(args.json, "bench_reports", calls=args.calls, tickets=args.tickets)
    return 0


def _child(cmd: list[str]) -> list[dict]:
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        subprocess.run([sys.executable, *cmd, "--json", str(out)], cwd=ROOT, check=True)
        return json.loads(out.read_text(encoding="utf-8"))["figures"]


if __name__ == "__main__":
    raise SystemExit(main())
