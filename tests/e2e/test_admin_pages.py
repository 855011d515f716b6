"""The portal form, the ticket pages, the policy page and the admin pages in a real browser
(Debian's chromium, Playwright) against a real ``callcenter serve`` (issue 11, admin part).

Waits are bounded polls of what the page shows; nothing here measures time.
"""

from __future__ import annotations

import os
import re

import pytest

from tests.browser import CHROMIUM
from tests.e2e.desk_stack import COMPANY, CSV_HEADER, PASSWORD, DeskStack, database_for

playwright_api = pytest.importorskip("playwright.sync_api")

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
    s = DeskStack(tmp_path_factory.mktemp("admin"), database_url=database_for(request.param))
    s.add_user("boss", "supervisor", "Руководитель Ирина")
    yield s
    s.stop()


@pytest.fixture
def page_of(browser, stack):
    """A fresh browser context (signed in as ``login`` when given), its page; closed after,
    and no script error allowed on any page."""
    opened = []

    def open_(login: str | None = None, lang: str = "ru"):
        ctx = browser.new_context(viewport={"width": 1366, "height": 768})
        ctx.add_cookies([{"name": "cc_lang", "value": lang, "url": stack.url}])
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        opened.append((ctx, errors))
        if login:
            page.goto(stack.url + "/login")
            page.fill("input[name=login]", login)
            page.fill("input[name=password]", PASSWORD)
            page.click("form[action='/login'] button[type=submit]")
            page.wait_for_load_state("load")
            assert "/login" not in page.url
        return page

    yield open_
    for ctx, errors in opened:
        ctx.close()
        assert not errors, f"script errors on the page: {errors}"


def test_anonymous_visitors_reach_only_the_login_page_and_the_portal(stack, page_of):
    page = page_of()
    for path in (
        "/",
        "/agent",
        "/tickets",
        "/tickets/1",
        "/policy",
        "/admin/users",
        "/admin/tokens",
        "/admin/certificates",
    ):
        page.goto(stack.url + path)
        assert "/login?next=" in page.url, path
    response = page.goto(stack.url + "/portal")
    assert response.status == 200 and page.url.endswith("/portal")
    expect(page.locator("h1")).to_have_text("Письменное обращение в поддержку")


def test_a_holder_sends_a_request_from_the_portal_and_an_agent_answers_it(stack, page_of):
    page = page_of()
    page.goto(stack.url + "/portal")
    # empty: each required field named in Russian
    page.click("form[action='/portal'] button[type=submit]")
    expect(page.locator("#err-full_name")).to_have_text("Заполните это поле.")
    expect(page.locator("#err-description")).to_have_text("Заполните это поле.")
    page.fill("input[name=full_name]", "Смирнова Анна Сергеевна")
    page.fill("input[name=organisation]", "ООО «Ромашка»")
    page.fill("input[name=certificate]", COMPANY)
    page.select_option("select[name=category]", "recovery")  # not among its services
    page.fill("textarea[name=description]", "Не запускается восстановление <после сбоя>")
    page.click("form[action='/portal'] button[type=submit]")
    expect(page.locator("#err-certificate")).to_have_text(
        "Сертификат не покрывает выбранную услугу."
    )
    expect(page.locator("input[name=full_name]")).to_have_value("Смирнова Анна Сергеевна")
    page.select_option("select[name=category]", "install")
    page.click("form[action='/portal'] button[type=submit]")
    expect(page.locator("h1")).to_have_text("Обращение принято")
    text = page.locator("main").inner_text()
    number = re.search(r"Номер обращения: (\d+)", text).group(1)
    assert re.search(r"Ответ будет дан до \d\d:\d\d \w+, \d+ \w+\.", text), text

    agent = page_of("agent1")
    agent.goto(stack.url + "/tickets?source=portal")
    row = agent.locator(f"a[href='/tickets/{number}']")
    expect(row).to_be_visible()
    row.click()
    expect(agent.locator("h1")).to_contain_text(f"Обращение № {number}")
    expect(agent.locator("main")).to_contain_text("Не запускается восстановление <после сбоя>")
    agent.fill("textarea[name=answer]", "Переустановите компонент; инструкция во вложении.")
    agent.click("form[action$='/answer'] button[type=submit]")
    expect(agent.locator(".flash[data-kind=ok]")).to_contain_text("Ответ дан")
    expect(agent.locator(".flash[data-kind=ok]")).to_contain_text("здесь")
    expect(agent.locator("textarea[name=answer]")).to_have_count(0)
    got = stack.request("GET", f"/api/v1/tickets/{number}", cookie=_cookie(agent))
    assert got["answer_source"] == "here" and got["source"] == "portal"


def _cookie(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "cc_session")


def test_an_agent_cannot_open_admin_and_policy_pages(stack, page_of):
    page = page_of("agent1")
    for path in ("/admin/users", "/admin/tokens", "/admin/certificates", "/policy"):
        response = page.goto(stack.url + path)
        assert response.status == 403, path
        expect(page.locator("h1")).to_have_text("Нет доступа")


def test_the_admin_creates_a_token_sees_it_once_and_revokes_it(stack, page_of):
    page = page_of("admin")
    page.goto(stack.url + "/admin/tokens")
    create = page.locator("form[action='/admin/tokens']")
    create.locator("input[name=name]").fill("портал-сайт")
    create.locator("select[name=role]").select_option("portal")
    page.click("form[action='/admin/tokens'] button[type=submit]")
    token = page.locator("input.token-value").input_value()
    assert token.startswith("cc_")
    assert stack.request("GET", "/api/v1/tickets", token=token)["total"] >= 0
    page.goto(stack.url + "/admin/tokens")
    expect(page.locator("input.token-value")).to_have_count(0)
    assert token not in page.content()
    row = page.locator("tr", has_text="портал-сайт")
    row.locator("button", has_text="Отозвать").click()
    expect(page.locator(".flash[data-kind=ok]")).to_have_text("Токен отозван.")
    expect(page.locator("tr", has_text="портал-сайт")).to_contain_text("отозван")


def test_the_admin_adds_an_agent_and_disables_it(stack, page_of):
    page = page_of("admin")
    page.goto(stack.url + "/admin/users")
    form = page.locator("form.add-user")
    form.locator("input[name=login]").fill("agent3")
    form.locator("input[name=display_name]").fill("Орлова Ольга")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("input[name=password2]").fill(PASSWORD)
    form.locator("input[name=interfaces]").fill("PJSIP/103")
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash[data-kind=ok]")).to_have_text("Пользователь добавлен.")
    expect(page.locator("form.interfaces[data-login=agent3] input")).to_have_value("PJSIP/103")
    newcomer = page_of("agent3")
    expect(newcomer.locator("#link")).to_have_attribute("data-online", "true", timeout=10_000)
    page.locator("tr[data-login=agent3] button", has_text="Отключить").click()
    expect(page.locator(".flash[data-kind=ok]")).to_contain_text("Пользователь отключён")
    newcomer.goto(stack.url + "/agent")
    assert "/login?next=" in newcomer.url


def test_the_admin_imports_certificates_with_row_errors_then_progress(stack, page_of, tmp_path):
    page = page_of("admin")
    bad = tmp_path / "плохой.csv"
    bad.write_text(CSV_HEADER + "12,person,Кто-то,,,,,2026-01-01,,\n", encoding="utf-8")
    page.goto(stack.url + "/admin/certificates")
    page.set_input_files("input[name=file]", str(bad))
    page.click("form[action='/admin/certificates'] button[type=submit]")
    expect(page.locator("#import-progress")).to_have_attribute(
        "data-phase", "refused", timeout=60_000
    )
    expect(page.locator("#import-errors")).to_contain_text("«плохой.csv» не импортирован")
    expect(page.locator("#import-errors td.mono").first).to_have_text("2")
    page.goto(stack.url + "/admin/certificates")

    good = tmp_path / "новые.csv"
    rows = "".join(f"{9000000 + i},person,Держатель {i},,,,,2026-01-01,,\n" for i in range(6000))
    good.write_text(CSV_HEADER + rows, encoding="utf-8")
    page.set_input_files("input[name=file]", str(good))
    page.click("form[action='/admin/certificates'] button[type=submit]")
    expect(page.locator("h1")).to_have_text("Импорт «новые.csv»")
    expect(page.locator("#import-progress")).to_have_attribute(
        "data-finished", "true", timeout=120_000
    )
    expect(page.locator("#import-progress")).to_contain_text(
        "Импортировано 6000: новых 6000, обновлено 0."
    )
    assert page.locator("progress").get_attribute("value") == "100"
    page.goto(stack.url + "/admin/certificates")
    expect(page.locator("main li").first).to_contain_text("новые.csv · Готово · 100%")


def test_the_admin_publishes_a_policy_too_soon_then_on_the_earliest_date(stack, page_of):
    boss = page_of("boss")
    boss.goto(stack.url + "/policy")
    expect(boss.locator("table.policy")).to_contain_text("действует")
    expect(boss.locator("form[action='/policy']")).to_have_count(0)
    page = page_of("admin", lang="en")
    page.goto(stack.url + "/policy")
    date_input = page.locator("input[name=effective_from]")
    earliest = date_input.get_attribute("min")
    assert date_input.input_value() == earliest
    page.evaluate("document.querySelector('input[name=effective_from]').removeAttribute('min')")
    date_input.fill("2000-01-01")
    page.fill("input[name=note]", "слишком рано")
    page.click("form[action='/policy'] button[type=submit]")
    expect(page.locator("#policy-error")).to_contain_text("at the earliest")
    expect(page.locator("#policy-error")).to_contain_text(earliest)
    page.locator("input[name=effective_from]").fill(earliest)
    page.fill("input[name=oral_window_seconds]", "900")
    page.click("form[action='/policy'] button[type=submit]")
    expect(page.locator(".flash[data-kind=ok]")).to_have_text("A new policy version is published.")
    expect(page.locator("tr.scheduled")).to_contain_text("900 s")
