"""The agent page's first load in headless chromium: bytes transferred and time to interactive.

Usage: python bench/bench_agent_page.py [--runs 10]

`callcenter serve` (SQLite) runs in a child process with one agent user; Debian's chromium,
driven by Playwright, logs in once, then loads `/agent` --runs times, each in a fresh browser
context with an empty cache (the session cookie copied in), as an agent's first load of the
day. Per load:

- **bytes**: every response's headers and body as chromium received them (Playwright's
  `request.sizes()`), the page and all it loads;
- **interactive**: from navigation start until the push socket's first frame (the `desk`
  catch-up) has arrived *and* the load event has fired: from then on the page shows the desk
  and answers the keyboard. `domInteractive` and the load event are printed beside it.

Baseline, same run and same browser: a bare aiohttp page of a few bytes that opens a
WebSocket and receives one frame: the floor of "a page and a socket" on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import FIGURES, ROOT, Served, env_for, free_port, json_option
from bench_screen_pop import _wait_up

sys.path.insert(0, str(ROOT))

from tests.browser import launch

PASSWORD = "bench-password-1"

_BARE = r"""
import sys
from aiohttp import web

PAGE = '''<!doctype html><title>bare</title><script src="/a.js"></script>'''
JS = '''new WebSocket("ws://" + location.host + "/ws").onmessage = () => {
  performance.mark("frame"); };'''

async def page(request):
    return web.Response(text=PAGE, content_type="text/html")

async def js(request):
    return web.Response(text=JS, content_type="application/javascript")

async def ws(request):
    s = web.WebSocketResponse()
    await s.prepare(request)
    await s.send_json({"type": "desk"})
    async for _ in s:
        pass
    return s

async def healthz(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.add_routes([web.get("/", page), web.get("/a.js", js), web.get("/ws", ws),
                web.get("/healthz", healthz)])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


async def _load(browser, url: str, cookies: list[dict]) -> tuple[int, float, float, float]:
    """(bytes, interactive ms, domInteractive ms, load event ms) of one cold load."""
    ctx = await browser.new_context()
    if cookies:
        await ctx.add_cookies(cookies)
    page = await ctx.new_page()
    responses = []
    page.on("response", lambda r: responses.append(r))
    first_frame = asyncio.get_running_loop().create_future()

    def on_socket(ws) -> None:
        def on_frame(_payload) -> None:
            if not first_frame.done():
                first_frame.set_result(time.perf_counter())

        ws.on("framereceived", on_frame)

    page.on("websocket", on_socket)
    t0 = time.perf_counter()
    await page.goto(url, wait_until="load")
    t_load = time.perf_counter()
    t_frame = await asyncio.wait_for(first_frame, 10)
    nav = await page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return [n.domInteractive, n.loadEventEnd]; }"
    )
    total = 0
    for r in responses:
        sizes = await r.request.sizes()
        total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
    await ctx.close()
    interactive = (max(t_load, t_frame) - t0) * 1000
    return total, interactive, nav[0], nav[1]


async def measure(url: str, cookies: list[dict], runs: int) -> list[tuple]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            await _load(browser, url, cookies)  # warm the server's caches, not the browser's
            return [await _load(browser, url, cookies) for _ in range(runs)]
        finally:
            await browser.close()


async def login_cookie(base: str) -> list[dict]:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        body = {"login": "bench-agent", "password": PASSWORD}
        async with http.post(f"{base}/api/v1/session", json=body) as r:
            r.raise_for_status()
            cookie = r.cookies["cc_session"].value
    return [{"name": "cc_session", "value": cookie, "url": base}]


def report(label: str, rows: list[tuple]) -> tuple[float, float]:
    size = statistics.median(r[0] for r in rows)
    tti = sorted(r[1] for r in rows)
    print(
        f"{label:<34} {size / 1024:7.1f} kB   interactive p50 {statistics.median(tti):6.0f} ms"
        f"  max {tti[-1]:6.0f} ms   domInteractive {statistics.median(r[2] for r in rows):5.0f}"
        f" ms   load {statistics.median(r[3] for r in rows):5.0f} ms   n={len(rows)}"
    )
    return size / 1024, statistics.median(tti)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    json_option(ap)
    a = ap.parse_args()

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _BARE, str(port)])
    try:
        _wait_up(f"http://127.0.0.1:{port}")
        base = report(
            "bare page + socket", asyncio.run(measure(f"http://127.0.0.1:{port}/", [], a.runs))
        )
    finally:
        proc.terminate()
        proc.wait(10)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = f"sqlite+aiosqlite:///{tmp}/page.db"
        subprocess.run(
            [sys.executable, "-m", "callcenter.cli", "users", "add", "bench-agent",
             "--role", "agent", "--interface", "PJSIP/101"],
            input=PASSWORD + "\n", text=True, check=True, cwd=work, capture_output=True,
            env=env_for(url),
        )  # fmt: skip
        served = Served(url, work)
        try:
            cookies = asyncio.run(login_cookie(served.url))
            rows = asyncio.run(measure(served.url + "/agent", cookies, a.runs))
            page = report("agent page (/agent), idle desk", rows)
        finally:
            served.stop()
    print("goal: under 300 kB and under 500 ms to interactive")
    bare = "bare page + socket, same run and browser"
    FIGURES.add("agent page first load, bytes", page[0], "kB", baseline=base[0],
                baseline_label=bare, goal="< 300")  # fmt: skip
    FIGURES.add("agent page time to interactive, median", page[1], "ms", baseline=base[1],
                baseline_label=bare, goal="< 500")  # fmt: skip
    FIGURES.write(a.json, "bench_agent_page", runs=a.runs)


if __name__ == "__main__":
    main()
