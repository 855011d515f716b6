#!/usr/bin/env python3
"""Screenshots of the pages for docs/screenshots/, taken by headless chromium (Playwright)
against a real ``callcenter serve`` with a call in progress.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]

Each page is taken at 1366x768 (a laptop); ``--both`` adds 1920x1080 copies (``*-1080.png``)
to look at on a monitor.
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
from tests.e2e.desk_stack import COMPANY, DeskStack  # noqa: E402


def main() -> int:
    args, out, sizes = options(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        stack = DeskStack(Path(tmp))
        try:
            old = stack.new_call(certificate=COMPANY, caller="+79002223344")
            stack.request(
                "PATCH",
                f"/api/v1/calls/{old}",
                {"caller_name": "Смирнова Анна", "description": "Не ставится обновление"},
                token=stack.token,
            )
            stack.end(old)
            stack.new_call(certificate=COMPANY, caller="+79002223344")
            with sync_playwright() as p:
                browser = launch(p, args.chromium)
                for suffix, (w, h) in sizes.items():
                    for lang in ("ru", "en"):
                        ctx = context(browser, stack.url, lang, (w, h))
                        page = ctx.new_page()
                        if lang == "ru":
                            page.goto(stack.url + "/login")
                            page.screenshot(path=out / f"login-ru{suffix}.png")
                            login(page, stack.url, "admin")
                            page.goto(stack.url + "/admin/users")
                            page.screenshot(path=out / f"admin-users-ru{suffix}.png")
                            page.context.clear_cookies()
                            ctx.add_cookies([{"name": "cc_lang", "value": lang, "url": stack.url}])
                        login(page, stack.url, "agent1")
                        page.wait_for_selector("#desk:not([hidden])", timeout=10_000)
                        time.sleep(1.5)
                        page.screenshot(path=out / f"agent-{lang}{suffix}.png")
                        ctx.close()
                browser.close()
        finally:
            stack.stop()
    print(f"screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
