"""The reports page in a real browser (Debian's chromium, Playwright) against a real
``callcenter serve``, its database seeded with the hand-counted calls of
``tests/integration/test_reports.py``: the figures, the four charts drawn by the vendored
ECharts, Russian and English, the CSV link, and an agent refused.

Screenshots go to ``$CALLCENTER_SCREENSHOTS`` when set (``docs/screenshots`` for the README).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from pathlib import Path

import pytest

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.adapters.clock import FixedClock
from callcenter.config import Settings
from tests.browser import CHROMIUM
from tests.e2e.desk_stack import PASSWORD, DeskStack, database_for
from tests.integration.test_reports import NOW, seed

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

REPORT = "/supervisor/reports?from=2025-10-27&to=2026-01-13&by=week"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


def in_thread(coro):
    """Playwright's sync API holds this thread's event loop: async set-up runs in another."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _seed(url: str) -> None:
    container = bootstrap.build(Settings().replace(database={"url": url}), clock=FixedClock(NOW))
    try:
        await db.upgrade(container.engine)
        await seed(container)
    finally:
        await container.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reports")
    url = database_for(request.param) or f"sqlite+aiosqlite:///{workdir}/callcenter.sqlite3"
    s = DeskStack(workdir, database_url=url)
    s.add_user("boss", "supervisor", "Начальник смены")
    s.kind = request.param
    in_thread(_seed(url))
    yield s
    s.stop()


def signed_in(browser, stack, who: str, lang: str, size=(1366, 768)):
    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]})
    ctx.add_cookies([{"name": "cc_lang", "value": lang, "url": stack.url}])
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(stack.url + "/login")
    page.fill("input[name=login]", who)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    return ctx, page, errors


def shots() -> Path | None:
    out = os.environ.get("CALLCENTER_SCREENSHOTS")
    return Path(out) if out else None


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_report_shows_the_seeded_figures_and_four_charts(browser, stack, lang):
    ctx, page, errors = signed_in(browser, stack, "boss", lang)
    try:
        page.goto(stack.url + REPORT)
        total = page.locator("table[data-section=rep_section_calls] tr.total")
        expect(total.locator("td[data-figure=offered]")).to_have_text("10")
        expect(total.locator("td[data-figure=refused]")).to_have_text("2")
        week = page.locator("table[data-section=rep_section_window] tr[data-key='2025-10-27']")
        expect(week.locator("td[data-figure=within_pct]")).to_have_text("33.3")
        tickets = page.locator("table[data-section=rep_section_tickets] tr.total")
        expect(tickets.locator("td[data-figure=median_hours]")).to_have_text("7.0")
        expect(page.locator("body")).to_have_attribute("data-charts", "4")
        for chart in ("calls", "talk", "tickets", "heatmap"):
            expect(page.locator(f"#chart-{chart} svg")).to_have_count(1)
        # the talk-time chart draws the 10-minute line with its label
        expect(page.locator("#chart-talk")).to_contain_text(
            "10 минут" if lang == "ru" else "10 minutes"
        )
        heading = "Отчёты" if lang == "ru" else "Reports"
        expect(page.locator("h1")).to_have_text(heading)
        link = total.locator("td[data-figure=refused] a")
        expect(link).to_have_attribute(
            "href", "/supervisor/history?from=2025-10-27&to=2026-01-13&route=refused"
        )
        with page.expect_download() as dl:
            page.click("a[href^='/supervisor/reports.csv']:not([href*=comma])")
        body = Path(dl.value.path()).read_bytes()
        assert body.startswith(b"\xef\xbb\xbf") and len(body.splitlines()) == 5
        assert errors == [], errors
        out = shots()
        if out is not None and stack.kind == "sqlite":
            out.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=out / f"reports-{lang}.png", full_page=True)
            page.set_viewport_size({"width": 1920, "height": 1080})
            page.wait_for_timeout(300)  # the charts redraw on resize
            page.screenshot(path=out / f"reports-{lang}-1080.png", full_page=True)
    finally:
        ctx.close()


def test_an_agent_gets_a_403_page_for_reports_and_exports(browser, stack):
    ctx, page, _e = signed_in(browser, stack, "agent1", "ru")
    try:
        for path in (REPORT, "/supervisor/reports.csv", "/supervisor/history.csv"):
            r = page.goto(stack.url + path)
            assert r.status == 403, path
    finally:
        ctx.close()
