#!/usr/bin/env python3
"""Screenshots of the issue 11 admin helper's pages (portal, tickets, policy, users, tokens,
certificate import) for docs/screenshots/, taken by headless chromium (Playwright) against a
real ``callcenter serve``.

    .venv/bin/python scripts/screenshots_admin.py [--out docs/screenshots] [--both]

Each page at 1366x768 in Russian and English; ``--both`` adds 1920x1080 copies (``*-1080``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _shots import context, login, options  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser import launch  # noqa: E402
from tests.e2e.desk_stack import COMPANY, CSV_HEADER, DeskStack  # noqa: E402


def portal_ticket(page, url: str, category: str = "install") -> None:
    page.goto(url + "/portal")
    page.fill("input[name=full_name]", "Смирнова Анна Сергеевна")
    page.fill("input[name=organisation]", "ООО «Ромашка»")
    page.fill("input[name=certificate]", COMPANY)
    page.select_option("select[name=category]", category)
    page.fill(
        "textarea[name=description]",
        "После обновления до 4.1.2050 не запускается служба аудита: ошибка 0x80070005.",
    )
    page.click("form[action='/portal'] button[type=submit]")
    page.wait_for_load_state("networkidle")


def main() -> int:
    args, out, sizes = options(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        stack = DeskStack(Path(tmp))
        bad = Path(tmp) / "сертификаты.csv"
        bad.write_text(
            CSV_HEADER
            + "12,person,Кто-то,,,,,2026-01-01,,\n"
            + f"{COMPANY},organisation,,ООО «Ромашка»,Анна <+7900>,,,2026-13-01,,teleport\n",
            encoding="utf-8",
        )
        try:
            with sync_playwright() as p:
                browser = launch(p, args.chromium)
                first = browser.new_page()
                portal_ticket(first, stack.url)
                portal_ticket(first, stack.url, "admin")
                first.close()
                for suffix, (w, h) in sizes.items():
                    for lang in ("ru", "en"):
                        ctx = context(browser, stack.url, lang, (w, h))
                        page = ctx.new_page()
                        page.goto(stack.url + "/portal")
                        page.screenshot(path=out / f"portal-{lang}{suffix}.png")
                        page.fill("input[name=certificate]", "12")
                        page.click("form[action='/portal'] button[type=submit]")
                        page.screenshot(path=out / f"portal-errors-{lang}{suffix}.png")
                        portal_ticket(page, stack.url)
                        page.screenshot(path=out / f"portal-done-{lang}{suffix}.png")
                        login(page, stack.url, "admin")
                        page.goto(stack.url + "/tickets")
                        page.screenshot(path=out / f"tickets-{lang}{suffix}.png")
                        page.goto(stack.url + "/tickets/1")
                        page.screenshot(path=out / f"ticket-{lang}{suffix}.png")
                        page.goto(stack.url + "/policy")
                        page.screenshot(path=out / f"policy-{lang}{suffix}.png", full_page=True)
                        page.goto(stack.url + "/admin/users")
                        page.screenshot(path=out / f"admin-users-forms-{lang}{suffix}.png")
                        page.goto(stack.url + "/admin/tokens")
                        create = page.locator("form[action='/admin/tokens']")
                        create.locator("input[name=name]").fill(f"портал-{lang}{suffix}")
                        create.locator("select[name=role]").select_option("portal")
                        create.locator("button[type=submit]").click()
                        page.wait_for_load_state("networkidle")
                        page.screenshot(path=out / f"admin-tokens-{lang}{suffix}.png")
                        page.goto(stack.url + "/admin/certificates")
                        page.set_input_files("input[name=file]", str(bad))
                        page.click("form[action='/admin/certificates'] button[type=submit]")
                        page.wait_for_selector("#import-progress[data-finished=true]")
                        page.screenshot(path=out / f"admin-import-{lang}{suffix}.png")
                        ctx.close()
                browser.close()
        finally:
            stack.stop()
    print(f"screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
