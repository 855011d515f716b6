"""Screen-pop latency: from `agent_connected` posted to the pop's frame on the agent's socket.

Usage: python bench/bench_screen_pop.py [--pg URL] [--agents 200] [--rate 20] [--calls 600]

Two servers, each a child process, measured in the same run with the same client:

- **bare**: a plain aiohttp application holding the same number of WebSockets, whose
  `POST /push/{i}` sends a small JSON frame to socket i: the floor of "an HTTP request in,
  a frame out" on this machine, with no database and no service logic;
- **service**: `callcenter serve` (SQLite, or PostgreSQL with --pg) with as many agent users,
  each mapped to its own queue interface (`PJSIP/<1000+i>`) and logged in with a session of
  its own, each holding the agent page's push socket (`/api/v1/stream`).

Calls arrive at --rate a second, round robin over the agents. For the service, each call's
`call_started` and `certificate_checked` are posted first (not timed); the clock starts just
before `agent_connected` is sent and stops when that agent's socket receives the
`call_connected` frame carrying the pop (holder, coverage). The service pops as the event
arrives, before it is stored (docs/agent-screen.md), so the window (the countdown) may come
a moment later, in a `call_updated`: the time to the first frame carrying the window is
printed too, as a figure of its own. The call's `call_ended` follows, untimed, so every
agent's previous call is over when its next one connects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import FIGURES, ROOT, Served, env_for, free_port, json_option, pct

sys.path.insert(0, str(ROOT))

PASSWORD = "bench-password-1"
_BARE = r"""
import sys
from aiohttp import web, WSMsgType

sockets = {}

async def ws(request):
    i = request.match_info["i"]
    s = web.WebSocketResponse()
    await s.prepare(request)
    sockets[i] = s
    try:
        async for msg in s:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        sockets.pop(i, None)
    return s

async def push(request):
    i = request.match_info["i"]
    body = await request.json()
    await sockets[i].send_json({"type": "call_connected", "call": body})
    return web.json_response({"pushed": True}, status=202)

async def healthz(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.add_routes([web.get("/ws/{i}", ws), web.post("/push/{i}", push), web.get("/healthz", healthz)])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


async def _drive(
    sockets: list, post, call_ids: list[str], rate: float, windows: list | None = None
) -> tuple[float, list[float]]:
    """Post each call's timed request at ``rate`` a second; latency to its pop frame (and,
    into ``windows``, to the first frame carrying its window)."""
    import aiohttp

    waiting: dict[str, tuple[float, asyncio.Future]] = {}
    windowed: set[str] = set()
    loop = asyncio.get_running_loop()

    async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame.get("type") not in ("call_connected", "call_updated"):
                continue
            call = frame.get("call") or {}
            hit = waiting.get(call.get("call_id"))
            if hit is None:
                continue
            now = time.perf_counter()
            if frame["type"] == "call_connected" and not hit[1].done():
                hit[1].set_result(now - hit[0])
            if windows is not None and call.get("window") and call["call_id"] not in windowed:
                windowed.add(call["call_id"])
                windows.append(now - hit[0])

    readers = [asyncio.ensure_future(reader(ws)) for ws in sockets]
    tasks = []
    start = time.perf_counter()
    for n, call_id in enumerate(call_ids):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        fut = loop.create_future()
        waiting[call_id] = (time.perf_counter(), fut)
        tasks.append(asyncio.ensure_future(post(n, call_id)))
    results = await asyncio.wait_for(
        asyncio.gather(*(waiting[c][1] for c in call_ids)), timeout=120
    )
    await asyncio.gather(*tasks)
    for _ in range(100):  # the last windows on their way
        if windows is None or len(windowed) == len(call_ids):
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    for r in readers:
        r.cancel()
    return elapsed, list(results)


async def bare(url: str, agents: int, rate: float, calls: int) -> list[float]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = [await http.ws_connect(f"{url}/ws/{i}") for i in range(agents)]

        async def post(n: int, call_id: str) -> None:
            body = {"call_id": call_id, "holder_name": "Сидоров Пётр", "status": "VALID"}
            async with http.post(f"{url}/push/{n % agents}", json=body) as r:
                await r.read()

        _, lat = await _drive(sockets, post, [f"bare-{n}" for n in range(calls)], rate)
        for ws in sockets:
            await ws.close()
    return lat


def run_bare(agents: int, rate: float, calls: int) -> list[float]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _BARE, str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url)
        return asyncio.run(bare(url, agents, rate, calls))
    finally:
        proc.terminate()
        proc.wait(10)


_SETUP = r"""
import asyncio, json, sys
from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.config import load_settings
from callcenter.demo import demo_certificates

async def main(agents, password):
    settings = load_settings()
    c = bootstrap.build(settings)
    await db.upgrade(c.engine)
    now = c.clock.now()
    certs = demo_certificates(now)
    await c.registry.import_certificates(certs, now)
    number = next(x.number for x in certs if x.status_on(now.date()) == "VALID")
    cookies = []
    try:
        for i in range(agents):
            login = f"agent{i:03d}"
            await c.auth.add_user(login, "agent", password, now, display_name=f"Агент {i}")
            await c.desk.set_interfaces(login, [f"PJSIP/{1000 + i}"], now)
            session = await c.auth.open_session(login, password, now, f"10.0.{i // 250}.{i % 250}")
            cookies.append(session.cookie)
        await c.auth.add_user("bench-admin", "admin", password, now)
        token = await c.auth.create_token("bench-pbx", "pbx", now)
    finally:
        await c.close()
    print(json.dumps({"cookies": cookies, "token": token, "number": number}))

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


async def service(
    url: str, creds: dict, agents: int, rate: float, calls: int, windows: list
) -> list[float]:
    import aiohttp

    pbx = {"Authorization": f"Bearer {creds['token']}"}
    number = creds["number"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = []
        for cookie in creds["cookies"]:
            jar = {"Cookie": f"cc_session={cookie}", "Origin": url}
            sockets.append(await http.ws_connect(f"{url}/api/v1/stream", headers=jar))

        async def event(body: dict) -> None:
            async with http.post(f"{url}/api/v1/events", json=body, headers=pbx) as r:
                if r.status >= 300:
                    raise RuntimeError(f"{r.status} {await r.text()}")
                await r.read()

        async def post(n: int, call_id: str) -> None:
            agent = f"PJSIP/{1000 + n % agents}"
            await event({"event": "agent_connected", "call_id": call_id, "agent": agent})

        run = f"{int(time.time())}"
        ids = [f"pop-{run}-{n}" for n in range(calls)]
        caller = "+74951234567"
        for call_id in ids:  # the IVR part of each call, before the clock runs
            await event({"event": "call_started", "call_id": call_id, "caller_number": caller})
            checked = {"certificate": number, "status": "VALID"}
            await event({"event": "certificate_checked", "call_id": call_id, **checked})
        _, lat = await _drive(sockets, post, ids, rate, windows)
        for call_id in ids:
            await event({"event": "call_ended", "call_id": call_id, "hangup_by": "caller"})
        for ws in sockets:
            await ws.close()
    return lat


def run_service(db_url: str, agents: int, rate: float, calls: int, windows: list) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        setup = subprocess.run(
            [sys.executable, "-c", _SETUP, str(agents), PASSWORD],
            env=env_for(db_url, CALLCENTER_LOGGING_LEVEL="WARNING"),
            cwd=work,
            capture_output=True,
            text=True,
            check=True,
        )
        creds = json.loads(setup.stdout.strip().splitlines()[-1])
        served = Served(db_url, work)
        try:
            return asyncio.run(service(served.url, creds, agents, rate, calls, windows))
        finally:
            served.stop()


def _line(label: str, lat: list[float]) -> str:
    return (
        f"{label:<46} p50 {statistics.median(lat) * 1000:7.2f} ms   "
        f"p99 {pct(lat, 99) * 1000:7.2f} ms   max {max(lat) * 1000:7.2f} ms   n={len(lat)}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", help="PostgreSQL URL (postgresql+asyncpg://...); default SQLite")
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--calls", type=int, default=600)
    json_option(ap)
    a = ap.parse_args()
    print(f"{a.agents} agent sockets, calls at {a.rate:g}/s, {a.calls} calls")
    base = run_bare(a.agents, a.rate, a.calls)
    print(_line("bare aiohttp: POST in, frame out", base))
    if a.pg:  # the bench database is the benchmark's: start from an empty schema
        from tests.conftest import reset_postgres

        asyncio.run(reset_postgres(a.pg))
    with tempfile.TemporaryDirectory() as tmp:
        url = a.pg or f"sqlite+aiosqlite:///{tmp}/pop.db"
        windows: list[float] = []
        lat = run_service(url, a.agents, a.rate, a.calls, windows)
    print(_line(f"service: agent_connected in, pop out ({'pg' if a.pg else 'sqlite'})", lat))
    print(_line("service: agent_connected in, its window on screen", windows))
    print(
        f"ratio p50 {statistics.median(lat) / statistics.median(base):.2f}x   "
        f"p99 {pct(lat, 99) / pct(base, 99):.2f}x   (goal: p99 <= 50 ms and within 2x of bare)"
    )
    db = "PostgreSQL" if a.pg else "SQLite"
    bare = "bare aiohttp: POST in, frame out, same run"
    FIGURES.add(f"screen pop p99, {a.agents} agents, {db}", pct(lat, 99) * 1000, "ms",
                baseline=pct(base, 99) * 1000, baseline_label=bare, goal="<= 50")  # fmt: skip
    FIGURES.add(f"screen pop p99 against bare, {db}", pct(lat, 99) * 1000, "ms",
                baseline=pct(base, 99) * 1000, baseline_label=bare, goal="ratio <= 2")  # fmt: skip
    FIGURES.add(f"screen pop p50, {db}", statistics.median(lat) * 1000, "ms",
                baseline=statistics.median(base) * 1000, baseline_label=bare)  # fmt: skip
    FIGURES.add(f"screen pop, the window (countdown) on screen p50, {db}",
                statistics.median(windows) * 1000, "ms")  # fmt: skip
    FIGURES.add(f"screen pop, the window (countdown) on screen p99, {db}",
                pct(windows, 99) * 1000, "ms")  # fmt: skip
    FIGURES.write(a.json, "bench_screen_pop", agents=a.agents, rate=a.rate, calls=a.calls)


if __name__ == "__main__":
    main()
