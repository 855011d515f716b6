"""The reports page and the CSV exports over a real socket, on the hand-counted seed of
``test_reports``: the page, the report's CSV and the call log's CSV say the same figures."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.integration.test_pages import PASSWORD, login
from tests.integration.test_reports import NOW, seed

PERIOD = "from=2025-10-27&to=2026-01-13"


@pytest.fixture
async def seeded(container, clock):
    clock.at = NOW
    await seed(container)
    for name, role in (("начальник", "supervisor"), ("оператор", "agent")):
        await container.auth.add_user(name, role, PASSWORD, clock.now())
    return container


@pytest.fixture
async def boss(client, seeded):
    r = await login(client, "начальник")
    assert r.status in (302, 303)
    return client


def rows_of(body: bytes, sep: str) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf"), "no byte-order mark: Excel would misread Cyrillic"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=sep))


async def test_the_page_shows_the_hand_counted_figures_with_links(boss):
    r = await boss.get(f"/supervisor/reports?{PERIOD}&by=week")
    assert r.status == 200
    html = await r.text()
    assert "Отчёты" in html and "рабочих часах" in html  # Russian by default, says how it counts
    assert 'data-key="2025-10-27"' in html and 'data-key="total"' in html
    # the week's abandoned-in-IVR count links to those calls in the history
    assert (
        'href="/supervisor/history?from=2025-10-27&amp;to=2025-11-02&amp;route=abandoned_ivr"'
        in html
    )
    assert "/static/vendor/echarts/echarts.min.js" in html
    # no period given: this month so far (the clock's: January 2026, c10 on the 9th)
    html = await (await boss.get("/supervisor/reports")).text()
    assert 'value="2026-01-01"' in html and 'value="2026-01-13"' in html
    assert 'data-key="2026-01-09"' in html
    r = await boss.post("/lang", data={"lang": "en", "next": "/"}, allow_redirects=False)
    html = await (await boss.get(f"/supervisor/reports?{PERIOD}&by=agent")).text()
    assert "Reports" in html and "No agent" in html and 'data-key="PJSIP/101"' in html


async def test_the_report_csv_agrees_with_the_report(boss, seeded):
    r = await boss.get(f"/supervisor/reports.csv?{PERIOD}&by=week")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = rows_of(await r.read(), ";")
    head = rows[0]
    assert head[0] == "Неделя (с понедельника)" and "Поступило" in head
    assert [row[0] for row in rows[1:]] == ["2025-10-27", "2025-11-03", "2026-01-05", "Итого"]
    total = dict(zip(head, rows[-1], strict=True))
    assert total["Поступило"] == "10" and total["Уровень обслуживания, %"] == "40.0"
    assert total["Медиана ответа, рабочих часов"] == "7.0"
    assert total["Отказы по причинам"] == "Истёк: 1, Неизвестен: 1"
    r = await boss.get(f"/supervisor/reports.csv?{PERIOD}&sep=comma")
    assert rows_of(await r.read(), ",")[0][0] == "День"


async def test_the_call_log_csv_follows_the_filter_and_order(boss):
    r = await boss.get(f"/supervisor/history.csv?{PERIOD}&route=refused&sort=started_at&dir=asc")
    rows = rows_of(await r.read(), ";")
    assert rows[0][0] == "Идентификатор звонка"
    assert [row[0] for row in rows[1:]] == ["c7", "c8"]
    r = await boss.get(f"/supervisor/history.csv?{PERIOD}&sep=comma")
    rows = rows_of(await r.read(), ",")
    ids = [row[0] for row in rows[1:]]
    assert ids == ["c10", "c9", "c8", "c7", "c6", "c5", "c4", "c3", "c2", "c1"]  # newest first
    c1 = dict(zip(rows[0], rows[-1], strict=True))
    assert c1["Начало (Москва)"] == "2025-10-31 10:00:00"
    assert (c1["Ожидание в очереди, с"], c1["Разговор, с"]) == ("10", "300")
    assert c1["Организация"] == "ООО «Ромашка»"  # Cyrillic round-trips


@pytest.mark.parametrize(
    "path",
    [
        "/supervisor/reports?by=month",
        "/supervisor/reports?from=2025-02-30",
        "/supervisor/reports.csv?sep=tab",
        "/supervisor/history.csv?window=late",
        "/supervisor/history.csv?from=yesterday",
    ],
)
async def test_bad_parameters_are_a_4xx_with_a_code(boss, path):
    r = await boss.get(path)
    assert r.status == 422, path


async def test_agents_and_anonymous_visitors_cannot_open_reports_or_exports(client, seeded):
    for path in ("/supervisor/reports", "/supervisor/reports.csv", "/supervisor/history.csv"):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 302 and r.headers["Location"].startswith("/login"), path
    await login(client, "оператор")
    for path in ("/supervisor/reports", "/supervisor/reports.csv", "/supervisor/history.csv"):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 403, path


async def test_a_supervisor_reviews_a_complaint_once(boss, seeded):
    html = await (await boss.get("/supervisor/reviews")).text()
    assert "Жалоба на сотрудника" in html and "Грубость звонящего" in html
    ids = [int(x) for x in re.findall(r'data-review="(\d+)"', html)]
    assert len(ids) == 2
    url = f"/supervisor/reviews/{ids[0]}"
    r = await boss.post(
        url, data={"decision": "upheld", "note": "Подтверждаю"}, allow_redirects=False
    )
    assert r.status == 303 and r.headers["Location"] == f"/supervisor/reviews?done={ids[0]}"
    # recorded once: a second decision is refused, the first stands
    r = await boss.post(url, data={"decision": "dismissed", "note": ""}, allow_redirects=False)
    assert r.status == 409
    rows = await seeded.reviews.list(pending_only=False)
    done = next(x for x in rows if x["id"] == ids[0])
    assert (done["decision"], done["decision_note"], done["reviewed_by"]) == (
        "upheld",
        "Подтверждаю",
        "начальник",
    )
    assert done["reviewed_at"] == NOW
    pending = await (await boss.get("/supervisor/reviews")).text()
    assert f'data-review="{ids[0]}"' not in pending
    everything = await (await boss.get("/supervisor/reviews?all=1")).text()
    assert "Подтверждено" in everything and "начальник" in everything
    for bad, code in (
        ({"decision": "fired", "note": ""}, 422),
        ({"decision": "upheld", "note": "x" * 2001}, 422),
    ):
        r = await boss.post(f"/supervisor/reviews/{ids[1]}", data=bad, allow_redirects=False)
        assert r.status == code, bad
    r = await boss.post("/supervisor/reviews/999", data={"decision": "upheld"})
    assert r.status == 404
    r = await boss.post("/supervisor/reviews/abc", data={"decision": "upheld"})
    assert r.status in (404, 422)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "sort=agent",
        "sort=agent&dir=asc",
        "sort=window_status&dir=asc",
        "route=queued&sort=caller_number",
        "organisation=%D1%80%D0%BE%D0%BC%D0%B0%D1%88%D0%BA%D0%B0&outcome=",  # "ромашка"
        "from=2025-11-01&to=2025-11-05&sort=outcome",
        "agent=PJSIP/102",
    ],
)
async def test_pages_sorting_and_the_csv_agree(boss, seeded, query):
    from urllib.parse import parse_qsl

    from callcenter.services.call_filters import parse_call_filters

    f = parse_call_filters(dict(parse_qsl(query)))
    paged, offset = [], 0
    while True:
        rows, total = await seeded.reports.calls_page(f, 3, offset)
        paged += [r["call_id"] for r in rows]
        offset += 3
        if offset >= total:
            break
    assert len(paged) == total == len(set(paged))
    r = await boss.get("/supervisor/history.csv?" + query)
    exported = [row[0] for row in rows_of(await r.read(), ";")[1:]]
    assert exported == paged


@pytest.mark.parametrize(
    "query",
    [
        "agent=оператор",  # by the agent's login: the calls of their interfaces
        "agent=PJSIP/101&sort=window_status",
        "organisation=%D0%A0%D0%9E%D0%9C%D0%90%D0%A8%D0%9A%D0%90",  # "РОМАШКА", another case
        "sort=outcome",
    ],
)
async def test_the_history_page_and_its_csv_list_the_same_calls_in_the_same_order(
    boss, seeded, clock, query
):
    """One meaning of each filter for the history page and its export (one SQL path)."""
    from urllib.parse import parse_qsl

    from callcenter.services.call_filters import parse_call_filters

    await seeded.desk.set_interfaces("оператор", ["PJSIP/101"], clock.now())
    f = parse_call_filters(dict(parse_qsl(f"{PERIOD}&{query}")))
    page = await seeded.supervisor.history(f, 200, 0)
    shown = [r["call_id"] for r in page.items]
    r = await boss.get(f"/supervisor/history.csv?{PERIOD}&{query}")
    exported = [row[0] for row in rows_of(await r.read(), ";")[1:]]
    assert exported == shown
    if query.startswith("agent="):
        assert shown, "the seeded calls of PJSIP/101 are found"
