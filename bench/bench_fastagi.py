"""FastAGI dialogues per second and service-side time, and process-AGI start-up overhead.

Usage: python bench/bench_fastagi.py [--pg URL] [--dialogues N] [--concurrency C]

FastAGI: `callcenter serve` in a child process; this process plays Asterisk with instant
replies (the simulator's switch side, speed 0) running full valid-number collect_certificate
dialogues. Service-side time is what the server itself spent per dialogue (between a reply
arriving and its next command leaving, lookups and event writes included), read from its
/metrics summary. Process AGI: the pyst2 script as a real subprocess against the test peer
(tests/agi_peer.py) and a live service, side by side with a bare `python3 -c pass`.
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

from _common import ROOT, Served, cli

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


async def dialogues(port: int, n: int, conc: int) -> float:
    sem = asyncio.Semaphore(conc)

    async def one(i: int) -> None:
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


def bench_fastagi(db_url: str, work: Path, n: int, conc: int, label: str) -> None:
    cli(db_url, "db", "upgrade")
    csv = work / "one.csv"
    csv.write_text(
        f"number,holder_name,valid_from\n{NUMBER},Иванов,{time.strftime('%Y-01-01')}\n",
        encoding="utf-8",
    )
    cli(db_url, "certificates", "import", str(csv))
    # a moment inside working hours, so every dialogue goes the full way to QUEUE
    served = Served(db_url, work, **OPEN)
    try:
        port = served.agi_port
        asyncio.run(dialogues(port, 200, conc))  # warm-up
        secs = asyncio.run(dialogues(port, n, conc))
        q = quantiles(served.url, "callcenter_fastagi_collect_certificate_service_seconds")
    finally:
        served.stop()
    print(
        f"{label:<11} FastAGI: {n / secs:7.0f} dialogues/s at concurrency {conc}; "
        f"service-side per dialogue p50 {q.get('0.5', 0):.2f} ms, p90 {q.get('0.9', 0):.2f} ms,"
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


def bench_process_agi(db_url: str, work: Path, runs: int) -> None:
    from tests.agi_peer import Caller, Dtmf, PeerOptions, run_process_agi

    token = cli(db_url, "tokens", "create", "bench", "--role", "pbx").strip().splitlines()[-1]
    served = Served(db_url, work, **OPEN)
    env = {"CALLCENTER_URL": served.url, "CALLCENTER_TOKEN": token, "PYTHONPATH": str(ROOT)}
    script = ROOT / "agi_scripts" / "collect_certificate.py"
    opts = PeerOptions(sound_patterns=("callcenter/*",))
    try:
        script_ms, bare_ms = [], []
        for i in range(runs):
            t0 = time.perf_counter()
            res = run_process_agi(
                [script],
                Caller(uniqueid=f"1795480000.{i}", actions=[Dtmf(NUMBER + "#")]),
                options=opts,
                extra_env=env,
            )
            script_ms.append((time.perf_counter() - t0) * 1000)
            if res.variables.get("CC_ROUTE") != "QUEUE":
                raise RuntimeError(f"unexpected {res.variables} {res.stderr}")
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        served.stop()
    s, b = statistics.median(script_ms), statistics.median(bare_ms)
    print(
        f"process AGI: full valid-number dialogue median {s:.1f} ms; bare `python -c pass` "
        f"median {b:.1f} ms; ratio {s / b:.2f}x ({runs} runs each)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg")
    ap.add_argument("--dialogues", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--agi-runs", type=int, default=30)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cc-bench-agi-"))
    OPEN.update(
        CALLCENTER_CALENDAR_OVERRIDES_FILE=str(always_open(work)),
        CALLCENTER_POLICY_DAY_START="00:00",
        CALLCENTER_POLICY_DAY_END="23:59",
    )
    sqlite = f"sqlite+aiosqlite:///{work}/bench.sqlite3"
    bench_fastagi(sqlite, work, args.dialogues, args.concurrency, "SQLite")
    if args.pg:
        from tests.conftest import reset_postgres

        asyncio.run(reset_postgres(args.pg))
        bench_fastagi(args.pg, work, args.dialogues, args.concurrency, "PostgreSQL")
    bench_process_agi(sqlite, work, args.agi_runs)


if __name__ == "__main__":
    main()
