"""Run every benchmark in bench/ and write one table of their figures into bench/README.md.

Usage: python bench/run_all.py [--quick] [--pg URL] [--only NAME ...] [--out FILE]

Each benchmark runs alone, as a child process (``python bench/NAME.py ... --json FILE``),
one after the other, so none shares the box with another; each measures its own baseline
in the same run (a bare server, a bare asyncpg round trip, a bare ``python -c pass``...).
The table (figure, value, baseline, ratio, goal, met?) and the machine it ran on (CPU,
cores, memory, Python, PostgreSQL, load average before and after each benchmark) replace
what stands between the markers in bench/README.md; the rest of the README is kept.

``--quick``: small sizes (a smoke run, about 2-3 minutes): the table goes to
``var/bench-quick.md`` instead (smoke figures are not figures), unless ``--out`` says where.
``--pg``: a PostgreSQL database that is the benchmarks' own (its public schema is wiped);
``bench_reports`` (which also runs ``bench_board``) needs it and is left out without it.
A benchmark that fails (or cannot run here: no chromium for the agent page) is listed as
such and the others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BEGIN = "<!-- bench:begin: written by `make bench` (bench/run_all.py); edit outside the markers -->"
END = "<!-- bench:end -->"

#: every benchmark, with its arguments for a full and for a quick run; ``pg``: takes --pg.
#: bare_ingest.py is not here: it is bench_events' baseline server, started by it.
BENCHES: dict[str, dict] = {
    "bench_parse_event": {"full": [], "quick": ["5000"], "pg": False},
    "bench_calendar": {"full": [], "quick": ["--calls", "2000", "--repeat", "2"], "pg": False},
    "bench_events": {"full": [], "quick": ["--events", "600"], "pg": True},
    "bench_lookup": {"full": [], "quick": ["--rows", "2000", "--requests", "1000"], "pg": True},
    "bench_fastagi": {
        "full": [],
        "quick": ["--dialogues", "300", "--agi-runs", "2"],
        "pg": True,
    },
    "bench_windows": {
        "full": [],
        "quick": ["--windows", "300", "--spread", "3", "--lead", "3"],
        "pg": True,
    },
    "bench_logins": {
        "full": [],
        "quick": ["--dialogues", "40", "--burst", "6", "--dialogue-rate", "40", "--warmup", "20"],
        "pg": False,
    },
    "bench_screen_pop": {"full": [], "quick": ["--agents", "10", "--calls", "40"], "pg": True},
    "bench_agent_page": {"full": [], "quick": ["--runs", "2"], "pg": False},
    # two instances on one database: PostgreSQL only (skipped without --pg / BENCH_PG)
    "bench_load": {"full": [], "quick": ["--quick"], "pg": True, "needs_pg": True},
    # the supervisor's reports, history, export and board (bench_board.py) at 1M calls:
    # PostgreSQL only (issue 11 sets its figures there)
    "bench_reports": {
        "full": [],
        "quick": ["--calls", "20000", "--tickets", "4000", "--no-plans"],
        "pg": True,
        "needs_pg": True,
    },
}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine(pg: str | None) -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        mem_text = f"{mem:.0f} GiB"
    except (ValueError, OSError):
        mem_text = "?"
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    lines = [
        f"- when: {datetime.now(UTC).isoformat(timespec='seconds')}; code: "
        f"{rev or '?'}{' (with local changes)' if dirty else ''}",
        f"- machine: {cpu}, {os.cpu_count()} cores, {mem_text}; {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}",
        f"- PostgreSQL: {pg_version(pg) if pg else 'not measured (no --pg / BENCH_PG)'}",
    ]
    return lines


def pg_version(url: str) -> str:
    code = (
        "import asyncio,sys\n"
        "from sqlalchemy import text\n"
        "from callcenter.adapters import db\n"
        "async def m():\n"
        "    e = db.create_engine(sys.argv[1])\n"
        "    async with e.connect() as c:\n"
        "        print((await c.execute(text('show server_version'))).scalar())\n"
        "    await e.dispose()\n"
        "asyncio.run(m())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip() or f"unreachable ({out.stderr.strip().splitlines()[-1:]})"


def run_one(name: str, spec: dict, quick: bool, pg: str | None, work: Path) -> dict:
    out = work / f"{name}.json"
    if spec.get("needs_pg") and not pg:
        print(f"== {name}: skipped, it needs PostgreSQL (--pg / BENCH_PG)", flush=True)
        load = loadavg()
        return {"bench": name, "skipped": "needs PostgreSQL (--pg / BENCH_PG)",
                "seconds": 0.0, "load_before": load, "load_after": load}  # fmt: skip
    args = list(spec["quick" if quick else "full"])
    if pg and spec["pg"]:
        args += ["--pg", pg]
    cmd = [sys.executable, str(HERE / f"{name}.py"), *args, "--json", str(out)]
    before, t0 = loadavg(), time.monotonic()
    print(f"== {name} {' '.join(args)}", flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, text=True, stdout=sys.stdout, stderr=subprocess.PIPE)
    took = time.monotonic() - t0
    result = {"bench": name, "seconds": took, "load_before": before, "load_after": loadavg()}
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        print(proc.stderr[-2000:], file=sys.stderr)
        result["error"] = tail[0][:200]
        return result
    result.update(json.loads(out.read_text(encoding="utf-8")))
    return result


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def table(results: list[dict], quick: bool, pg: str | None) -> str:
    lines = [
        BEGIN,
        "",
        "## The latest `make bench`"
        + (" QUICK=1 (a smoke run: sizes too small to mean much)" if quick else ""),
        "",
        *machine(pg),
        "",
        "| benchmark | figure | value | baseline (same run) | ratio | goal | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['bench']} | **did not run**: {r['error']} | | | | | |")
            continue
        if "skipped" in r:
            lines.append(f"| {r['bench']} | skipped: {r['skipped']} | | | | | |")
            continue
        for f in r["figures"]:
            base = _num(f["baseline"], f["unit"])
            if f["baseline"] is not None and f["baseline_label"]:
                base += f" ({f['baseline_label']})"
            ratio = f"{f['ratio']:.2f}x" if f["ratio"] is not None else "—"
            goal = (f["goal"] or "—").replace("<=", "≤").replace(">=", "≥")
            if f["goal"] and not f["goal"].startswith("ratio"):
                goal = f"{goal} {f['unit']}".strip()
            met = {True: "yes", False: "**no**", None: "—"}[f["met"]]
            lines.append(
                f"| {r['bench']} | {f['figure']} | {_num(f['value'], f['unit'])} | {base} | "
                f"{ratio} | {goal} | {met} |"
            )
    lines += ["", "Each benchmark alone, one after the other; load average (1, 5, 15 min) "
              "before → after it, and how long it took:", ""]  # fmt: skip
    for r in results:
        lines.append(
            f"- {r['bench']}: {r['load_before']} → {r['load_after']}, {r['seconds']:.0f} s"
        )
    lines += ["", END]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace the marked section of ``path`` (or put it after the first paragraph)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section.rstrip("\n") + tail
    else:
        parts = text.split("\n\n", 2)
        if len(parts) == 3:
            text = parts[0] + "\n\n" + parts[1] + "\n\n" + section + "\n" + parts[2]
        else:
            text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG") or None,
                    help="PostgreSQL URL of the benchmarks' own database (wiped)")  # fmt: skip
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="only these")
    ap.add_argument("--out", type=Path, help="where the table goes")
    args = ap.parse_args()
    out = args.out or (ROOT / "var" / "bench-quick.md" if args.quick else HERE / "README.md")
    names = args.only or list(BENCHES)
    results = []
    with tempfile.TemporaryDirectory(prefix="cc-bench-all-") as tmp:
        for name in names:
            results.append(run_one(name, BENCHES[name], args.quick, args.pg, Path(tmp)))
    section = table(results, args.quick, args.pg)
    write_section(out, section)
    print(section)
    print(f"written to {out}")
    failed = [r["bench"] for r in results if "error" in r]
    if failed and args.quick:
        # a smoke run reports a benchmark that did not run (in the table, with its reason)
        # without failing the build: on a shared CI machine a service may start too slowly
        print(f"WARNING: did not run: {', '.join(failed)}", file=sys.stderr)
        return 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
