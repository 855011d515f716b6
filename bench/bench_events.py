"""Event ingest over HTTP: events/s and p99, beside a bare aiohttp insert in the same run.

Usage: python bench/bench_events.py [--pg URL] [--events N] [--concurrency C]
Events are the IVR's own mix (call_started, certificate_checked, queued per call), posted
with keep-alive by this process to `callcenter serve` in a child process, then the same
bodies to bench/bare_ingest.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import (
    FIGURES,
    ROOT,
    LeanClient,
    Served,
    cli,
    env_for,
    free_port,
    json_option,
    load,
    pct,
    summary,
)


def bodies(n: int, tag: str) -> list[dict]:
    out = []
    for i in range(n // 3 + 1):
        cid = f"{tag}.{i}"
        out += [
            {"event": "call_started", "call_id": cid, "caller_number": "79001234567"},
            {
                "event": "certificate_checked",
                "call_id": cid,
                "certificate": "1234567",
                "status": "VALID",
                "attempt": 1,
            },
            {"event": "queued", "call_id": cid, "queue": "support"},
        ]
    return out[:n]


async def post_all(urls: list[str], token: str, events: list[dict], conc: int):
    """Post every event once, ``conc`` at a time, each worker on its own keep-alive socket
    (sockets spread evenly over the instances in ``urls``)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    clients = [LeanClient(u, headers) for u in urls]
    raws = [clients[0].encode("POST", "/api/v1/events", json.dumps(e).encode()) for e in events]
    free = asyncio.Queue()
    for i in range(conc):
        free.put_nowait(await clients[i % len(clients)].connect())

    async def one(i: int) -> None:
        conn = await free.get()
        try:
            status, body = await LeanClient.exchange(conn, raws[i])
        finally:
            free.put_nowait(conn)
        if status not in (200, 201):
            raise RuntimeError(f"HTTP {status}: {body[:200]!r}")

    try:
        return await load(one, len(events), conc)
    finally:
        for c in clients:
            await c.close()


def bare(db_url: str, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "bare_ingest.py"), db_url, str(port)],
        env=env_for(db_url),
        cwd=work,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/", timeout=1)
        except urllib.error.HTTPError:
            return proc, url  # 404/405: it is up
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("bare server did not start")


def run(
    db_url: str, work: Path, n: int, conc: int, label: str, reset=None, instances: int = 1
) -> None:
    if reset:
        reset()
    cli(db_url, "db", "upgrade")
    token = cli(db_url, "tokens", "create", "bench", "--role", "pbx").strip().splitlines()[-1]
    label = f"{label} x{instances}" if instances > 1 else label
    served = [Served(db_url, work) for _ in range(instances)]
    urls = [s.url for s in served]
    try:
        asyncio.run(post_all(urls, token, bodies(300, "warm"), conc))
        cpu = sum(s.cpu_seconds() for s in served)
        secs, lat = asyncio.run(post_all(urls, token, bodies(n, "svc"), conc))
        cpu = sum(s.cpu_seconds() for s in served) - cpu
    finally:
        for s in served:
            s.stop()
    print(summary(f"{label} callcenter /api/v1/events", secs, lat))
    # the service's own CPU per event: less sensitive than the rate to the box's other load
    print(f"{label} service CPU per event: {cpu / n * 1e6:.0f} µs")
    bares = [bare(db_url, work) for _ in range(instances)]
    urls = [url for _, url in bares]
    try:
        asyncio.run(post_all(urls, "", bodies(300, "warmbare"), conc))
        bsecs, blat = asyncio.run(post_all(urls, "", bodies(n, "bare"), conc))
    finally:
        for proc, _ in bares:
            proc.terminate()
            proc.wait(10)
    print(summary(f"{label} bare aiohttp insert", bsecs, blat))
    print(f"{label}: callcenter at {(n / secs) / (n / bsecs) * 100:.0f} % of the bare figure\n")
    bare_label = "bare aiohttp insert, same run"
    FIGURES.add(f"events, {label}, {conc} clients", n / secs, "/s", baseline=n / bsecs,
                baseline_label=bare_label, goal=">= 2000")  # fmt: skip
    FIGURES.add(f"events against the bare insert, {label}", n / secs, "/s", baseline=n / bsecs,
                baseline_label=bare_label, goal="ratio >= 1.5")  # fmt: skip
    FIGURES.add(f"event p99, {label}", pct(lat, 99) * 1000, "ms", baseline=pct(blat, 99) * 1000,
                baseline_label=bare_label)  # fmt: skip
    FIGURES.add(f"service CPU per event, {label}", cpu / n * 1e6, "µs")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg")
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument(
        "--pg-instances",
        type=int,
        default=1,
        help="serve processes on the one PostgreSQL (and as many bare ones), load spread over them",
    )
    json_option(ap)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cc-bench-ev-"))
    run(f"sqlite+aiosqlite:///{work}/ev.sqlite3", work, args.events, args.concurrency, "SQLite")
    if args.pg:
        sys.path.insert(0, str(ROOT))
        from tests.conftest import reset_postgres

        run(
            args.pg,
            work,
            args.events,
            args.concurrency,
            "PostgreSQL",
            reset=lambda: asyncio.run(reset_postgres(args.pg)),
            instances=args.pg_instances,
        )
    FIGURES.write(args.json, "bench_events", events=args.events, concurrency=args.concurrency)


if __name__ == "__main__":
    main()
