"""The agent page's first load in headless chromium against a local ``callcenter serve``:
bytes transferred and time to interactive (goal: under 300 kB and under 500 ms).

"Interactive" is the page's push socket open and its desk frame rendered (``#link`` online,
the pop or the idle card shown): the moment an agent can work. Each load is a fresh browser
context (an empty cache) holding only the session cookie.

Run: ``.venv/bin/python bench/bench_agent_page.py [--loads 20] [--with-call]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.e2e.desk_stack import PASSWORD, DeskStack  # noqa: E402

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=int, default=20)
    ap.add_argument("--with-call", action="store_true", help="a call in progress on the desk")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = DeskStack(Path(tmp))
        try:
            if args.with_call:
                stack.new_call()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
                ctx = browser.new_context()
                page = ctx.new_page()
                page.goto(stack.url + "/login")
                page.fill("input[name=login]", "agent1")
                page.fill("input[name=password]", PASSWORD)
                page.click("form[action='/login'] button[type=submit]")
                page.wait_for_url("**/agent")
                cookies = ctx.cookies()
                ctx.close()
                times, sizes, dcl = [], [], []
                for _ in range(args.loads + 1):  # the first warms the service up, not counted
                    ctx = browser.new_context()
                    ctx.add_cookies(cookies)
                    page = ctx.new_page()
                    received: list[int] = []
                    page.on(
                        "requestfinished",
                        lambda r, received=received: received.append(
                            r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"]
                        ),
                    )
                    started = time.perf_counter()
                    page.goto(stack.url + "/agent")
                    page.wait_for_selector("#link[data-online=true]")
                    page.wait_for_selector("#desk:not([hidden]), #idle:not([hidden])")
                    page.wait_for_selector("#agent-state:not([data-state=''])")
                    times.append((time.perf_counter() - started) * 1000)
                    dcl.append(
                        page.evaluate(
                            "() => performance.getEntriesByType('navigation')[0]"
                            ".domContentLoadedEventEnd"
                        )
                    )
                    page.wait_for_load_state("networkidle")
                    sizes.append(sum(received))
                    ctx.close()
                browser.close()
        finally:
            stack.stop()
    times, sizes, dcl = times[1:], sizes[1:], dcl[1:]
    q = statistics.quantiles(times, n=20)
    print(f"agent page first load, {args.loads} loads, fresh cache each")
    print(f"  bytes over HTTP (headers + bodies, the socket's frames not counted): {sizes[0]:,}")
    print(
        f"  time to interactive ms: p50 {statistics.median(times):.0f}, p95 {q[18]:.0f}, "
        f"max {max(times):.0f}"
    )
    print(
        f"  of which HTML, CSS and scripts (DOMContentLoaded) ms: p50 {statistics.median(dcl):.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
