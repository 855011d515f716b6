"""Certificate lookup over HTTP with 100,000 certificates, and the import that loads them.

Usage: python bench/bench_lookup.py [--pg URL] [--requests N] [--concurrency C]
Without --pg only SQLite is measured. The load generator runs in this process (one core),
the service in a child process (the other core).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from _common import FIGURES, ROOT, Served, cli, env_for, json_option, load, pct, summary

HEADER = (
    "number,holder_type,holder_name,organisation,contacts,product,version,"
    "valid_from,valid_to,services\n"
)
ROWS = 100_000  # --rows


def set_rows(n: int) -> None:
    global ROWS
    ROWS = n


def write_csv(path: Path) -> list[str]:
    numbers = [str(10_000_000 + i) for i in range(ROWS)]
    with path.open("w", encoding="utf-8") as fh:
        fh.write(HEADER)
        for i, n in enumerate(numbers):
            fh.write(
                f'{n},person,Абонентов Абонент {i},,"Абонентов А. <+7900{i:07d}>",'
                f"Продукт,5.0.{i},2026-01-01,,\n"
            )
    return numbers


def timed_import(db_url: str, csv: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of `callcenter certificates import` in a child process."""
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "certificates", "import", str(csv)],
        env=env_for(db_url),
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return time.perf_counter() - t0, max(peak, before) / 1024


async def hammer(url: str, token: str, numbers: list[str], total: int, conc: int):
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(7)
    picks = [rng.choice(numbers) for _ in range(total)]
    conn = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as s:

        async def one(i: int) -> None:
            async with s.get(f"{url}/api/v1/certificates/{picks[i]}") as r:
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}")
                await r.read()

        await load(one, 500, conc)  # warm-up
        return await load(one, total, conc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", help="PostgreSQL URL (its public schema is wiped)")
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rows", type=int, default=ROWS, help="certificates in the registry")
    json_option(ap)
    args = ap.parse_args()
    set_rows(args.rows)
    work = Path(tempfile.mkdtemp(prefix="cc-bench-"))
    csv = work / "certs.csv"
    numbers = write_csv(csv)
    targets = [("SQLite", f"sqlite+aiosqlite:///{work}/bench.sqlite3")]
    if args.pg:
        sys.path.insert(0, str(ROOT))
        from tests.conftest import reset_postgres

        asyncio.run(reset_postgres(args.pg))
        targets.append(("PostgreSQL", args.pg))
    print(
        f"{ROWS} certificates; {args.requests} lookups of random numbers, "
        f"concurrency {args.concurrency}\n"
    )
    for name, url in targets:
        cli(url, "db", "upgrade")
        seconds, peak = timed_import(url, csv)
        print(f"{name}: import of {ROWS} rows: {seconds:.1f} s, peak RSS {peak:.0f} MiB")
        FIGURES.add(f"import of {ROWS:,} certificates, {name}", seconds, "s")
        token = cli(url, "tokens", "create", "bench", "--role", "pbx").strip().splitlines()[-1]
        for cache in ("0", "2"):
            served = Served(url, work, CALLCENTER_CERTIFICATES_LOOKUP_CACHE_SECONDS=cache)
            try:
                secs, lat = asyncio.run(
                    hammer(served.url, token, numbers, args.requests, args.concurrency)
                )
            finally:
                served.stop()
            print(summary(f"{name} lookup, cache {cache} s", secs, lat))
            goal = ">= 2000" if cache == "0" else None
            FIGURES.add(f"lookups, {name}, cache {cache} s, {args.concurrency} clients",
                        len(lat) / secs, "/s", goal=goal)  # fmt: skip
            FIGURES.add(f"lookup p99, {name}, cache {cache} s", pct(lat, 99) * 1000, "ms")
        print()
    FIGURES.write(args.json, "bench_lookup", rows=ROWS, requests=args.requests)


if __name__ == "__main__":
    main()
