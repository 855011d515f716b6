"""Shared pieces of the benchmarks: a served instance, a load loop, percentiles."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env.update(CALLCENTER_DATABASE_URL=db_url, PYTHONPATH=str(ROOT), **extra)
    return env


def cli(db_url: str, *args: str, **extra: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "callcenter.cli", *args],
        env=env_for(db_url, **extra),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return out.stdout


class Served:
    def __init__(self, db_url: str, workdir: Path, **extra: str) -> None:
        self.port, self.agi_port = free_port(), free_port()
        env = env_for(
            db_url,
            CALLCENTER_HTTP_PORT=str(self.port),
            CALLCENTER_FASTAGI_PORT=str(self.agi_port),
            CALLCENTER_LOGGING_LEVEL="WARNING",
            **extra,
        )
        self.log = (workdir / f"serve-{self.port}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", "serve"],
            env=env,
            cwd=workdir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    break  # it ended: no use waiting
                time.sleep(0.1)
        self.log.flush()
        tail = (workdir / f"serve-{self.port}.log").read_text(errors="replace")[-600:]
        raise RuntimeError(f"service did not start; its log ends: {tail!r}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the service process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


async def load(make_request, total: int, concurrency: int) -> tuple[float, list[float]]:
    """Run ``total`` requests with ``concurrency`` workers; returns (seconds, latencies)."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await make_request(i)
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies


class LeanClient:
    """A minimal HTTP/1.1 keep-alive client for load generation: one connection per worker,
    requests pre-encoded, answers read by Content-Length.

    The load generator shares the machine's two cores with the service (and its database), so
    its own cost is taken from what is measured; aiohttp's client spends ~0.25 ms of CPU per
    request, this one about a fifth of that. Both the service and its bare baseline are
    measured with it.
    """

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        from urllib.parse import urlsplit

        u = urlsplit(base_url)
        self.host, self.port = u.hostname, u.port or 80
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._head = f"Host: {self.host}:{self.port}\r\n{extra}"
        self._conns: list = []

    def encode(self, method: str, path: str, body: bytes = b"") -> bytes:
        return (
            f"{method} {path} HTTP/1.1\r\n{self._head}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def connect(self):
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self._conns.append(writer)
        return reader, writer

    @staticmethod
    async def exchange(conn, raw: bytes) -> tuple[int, bytes]:
        reader, writer = conn
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await reader.readexactly(length) if length else b""
        return status, body

    async def close(self) -> None:
        for w in self._conns:
            w.close()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def summary(label: str, seconds: float, lat: list[float]) -> str:
    return (
        f"{label:<38} {len(lat) / seconds:8.0f} req/s   p50 {statistics.median(lat) * 1000:6.2f} ms"
        f"   p99 {pct(lat, 99) * 1000:6.2f} ms"
    )


# --- machine-readable figures, for bench/run_all.py ----------------------------------------


def met(value: float, goal: str | None, baseline: float | None = None) -> bool | None:
    """Whether ``value`` meets ``goal``: "<= 3", ">= 300", or on the ratio to the baseline
    of the same run, "ratio <= 2" / "ratio >= 1.5". None when there is no goal (or no
    baseline for a ratio goal)."""
    if not goal:
        return None
    words = goal.split()
    subject = value
    if words[0] == "ratio":
        if not baseline:
            return None
        subject, words = value / baseline, words[1:]
    op, limit = words[0], float(words[1])
    return {"<=": subject <= limit, ">=": subject >= limit, "<": subject < limit,
            ">": subject > limit}[op]  # fmt: skip


class Figures:
    """What one benchmark measured: each figure with its unit, the baseline measured in the
    same run (if any), the goal and whether it was met. ``--json FILE`` writes them."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(
        self,
        figure: str,
        value: float,
        unit: str,
        *,
        baseline: float | None = None,
        baseline_label: str = "",
        goal: str | None = None,
    ) -> None:
        self.rows.append(
            {
                "figure": figure,
                "value": value,
                "unit": unit,
                "baseline": baseline,
                "baseline_label": baseline_label,
                "ratio": (value / baseline) if baseline else None,
                "goal": goal,
                "met": met(value, goal, baseline),
            }
        )

    def write(self, path: str | None, bench: str, **context) -> None:
        if not path:
            return
        import json

        Path(path).write_text(
            json.dumps({"bench": bench, "context": context, "figures": self.rows}, indent=1),
            encoding="utf-8",
        )


FIGURES = Figures()


def json_option(ap) -> None:
    ap.add_argument(
        "--json", metavar="FILE", help="also write the figures as JSON (for bench/run_all.py)"
    )
