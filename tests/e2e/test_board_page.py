"""The supervisor's live board in a real browser (Debian's chromium, Playwright) against a real
``callcenter serve``: issue 11's "the board changes when a call connects, warns and overruns,
without a reload", the wallboard, the history page and who may open them.

The window is shortened by the policy (``CALLCENTER_POLICY_*``) as in the agent page's tests,
so "amber, then red" takes seconds; waits are bounded polls of what the page shows.
"""

from __future__ import annotations

import os

import pytest

from tests.browser import CHROMIUM
from tests.e2e.desk_stack import COMPANY, PASSWORD, DeskStack, database_for, short_window

playwright_api = pytest.importorskip("playwright.sync_api")
WINDOW, WARNING = 24, 12  # seconds: amber after 12 s, red after 24 s

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


def expect(locator):
    return playwright_api.expect(locator)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(request, tmp_path_factory):
    s = DeskStack(
        tmp_path_factory.mktemp("board"),
        database_url=database_for(request.param),
        **short_window(WINDOW, WARNING),
    )
    s.add_user("boss", "supervisor", "Руководитель Ольга")
    yield s
    s.stop()


def sign_in(browser, stack, login: str, path: str, lang: str = "ru"):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.add_cookies([{"name": "cc_lang", "value": lang, "url": stack.url}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(stack.url + path)
    assert "/login?next=" in page.url
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url("**" + path)
    return context, page, errors


def test_the_board_follows_a_call_through_queue_warning_and_overrun_without_a_reload(
    browser, stack
):
    context, page, errors = sign_in(browser, stack, "boss", "/supervisor/board")
    try:
        expect(page.locator("#link")).to_have_attribute("data-online", "true", timeout=10_000)
        page.evaluate("window.__sameDocument = true")  # gone if the page reloaded

        call_id = stack.new_call(certificate=COMPANY, caller="+79002223344", connect=False)
        queue_row = page.locator(f'#queue tr[data-call="{call_id}"]')
        expect(queue_row).to_be_visible(timeout=5000)
        expect(queue_row).to_contain_text("Смирнова Анна Сергеевна")

        stack.connect(call_id, "PJSIP/101")
        row = page.locator(f'#active-calls tr[data-call="{call_id}"]')
        expect(row).to_be_visible(timeout=5000)
        expect(queue_row).to_have_count(0)
        expect(row.locator(".win")).to_have_class("win win-open")
        expect(row).to_contain_text("Иванова Мария")
        expect(row).to_contain_text("ООО «Ромашка»")
        expect(page.locator('#agents tr[data-agent="agent1"] .ag')).to_have_class("ag ag-in_call")
        expect(row.locator(".win")).to_have_class("win win-warning", timeout=WARNING * 1000 + 8000)
        expect(page.locator("#n-warning .tile-value")).to_have_text("1")
        expect(row.locator(".win")).to_have_class("win win-overrun", timeout=WINDOW * 1000)
        expect(page.locator("#n-overrun .tile-value")).to_have_text("1")

        stack.end(call_id)
        expect(row).to_have_count(0, timeout=5000)
        assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        assert not errors, errors
    finally:
        context.close()


def test_the_wallboard_history_and_a_call_page_in_both_languages(browser, stack):
    call_id = stack.new_call(certificate=COMPANY, caller="+79002223344")
    stack.end(call_id)
    for lang, words in (
        ("ru", ("Настенное табло", "Журнал звонков", "Ход звонка")),
        ("en", ("Wallboard", "Call log", "Timeline")),
    ):
        context, page, errors = sign_in(browser, stack, "boss", "/supervisor/wallboard", lang)
        try:
            expect(page.locator(".wall-title")).to_have_text(words[0])
            expect(page.locator(".topbar")).to_have_count(0)  # no controls on the wall
            page.goto(stack.url + "/supervisor/history?route=queued")
            expect(page.locator("h1")).to_have_text(words[1])
            expect(page.locator(f'#history tr[data-call="{call_id}"]')).to_be_visible()
            page.click(f'#history tr[data-call="{call_id}"] a')
            page.wait_for_url(f"**/supervisor/calls/{call_id}")
            expect(page.locator("h2").first).to_have_text(words[2])
            expect(page.locator("svg.timeline rect.tl-talk")).to_have_count(1)
            assert not errors, errors
        finally:
            context.close()


def test_agents_get_a_403_page_and_anonymous_visitors_the_login_form(browser, stack):
    context, page, _ = sign_in(browser, stack, "agent2", "/agent")
    try:
        for path in ("/supervisor/board", "/supervisor/wallboard", "/supervisor/history"):
            response = page.goto(stack.url + path)
            assert response.status == 403, path
        page.context.clear_cookies()
        page.goto(stack.url + "/supervisor/board")
        assert "/login?next=/supervisor/board" in page.url
    finally:
        context.close()
