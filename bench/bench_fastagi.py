"""FastAGI dialogues per second and service-side time, and process-AGI start-up overhead.

Usage: python bench/bench_fastagi.py [--pg URL] [--dialogues N] [--concurrency C] [--rate R]
                                     [--agi-runs N] [--only-process]

FastAGI: `callcenter serve` in a child process; this process plays Asterisk with instant
replies (the simulator's switch side, speed 0) running full valid-number collect_certificate
dialogues. Service-side time is what the server itself spent per dialogue (between a reply
arriving and its next command leaving, lookups and event writes included), read from its
/metrics summary. Process AGI: the pyst2 script as a real subprocess against the test peer
(tests/agi_peer.py) and a live service, side by side with a bare `python3 -c pass`: run from
this checkout as it is, and from a copy with its bytecode compiled, as an installed package
has it (with PYTHONDONTWRITEBYTECODE=1 and no __pycache__, a checkout compiles every module
from source at every start).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import FIGURES, ROOT, Served, cli, json_option, pct

sys.path.insert(0, str(ROOT))

from callcenter.domain.certificates import luhn_complete
from callcenter.telephony import simulator

NUMBER = luhn_complete("100000000001")
OPEN: dict[str, str] = {}  # settings that keep the line open whenever the bench runs


def quantiles(url: str, name: str) -> dict[str, float]:
    text = urllib.request.urlopen(url + "/metrics").read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{quantile="):
            q = line.split('"')[1]
            out[q] = float(line.split()[-1]) * 1000
    return out


async def dialogues(port: int, n: int, conc: int, rate: float | None = None) -> float:
    """``n`` dialogues, at most ``conc`` at once: as fast as they go, or started at ``rate``
    a second (an open load: calls arrive whether or not earlier ones are done)."""
    sem = asyncio.Semaphore(conc)
    start = time.perf_counter()

    async def one(i: int) -> None:
        if rate:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        async with sem:
            call = simulator.plan_call("valid", simulator.random.Random(i), [NUMBER], {})
            s = simulator.SwitchSession(call, 0.0, simulator.random.Random(i))
            await s.run(
                "127.0.0.1",
                port,
                "collect_certificate",
                simulator._env(call, f"PJSIP/p-{i:08x}", "support-line"),
                {"CHANNEL(linkedid)": call.uniqueid},
            )
            if call.variables.get("CC_ROUTE") != "QUEUE":
                raise RuntimeError(f"unexpected route {call.variables}")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - t0


async def bare_round_trips(db_url: str, n: int, rate: float) -> list[float]:
    """The floor of a PostgreSQL dialogue: ``SELECT 1`` over a bare asyncpg connection, one
    at a time at ``rate`` a second, timed in this process (ms)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(db_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        for _ in range(50):
            await conn.fetchval("SELECT 1")
        out = []
        start = time.perf_counter()
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            t0 = time.perf_counter()
            await conn.fetchval("SELECT 1")
            out.append((time.perf_counter() - t0) * 1000)
        return out
    finally:
        await conn.close()


def prepare(db_url: str, work: Path) -> None:
    """A migrated database holding the one valid certificate the dialogues enter."""
    cli(db_url, "db", "upgrade")
    csv = work / "one.csv"
    csv.write_text(
        f"number,holder_name,valid_from\n{NUMBER},Иванов,{time.strftime('%Y-01-01')}\n",
        encoding="utf-8",
    )
    cli(db_url, "certificates", "import", str(csv))


def bench_fastagi(db_url: str, work: Path, n: int, conc: int, rate: float, label: str) -> None:
    """Two runs, each against a fresh service: as fast as it goes (throughput and CPU per
    dialogue), then calls arriving at ``rate`` a second (the latency a caller meets)."""
    prepare(db_url, work)
    # a moment inside working hours, so every dialogue goes the full way to QUEUE
    metric = "callcenter_fastagi_collect_certificate_service_seconds"
    served = Served(db_url, work, **OPEN)
    try:
        asyncio.run(dialogues(served.agi_port, 200, conc))  # warm-up
        cpu0 = served.cpu_seconds()
        secs = asyncio.run(dialogues(served.agi_port, n, conc))
        cpu = served.cpu_seconds() - cpu0
        q = quantiles(served.url, metric)
    finally:
        served.stop()
    print(
        f"{label:<11} FastAGI, as fast as it goes, {conc} at once: {n / secs:5.0f} dialogues/s;"
        f" service CPU per dialogue {cpu / n * 1000:.2f} ms ({cpu / secs * 100:.0f} % of a core);"
        f" service-side wall time p50 {q.get('0.5', 0):.2f} ms, p99 {q.get('0.99', 0):.2f} ms"
        " (queueing: the service is the bottleneck by design of the run)"
    )
    secs_flat, cpu_flat = secs, cpu
    served = Served(db_url, work, **OPEN)
    try:
        asyncio.run(dialogues(served.agi_port, 50, conc))  # a short warm-up (its samples count)
        cpu0 = served.cpu_seconds()
        secs = asyncio.run(dialogues(served.agi_port, n, conc, rate))
        cpu = served.cpu_seconds() - cpu0
        q = quantiles(served.url, metric)
    finally:
        served.stop()
    FIGURES.add(f"FastAGI flat out, {label}", n / secs_flat, "dialogues/s", goal=">= 300")
    FIGURES.add(f"FastAGI service CPU per dialogue, {label}", cpu_flat / n * 1000, "ms",
                goal="<= 3")  # fmt: skip
    bare: dict[str, float] = {}
    if label == "PostgreSQL":  # the floor, measured in the same run against the same server
        trips = asyncio.run(bare_round_trips(db_url, min(n, 3000), rate))
        bare = {"0.5": statistics.median(trips), "0.99": pct(trips, 99)}
        print(
            f"{label:<11} bare asyncpg round trip (SELECT 1) at {rate:.0f}/s: "
            f"p50 {bare['0.5']:.2f} ms, p99 {bare['0.99']:.2f} ms"
        )
    floor = "one bare asyncpg round trip, same run" if bare else ""
    FIGURES.add(f"FastAGI at {rate:.0f}/s, {label}: wall p50", q.get("0.5", 0), "ms",
                baseline=bare.get("0.5"), baseline_label=floor, goal="<= 3")  # fmt: skip
    FIGURES.add(f"FastAGI at {rate:.0f}/s, {label}: wall p99", q.get("0.99", 0), "ms",
                baseline=bare.get("0.99"), baseline_label=floor, goal="<= 30")  # fmt: skip
    FIGURES.add(f"FastAGI at {rate:.0f}/s, {label}: CPU per dialogue", cpu / n * 1000, "ms")
    print(
        f"{label:<11} FastAGI, calls arriving at {rate:.0f}/s, up to {conc} at once: "
        f"{n / secs:5.0f} dialogues/s; service CPU per dialogue {cpu / n * 1000:.2f} ms"
        f" ({cpu / secs * 100:.0f} % of a core); service-side wall time per dialogue"
        f" p50 {q.get('0.5', 0):.2f} ms, p90 {q.get('0.9', 0):.2f} ms,"
        f" p99 {q.get('0.99', 0):.2f} ms"
    )


def always_open(work: Path) -> Path:
    """Every day of this and next year a working day, and the day 00:00-23:59."""
    import datetime as dt

    year = dt.date.today().year
    days = [dt.date(year, 1, 1) + dt.timedelta(d) for d in range(730)]
    p = work / "always-open.toml"
    p.write_text("working_days = [" + ", ".join(f'"{d}"' for d in days) + "]\n")
    return p


def installed_copy(work: Path, source: Path = ROOT, name: str = "installed") -> Path:
    """The package and scripts copied with their bytecode compiled, as ``pip install`` leaves
    them (a checkout run with PYTHONDONTWRITEBYTECODE=1 recompiles our modules every start)."""
    import compileall
    import shutil

    dest = work / name
    for name in ("callcenter", "agi_scripts"):
        shutil.copytree(source / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    if not compileall.compile_dir(dest / "callcenter", quiet=1):
        raise RuntimeError("compileall failed")
    return dest


def bytecode_note() -> str:
    cached = any((ROOT / "callcenter" / "telephony" / "__pycache__").glob("ivr.*.pyc"))
    if cached:
        return "bytecode cached in the checkout"
    off = " (PYTHONDONTWRITEBYTECODE is set)" if sys.dont_write_bytecode else ""
    return f"no bytecode cache: sources compiled at every start{off}"


def bench_process_agi(db_url: str, work: Path, runs: int, baseline: Path | None = None) -> None:
    from tests.agi_peer import Caller, Dtmf, PeerOptions, run_process_agi

    token = cli(db_url, "tokens", "create", "bench", "--role", "pbx").strip().splitlines()[-1]
    served = Served(db_url, work, **OPEN)
    installed = installed_copy(work)
    trees = {"checkout": ROOT, "installed": installed}
    if baseline is not None:  # another revision's tree, measured in the same run
        trees["baseline"] = installed_copy(work, baseline, "baseline")
    opts = PeerOptions(sound_patterns=("callcenter/*",))
    times: dict[str, list[float]] = {"bare": [], **{name: [] for name in trees}}
    try:
        for i in range(runs):  # interleaved, so a busy moment hits every variant alike
            for name, root in trees.items():
                env = {
                    "CALLCENTER_URL": served.url,
                    "CALLCENTER_TOKEN": token,
                    "PYTHONPATH": str(root),
                }
                t0 = time.perf_counter()
                res = run_process_agi(
                    [root / "agi_scripts" / "collect_certificate.py"],
                    Caller(uniqueid=f"1795480000.{name}{i}", actions=[Dtmf(NUMBER + "#")]),
                    options=opts,
                    extra_env=env,
                )
                times[name].append((time.perf_counter() - t0) * 1000)
                if res.variables.get("CC_ROUTE") != "QUEUE":
                    raise RuntimeError(f"unexpected {res.variables} {res.stderr}")
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            times["bare"].append((time.perf_counter() - t0) * 1000)
    finally:
        served.stop()
    b = statistics.median(times["bare"])
    labels = {
        "checkout": f"this checkout, {bytecode_note()}",
        "installed": "installed copy, bytecode compiled (as pip install leaves it)",
        "baseline": f"installed copy of {baseline}, bytecode compiled",
    }
    print(
        f"process AGI: full valid-number dialogue, median of {runs} runs each; "
        f"bare `python -c pass` median {b:.1f} ms"
    )
    for name in trees:
        label = labels[name]
        s = statistics.median(times[name])
        print(f"  {s:6.1f} ms  ratio {s / b:.2f}x  {label}")
    FIGURES.add("process AGI dialogue, installed copy", statistics.median(times["installed"]),
                "ms", baseline=b, baseline_label="bare `python -c pass`, same run",
                goal="ratio <= 2")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg")
    ap.add_argument("--dialogues", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--rate", type=float, default=300.0, help="calls a second, second run")
    ap.add_argument("--agi-runs", type=int, default=30)
    ap.add_argument(
        "--only-process", action="store_true", help="only the process-AGI part (no FastAGI)"
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        help="a tree of another revision (callcenter/, agi_scripts/) whose process AGI is "
        "measured alongside, in the same run (e.g. from `git archive REV | tar -x -C DIR`)",
    )
    json_option(ap)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cc-bench-agi-"))
    OPEN.update(
        CALLCENTER_CALENDAR_OVERRIDES_FILE=str(always_open(work)),
        CALLCENTER_POLICY_DAY_START="00:00",
        CALLCENTER_POLICY_DAY_END="23:59",
    )
    sqlite = f"sqlite+aiosqlite:///{work}/bench.sqlite3"
    if args.only_process:
        prepare(sqlite, work)
        bench_process_agi(sqlite, work, args.agi_runs, args.baseline)
        FIGURES.write(args.json, "bench_fastagi", agi_runs=args.agi_runs)
        return
    bench_fastagi(sqlite, work, args.dialogues, args.concurrency, args.rate, "SQLite")
    if args.pg:
        from tests.conftest import reset_postgres

        asyncio.run(reset_postgres(args.pg))
        bench_fastagi(args.pg, work, args.dialogues, args.concurrency, args.rate, "PostgreSQL")
    bench_process_agi(sqlite, work, args.agi_runs, args.baseline)
    FIGURES.write(
        args.json, "bench_fastagi", dialogues=args.dialogues, rate=args.rate, pg=bool(args.pg)
    )


if __name__ == "__main__":
    main()
