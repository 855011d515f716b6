#!/usr/bin/env python3
"""Screenshots of the supervisor's board, wallboard, history, a call and a certificate for
docs/screenshots/ (``board-*.png``, ``wallboard-*.png``, ``history-*.png``, ``call-*.png``,
``certificate-*.png``), in Russian and English, at 1366x768 and 1920x1080 (``*-1080.png``).

    .venv/bin/python scripts/screenshots_board.py [--out docs/screenshots]

A real ``callcenter serve`` with a shortened oral window (90 s, warning 45 s before the end)
so that the board shows an overrun, a warning, a call in its window and a caller waiting.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _shots import context, login, options  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser import launch  # noqa: E402
from tests.e2e.desk_stack import COMPANY, VALID, DeskStack  # noqa: E402


def main() -> int:
    args, out, sizes = options(__doc__, both=False)
    with tempfile.TemporaryDirectory() as tmp:
        stack = DeskStack(
            Path(tmp),
            CALLCENTER_POLICY_ORAL_WINDOW_SECONDS="90",
            CALLCENTER_POLICY_WARNING_SECONDS="45",
            CALLCENTER_TIMERS_GRACE_SECONDS="0.5",
        )
        try:
            stack.add_user("agent3", "agent", "Кузнецова Ольга", "PJSIP/103")
            stack.add_user("agent4", "agent", "Орлов Денис", "PJSIP/104")
            stack.add_user("boss", "supervisor", "Руководитель Ольга")
            # the day so far: answered in time, abandoned in the queue, refused, closed
            for caller in ("+79161110001", "+79161110002", "+79161110003"):
                done = stack.new_call(certificate=VALID, caller=caller, interface="PJSIP/104")
                stack.end(done)
            gone = stack.new_call(connect=False, caller="+79161110004")
            stack.end(gone)
            refused = stack.new_call(connect=False, status="EXPIRED", caller="+79161110005")
            stack.end(refused)
            # the live moment: an overrun, a warning, one in its window, one waiting
            late = stack.new_call(certificate=COMPANY, caller="+79002223344")
            time.sleep(50)
            stack.new_call(interface="PJSIP/102", caller="+79001234567")
            time.sleep(46)
            stack.new_call(interface="PJSIP/103", caller="+79035556677")
            stack.new_call(connect=False, caller="+79167778899")
            time.sleep(2)
            shots = {
                "board": "/supervisor/board",
                "wallboard": "/supervisor/wallboard",
                "history": "/supervisor/history",
                "call": f"/supervisor/calls/{late}",
                "certificate": f"/supervisor/certificates/{COMPANY}",
            }
            with sync_playwright() as p:
                browser = launch(p, args.chromium)
                for lang in ("ru", "en"):
                    for suffix, (w, h) in sizes.items():
                        ctx = context(browser, stack.url, lang, (w, h))
                        page = ctx.new_page()
                        login(page, stack.url, "boss")
                        for name, path in shots.items():
                            page.goto(stack.url + path)
                            page.wait_for_load_state("networkidle")
                            page.wait_for_timeout(600)
                            target = out / f"{name}-{lang}{suffix}.png"
                            page.screenshot(path=str(target))
                            print(target)
                        ctx.close()
                browser.close()
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
