"""The portal form, the ticket pages, the policy page and the admin pages over a real socket,
on SQLite and PostgreSQL (issue 11, the admin helper's part).

Every page is a plain HTML form: the tests post what a browser posts and read the page back.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime

import aiohttp
import pytest

from callcenter.adapters.clock import FixedClock
from callcenter.calendar import MOSCOW
from callcenter.domain.certificates import Certificate, HolderType, Service

PASSWORD = "пароль-длинный"
#: a Friday night: a portal request now is answered by Tuesday noon (Monday 09:00-18:00 is
#: nine working hours, three more on Tuesday)
FRIDAY_NIGHT = datetime(2026, 3, 20, 23, 30, tzinfo=MOSCOW)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(FRIDAY_NIGHT)


def cert(number, valid_to=date(2026, 12, 31), services=tuple(Service)):
    return Certificate(
        number,
        HolderType.ORGANISATION,
        "",
        "ООО «Ромашка»",
        "Продукт",
        "5.0.13000",
        date(2026, 1, 1),
        valid_to,
        services=services,
    )


@pytest.fixture
async def certificates(container, clock):
    await container.registry.import_certificates(
        [
            cert("123456"),
            cert("222222", valid_to=date(2025, 12, 31)),
            cert("333333", services=(Service.INSTALL,)),
        ],
        clock.now(),
    )


async def signed_in(container, clock, login, role) -> dict[str, str]:
    await container.auth.add_user(login, role, PASSWORD, clock.now(), display_name=login)
    session = await container.auth.open_session(login, PASSWORD, clock.now())
    return {"Cookie": f"cc_session={session.cookie}"}


EN = {"Cookie": "cc_lang=en"}


def portal_form(**changes):
    form = {
        "full_name": "Иванов Иван Иванович",
        "organisation": "ООО «Ромашка»",
        "certificate": "123456",
        "description": "Не устанавливается обновление: ошибка 0x80070005",
        "category": "install",
    }
    return {**form, **changes}


# --- the portal ------------------------------------------------------------------------------


async def test_an_anonymous_visitor_opens_the_portal_form_in_russian_and_english(client):
    r = await client.get("/portal", allow_redirects=False)
    assert r.status == 200
    text = await r.text()
    assert "Письменное обращение в поддержку" in text and 'name="certificate"' in text
    assert "ФИО" in text and "Описание проблемы" in text
    r = await client.get("/portal", headers=EN)
    assert "Written support request" in await r.text()


async def test_a_night_request_gets_its_number_and_due_time_in_words(
    client, container, certificates
):
    r = await client.post("/portal", data=portal_form())
    assert r.status == 201
    text = await r.text()
    number = re.search(r"Номер обращения: (\d+)", text).group(1)
    assert "Ответ будет дан до 12:00 вторника, 24 марта." in text
    ticket = await container.tickets.get(int(number))
    assert ticket.source == "portal"
    assert ticket.full_name == "Иванов Иван Иванович"  # Cyrillic round-trips
    assert ticket.due_at == datetime(2026, 3, 24, 12, 0, tzinfo=MOSCOW)
    r = await client.post("/portal", data=portal_form(), headers=EN)
    assert "You will be answered by 12:00 on Tuesday, 24 March." in await r.text()


async def test_missing_fields_are_named_in_russian_and_the_form_keeps_the_values(
    client, certificates
):
    r = await client.post(
        "/portal", data=portal_form(full_name=" ", description="", organisation="ООО «Лютик»")
    )
    assert r.status == 422
    text = await r.text()
    assert 'id="err-full_name"' in text and 'id="err-description"' in text
    assert 'id="err-certificate"' not in text
    assert text.count("Заполните это поле.") == 2
    assert "ООО «Лютик»" in text  # escaped in the value, still there


@pytest.mark.parametrize(
    ("number", "category", "reason"),
    [
        ("999999", "install", "Сертификат с таким номером не найден."),
        ("222222", "install", "Срок действия сертификата истёк."),
        ("333333", "admin", "Сертификат не покрывает выбранную услугу."),
        ("12ab", "install", "Номер сертификата записан неверно."),
    ],
)
async def test_a_refused_certificate_is_told_with_its_reason(
    client, container, certificates, number, category, reason
):
    r = await client.post("/portal", data=portal_form(certificate=number, category=category))
    assert r.status == 422
    text = await r.text()
    assert reason in text and 'id="err-certificate"' in text
    page = await container.tickets.search(container.clock.now())
    assert page.total == 0


async def test_an_unknown_category_is_a_field_error(client, certificates):
    r = await client.post("/portal", data=portal_form(category="hacking"))
    assert r.status == 422 and 'id="err-category"' in await r.text()


async def test_the_portal_is_rate_limited_per_address(client, container, certificates, clock):
    for _ in range(5):
        assert (await client.post("/portal", data=portal_form())).status == 201
    r = await client.post("/portal", data=portal_form())
    assert r.status == 429
    wait = int(r.headers["Retry-After"])
    assert wait >= 1
    assert f"Повторите через {wait} с." in await r.text()
    assert (await container.tickets.search(clock.now())).total == 5
    clock.advance(wait)
    assert (await client.post("/portal", data=portal_form())).status == 201


async def test_a_portal_form_from_another_site_is_refused(client, certificates):
    r = await client.post("/portal", data=portal_form(), headers={"Origin": "http://evil.test"})
    assert r.status == 403


# --- tickets ---------------------------------------------------------------------------------


async def test_an_agent_sees_portal_tickets_and_answers_one_from_its_page(
    client, container, certificates, clock
):
    agent = await signed_in(container, clock, "оператор", "agent")
    await client.post("/portal", data=portal_form())
    r = await client.get("/tickets", headers=agent)
    assert r.status == 200
    text = await r.text()
    assert "Иванов Иван Иванович" in text and "портал" in text
    tid = re.search(r'href="/tickets/(\d+)"', text).group(1)
    r = await client.get("/tickets?source=portal&status=open", headers=agent)
    assert f'href="/tickets/{tid}"' in await r.text()
    r = await client.get("/tickets?source=call", headers=agent)
    assert f'href="/tickets/{tid}"' not in await r.text()

    page = await (await client.get(f"/tickets/{tid}", headers=agent)).text()
    assert "до 12:00 вторника, 24 марта" in page and "ещё не передано" in page
    assert "<audio" not in page
    r = await client.post(
        f"/tickets/{tid}/answer", data={"answer": "  "}, headers=agent, allow_redirects=False
    )
    assert r.status == 422 and "Напишите текст ответа." in await r.text()
    clock.advance(3600)
    r = await client.post(
        f"/tickets/{tid}/answer",
        data={"answer": "Запустите установку от имени администратора."},
        headers=agent,
        allow_redirects=False,
    )
    assert r.status == 303 and r.headers["Location"] == f"/tickets/{tid}?answered=1"
    page = await (await client.get(f"/tickets/{tid}", headers=agent)).text()
    assert "Запустите установку от имени администратора." in page
    assert "здесь" in page and "в срок" in page and 'name="answer"' not in page
    ticket = await container.tickets.get(int(tid))
    assert ticket.answer_source == "here" and ticket.deadline_met
    r = await client.post(f"/tickets/{tid}/answer", data={"answer": "ещё"}, headers=agent)
    assert r.status == 409


async def test_a_voicemail_ticket_shows_the_recording_player(
    client, container, certificates, clock
):
    clock.advance(-5 * 3600)  # Friday 18:30: the line is closed, the caller leaves a message
    audio = b"RIFF\x24\x7d\x00\x00WAVEfmt " + bytes(range(256)) * 40
    tk = await container.voicemail.leave(
        call_id="1700000000.7", caller="+79001112233", number="123456", audio=audio, now=clock.now()
    )
    supervisor = await signed_in(container, clock, "рук", "supervisor")
    page = await (await client.get(f"/tickets/{tk.id}", headers=supervisor)).text()
    assert f'<audio controls preload="none" src="/api/v1/tickets/{tk.id}/recording">' in page
    r = await client.get(f"/api/v1/tickets/{tk.id}/recording", headers=supervisor)
    assert r.status == 200 and await r.read() == audio


async def test_bad_ticket_queries_are_4xx(client, container, clock):
    agent = await signed_in(container, clock, "оператор", "agent")
    assert (await client.get("/tickets?status=nope", headers=agent)).status == 422
    assert (await client.get("/tickets?offset=-1", headers=agent)).status == 422
    assert (await client.get("/tickets/12x", headers=agent)).status == 422
    assert (await client.get("/tickets/999", headers=agent)).status == 404


# --- who may open what -----------------------------------------------------------------------


async def test_agents_cannot_open_admin_or_policy_pages_and_anonymous_ones_log_in(
    client, container, clock
):
    agent = await signed_in(container, clock, "оператор", "agent")
    for path in ("/admin/users", "/admin/tokens", "/admin/certificates", "/policy"):
        assert (await client.get(path, headers=agent)).status == 403, path
        r = await client.get(path, allow_redirects=False)
        assert r.status == 302 and r.headers["Location"].startswith("/login?next="), path
    r = await client.post("/admin/tokens", data={"name": "x", "role": "pbx"}, headers=agent)
    assert r.status == 403
    assert await container.auth.tokens() == []
    r = await client.get("/tickets", allow_redirects=False)
    assert r.status == 302


# --- the policy ------------------------------------------------------------------------------


async def test_supervisors_read_the_policy_and_admins_publish_with_notice(client, container, clock):
    supervisor = await signed_in(container, clock, "рук", "supervisor")
    page = await (await client.get("/policy", headers=supervisor)).text()
    assert "действует" in page and "600 с" in page and "12 раб. ч" in page
    assert 'action="/policy"' not in page
    r = await client.post("/policy", data={"effective_from": "2026-05-01"}, headers=supervisor)
    assert r.status == 403

    admin = await signed_in(container, clock, "админ", "admin")
    page = await (await client.get("/policy", headers=admin)).text()
    # published on 2026-03-20 (Moscow): 15 days' notice, 2026-04-04 at the earliest
    assert 'value="2026-04-04" min="2026-04-04"' in page
    form = {
        "effective_from": "2026-04-03",
        "oral_window_seconds": "900",
        "warning_seconds": "120",
        "written_answer_hours": "12",
        "day_start": "09:00",
        "day_end": "18:00",
        "window_start": "agent_answer",
        "note": "15 минут на устный ответ",
    }
    r = await client.post("/policy", data=form, headers=admin)
    assert r.status == 422
    assert "не ранее 2026-04-04" in await r.text()
    r = await client.post("/policy", data={**form, "oral_window_seconds": "ten"}, headers=admin)
    assert r.status == 422 and "целые числа" in await r.text()
    r = await client.post(
        "/policy",
        data={**form, "effective_from": "2026-04-04"},
        headers=admin,
        allow_redirects=False,
    )
    assert r.status == 303 and r.headers["Location"] == "/policy?done=policy_published"
    page = await (await client.get("/policy?done=policy_published", headers=admin)).text()
    assert "04.04.2026" in page and "запланирована" in page and "900 с" in page
    assert "15 минут на устный ответ" in page
    book = await container.policy.book()
    assert [v.oral_window_seconds for v in book.versions] == [600, 900]


# --- users -----------------------------------------------------------------------------------


async def test_an_admin_adds_disables_enables_and_resets_a_user(client, container, clock):
    admin = await signed_in(container, clock, "админ", "admin")
    form = {
        "login": "ольга",
        "display_name": "Ольга Петрова",
        "role": "agent",
        "password": "секрет-длинный",
        "password2": "секрет-длинный",
        "interfaces": "PJSIP/101, PJSIP/102",
    }
    r = await client.post("/admin/users", data=form, headers=admin, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/admin/users?done=user_added"
    assert (await container.desk.all_interfaces())["ольга"] == ["PJSIP/101", "PJSIP/102"]
    page = await (await client.get("/admin/users?done=user_added", headers=admin)).text()
    assert "Пользователь добавлен." in page and "Ольга Петрова" in page

    r = await client.post("/admin/users", data=form, headers=admin)
    assert r.status == 409 and "Пользователь с таким логином уже есть." in await r.text()
    r = await client.post("/admin/users", data={**form, "login": "петя"}, headers=admin)
    assert r.status == 409 and "PJSIP/101" in (await container.desk.all_interfaces())["ольга"]
    assert "петя" not in [u.login for u in await container.auth.users()]
    r = await client.post(
        "/admin/users", data={**form, "login": "вася", "password2": "другой-пароль"}, headers=admin
    )
    assert r.status == 422 and "Пароли не совпадают." in await r.text()
    r = await client.post(
        "/admin/users",
        data={**form, "login": "вася", "password": "корот", "password2": "корот", "interfaces": ""},
        headers=admin,
        allow_redirects=False,
    )
    assert r.status == 422 and "не короче 8 символов" in await r.text()

    session = await container.auth.open_session("ольга", "секрет-длинный", clock.now())
    olga = {"Cookie": f"cc_session={session.cookie}"}
    assert (await client.get("/agent", headers=olga)).status == 200
    r = await client.post(
        "/admin/users/%D0%BE%D0%BB%D1%8C%D0%B3%D0%B0/disable",
        data={},
        headers=admin,
        allow_redirects=False,
    )
    assert r.status == 303
    assert (await client.get("/agent", headers=olga, allow_redirects=False)).status == 302
    page = await (await client.get("/admin/users", headers=admin)).text()
    assert "отключён" in page.lower() or "Отключён" in page
    r = await client.post(
        "/admin/users/ольга/enable", data={}, headers=admin, allow_redirects=False
    )
    assert r.status == 303
    r = await client.post(
        "/admin/users/ольга/password",
        data={"password": "новый-пароль-1", "password2": "новый-пароль-1"},
        headers=admin,
        allow_redirects=False,
    )
    assert r.status == 303 and r.headers["Location"] == "/admin/users?done=password_set"
    await container.auth.open_session("ольга", "новый-пароль-1", clock.now())
    r = await client.post("/admin/users/никто/disable", data={}, headers=admin)
    assert r.status == 404


# --- tokens ----------------------------------------------------------------------------------


async def test_a_token_is_shown_once_works_and_is_revoked(client, container, clock):
    admin = await signed_in(container, clock, "админ", "admin")
    r = await client.post("/admin/tokens", data={"name": "АТС-1", "role": "pbx"}, headers=admin)
    assert r.status == 201
    text = await r.text()
    token = re.search(r'class="mono token-value" readonly value="(cc_[^"]+)"', text).group(1)
    assert r.headers["Cache-Control"] == "no-store"
    ok = await client.get("/api/v1/ivr/working-time", headers={"Authorization": f"Bearer {token}"})
    assert ok.status == 200
    page = await (await client.get("/admin/tokens", headers=admin)).text()
    assert "АТС-1" in page and token not in page and "действует" in page
    r = await client.post("/admin/tokens", data={"name": "АТС-1", "role": "pbx"}, headers=admin)
    assert r.status == 409 and "Действующий токен с таким именем уже есть" in await r.text()
    r = await client.post("/admin/tokens", data={"name": "x", "role": "agent"}, headers=admin)
    assert r.status == 422
    r = await client.post(
        "/admin/tokens/revoke", data={"name": "АТС-1"}, headers=admin, allow_redirects=False
    )
    assert r.status == 303
    assert await container.auth.tokens() and (await container.auth.tokens())[0].revoked_at
    r = await client.get("/api/v1/ivr/working-time", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 401
    r = await client.post("/admin/tokens/revoke", data={"name": "АТС-1"}, headers=admin)
    assert r.status == 404


# --- certificate import ----------------------------------------------------------------------

HEADER = "number,holder_type,holder_name,organisation,contacts,valid_from,services\n"


def upload(text: str, name: str = "certs.csv") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", text.encode("utf-8"), filename=name, content_type="text/csv")
    return form


async def finished_job(client, headers) -> str:
    """The last import's progress fragment once its job is over."""
    from callcenter.web.pages.admin import JOBS

    jobs = client.server.app[JOBS]
    job = jobs[max(jobs)]
    await asyncio.wait_for(job.task, 60)
    r = await client.get(f"/admin/certificates/jobs/{job.id}/progress", headers=headers)
    assert r.status == 200
    return await r.text()


async def test_a_bad_csv_lists_every_bad_row_and_imports_nothing(client, container, clock):
    admin = await signed_in(container, clock, "админ", "admin")
    text = (
        HEADER
        + "700001,organisation,,ООО «Вектор»,Петров Пётр <+79001234567>,2026-01-01,install\n"
        + "700002,person,Сидоров,,,2026-13-01,\n"
        + "700003,person,Орлова,,,2026-01-01,teleport\n"
    )
    r = await client.post(
        "/admin/certificates", data=upload(text), headers=admin, allow_redirects=False
    )
    assert r.status == 303
    frag = await finished_job(client, admin)
    assert 'data-phase="refused"' in frag and "hx-get" not in frag
    assert "не импортирован: ошибок — 2" in frag
    assert re.search(r'<td class="mono">3</td><td>valid_from .*2026-13-01', frag)
    assert re.search(r'<td class="mono">4</td><td>unknown service teleport', frag)
    assert (await container.registry.lookup("700001", clock.now())).status.value == "UNKNOWN"
    no_file = aiohttp.FormData()
    no_file.add_field("note", "без файла", content_type="text/plain")
    r = await client.post("/admin/certificates", data=no_file, headers=admin)
    assert r.status == 422 and "Выберите файл CSV." in await r.text()


async def test_a_good_csv_is_checked_then_imported_in_the_background_with_progress(
    client, container, clock
):
    admin = await signed_in(container, clock, "админ", "admin")
    rows = "".join(f"{800000 + i},person,Держатель {i},,,2026-01-01,\n" for i in range(1200))
    r = await client.post(
        "/admin/certificates",
        data=upload("\ufeff" + HEADER + rows, "сертификаты.csv"),
        headers=admin,
        allow_redirects=False,
    )
    assert r.status == 303
    location = r.headers["Location"]
    frag = await finished_job(client, admin)
    assert 'data-finished="true"' in frag and 'data-phase="done"' in frag
    assert "hx-get" not in frag
    assert "Импортировано 1200: новых 1200, обновлено 0." in frag
    page = await (await client.get(location, headers=admin)).text()
    assert "Импорт «сертификаты.csv»" in page
    found = await container.registry.lookup("801199", clock.now())
    assert found.status.value == "VALID" and found.certificate.holder_name == "Держатель 1199"
    r = await client.get("/admin/certificates/jobs/99999/progress", headers=admin)
    assert r.status == 404
    listing = await (await client.get("/admin/certificates", headers=admin)).text()
    assert "сертификаты.csv</a> · Готово · 100%" in listing


def test_the_import_job_counts_checking_as_the_first_half():
    from callcenter.web.pages.admin import ImportJob

    job = ImportJob(1, "x.csv", lines=1000)
    assert (job.phase, job.percent) == ("checking", 0)
    job.checked = 500
    assert (job.phase, job.percent) == ("checking", 25)
    job.checked, job.total, job.done = 1000, 1000, 500
    assert (job.phase, job.percent) == ("importing", 75)
    job.created, job.updated = 900, 100
    assert (job.phase, job.percent, job.finished) == ("done", 100, True)
    assert ImportJob(2, "y.csv", 10, errors=[(3, "bad")]).phase == "refused"
