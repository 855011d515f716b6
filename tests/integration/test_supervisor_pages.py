"""The supervisor's board, history, call and certificate pages over a real socket, on SQLite
and PostgreSQL (issue 11, board's part).

Calls are recorded as the switch's events at instants of the injected clock; windows warn
and overrun by the scheduler's ``fire_due`` after the clock moves. Filters, paging and sorting
are held against each other on one seeded set; bad filters are 422 pages, never a 500.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from callcenter.domain.certificates import Certificate, Contact, HolderType, Service
from callcenter.domain.errors import ValidationError
from callcenter.services.call_filters import CallFilter, parse_call_filters
from tests.integration.desk_people import PASSWORD, cookie

CERT = "1234567"
OTHER = "7654321"
CALLER = "+79161234567"


@pytest.fixture
async def registry(container, clock):
    await container.registry.import_certificates(
        [
            Certificate(
                number=CERT,
                holder_type=HolderType.ORGANISATION,
                holder_name="Пётр Сидоров",
                organisation="ООО «Ромашка»",
                product="Крипто-Про",
                version="5.0.13000",
                valid_from=date(2026, 1, 1),
                valid_to=date(2026, 12, 31),
                services=(Service.INSTALL, Service.ADMIN),
                contacts=[Contact("Пётр Сидоров", CALLER)],
            ),
            Certificate(
                number=OTHER,
                holder_type=HolderType.PERSON,
                holder_name="Анна <b>Смирнова</b>",
                organisation="",
                product="Крипто-Про",
                version="5.0.13000",
                valid_from=date(2026, 1, 1),
                valid_to=date(2026, 12, 31),
            ),
        ],
        clock.now(),
    )


async def event(container, clock, **body):
    body.setdefault("at", clock.now().isoformat())
    await container.calls.record(body, clock.now())


async def queued(container, clock, call_id, *, cert=CERT, caller=CALLER):
    await event(container, clock, event="call_started", call_id=call_id, caller_number=caller)
    if cert:
        await event(
            container, clock, event="certificate_checked", call_id=call_id, certificate=cert,
            status="VALID", attempt=1,
        )  # fmt: skip
    await event(container, clock, event="queued", call_id=call_id, queue="support")


async def page(client, url, headers) -> tuple[int, str]:
    r = await client.get(url, headers=headers, allow_redirects=False)
    return r.status, await r.text()


def rows_of(html: str, table: str = "history") -> list[str]:
    """The call ids of a table's rows, in the order shown."""
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr data-call="([^"]+)"', body)


# --- the filter parsing ---------------------------------------------------------------------


def test_filters_parse_and_name_each_bad_field():
    f = parse_call_filters(
        {"from": "2026-03-01", "to": "2026-03-17", "route": "abandoned_queue", "dir": "asc"}
    )
    assert f.route == "abandoned_queue" and not f.descending and f.active
    assert f.end - f.start == timedelta(days=17)  # 'to' is inclusive: the next midnight
    assert "route=abandoned_queue" in f.query() and "dir=asc" in f.query()
    again = parse_call_filters(dict(x.split("=", 1) for x in f.query().split("&")))
    assert again == f
    with pytest.raises(ValidationError) as exc:
        parse_call_filters(
            {"from": "вчера", "window": "late", "route": "x", "caller": "abc", "sort": "x"}
        )
    assert exc.value.code == "invalid_query"
    assert set(exc.value.details["fields"]) == {"from", "window", "route", "caller", "sort"}
    with pytest.raises(ValidationError):
        parse_call_filters({"from": "2026-03-17", "to": "2026-03-01"})
    assert not CallFilter().active


# --- the board -------------------------------------------------------------------------------


async def test_the_board_shows_calls_queue_agents_and_tickets_as_they_change(
    client, container, clock, people, registry
):
    boss = people["boss"]
    status, html = await page(client, "/supervisor/board", boss)
    assert status == 200
    assert "Сейчас никто не разговаривает." in html and "В очереди никого нет." in html
    assert 'data-agent="иванова"' in html and "ag-logged_out" not in html

    await queued(container, clock, "c1")
    status, html = await page(client, "/supervisor/board/live", boss)
    queue = html.split('id="queue"', 1)[1].split("</section>", 1)[0]
    assert 'data-call="c1"' in queue and "Пётр Сидоров" in queue

    clock.advance(30)
    await event(container, clock, event="agent_connected", call_id="c1", agent="PJSIP/101")
    _, html = await page(client, "/supervisor/board/live", boss)
    active = html.split('id="active-calls"', 1)[1].split("</section>", 1)[0]
    assert 'data-call="c1"' in active and "Иванова Мария" in active
    assert 'class="win win-open"' in active
    agents = html.split('id="agents"', 1)[1].split("</section>", 1)[0]
    row = agents.split('data-agent="иванова"', 1)[1].split("</tr>", 1)[0]
    assert "ag-in_call" in row
    assert 'data-call="c1"' not in html.split('id="queue"', 1)[1].split("</section>", 1)[0]

    # the warning, then the overrun: the same fragment, rendered again
    win = (await container.calls.get("c1")).window
    clock.advance((win.warn_at - clock.now()).total_seconds() + 1)
    await container.calls.fire_warning("c1", clock.now())  # or the app's own scheduler did
    _, html = await page(client, "/supervisor/board/live", boss)
    assert 'class="win win-warning"' in html
    assert re.search(r'id="n-warning">\s*<span class="tile-value">1<', html)
    clock.advance((win.deadline_at - clock.now()).total_seconds() + 10)  # past the grace
    await container.calls.fire_deadline("c1", clock.now())
    _, html = await page(client, "/supervisor/board/live", boss)
    assert 'class="win win-overrun"' in html
    # the overrun escalated the call: its ticket is due in 12 working hours, not soon
    assert "tk-overdue" not in html

    # a ticket past its due time is breached; the agent pausing shows with the reason
    clock.advance(3 * 86400)
    boss = cookie((await container.auth.open_session("boss", PASSWORD, clock.now())).cookie)
    # the agent paused on the phone (what AMI's QueueMemberPause reports)
    assert await container.desk.on_member_pause("PJSIP/102", True, "обед", clock.now())
    status, html = await page(client, "/supervisor/board/live", boss)
    assert status == 200, html
    tickets = html.split('id="tickets"', 1)[1].split("</section>", 1)[0]
    assert "tk-overdue" in tickets and "просрочено на" in tickets
    agents = html.split('id="agents"', 1)[1].split("</section>", 1)[0]
    row = agents.split('data-agent="петров"', 1)[1].split("</tr>", 1)[0]
    assert "ag-paused" in row and "обед" in row
    # an agent whose sessions all ended (three days on) is logged out
    row = agents.split('data-agent="иванова"', 1)[1].split("</tr>", 1)[0]
    assert "ag-logged_out" in row


async def test_an_agent_is_in_wrap_up_after_the_call_until_done(client, container, clock, people):
    await queued(container, clock, "u1", cert=None)
    await event(container, clock, event="agent_connected", call_id="u1", agent="PJSIP/102")
    await event(container, clock, event="call_ended", call_id="u1", hangup_by="caller")

    async def state() -> str:
        _, html = await page(client, "/supervisor/board/live", people["boss"])
        row = html.split('data-agent="петров"', 1)[1].split("</tr>", 1)[0]
        return re.search(r'class="ag ag-(\w+)"', row).group(1)

    assert await state() == "wrap_up"
    await container.desk.wrapup_done("петров", clock.now())
    assert await state() == "available"


async def test_the_wallboard_shows_todays_compliance(client, container, clock, people):
    for call_id in ("w1", "w2"):
        await queued(container, clock, call_id, cert=None)
        await event(container, clock, event="agent_connected", call_id=call_id, agent="PJSIP/101")
    clock.advance(60)
    await event(container, clock, event="call_ended", call_id="w1", hangup_by="caller")
    status, html = await page(client, "/supervisor/wallboard", people["boss"])
    assert status == 200
    assert re.search(r"100\.0<span class=\"pct\"> %</span>", html)  # one window settled, met
    assert 'class="topbar"' not in html  # no controls on the wall
    assert "2 / 2" in html  # answered / offered today


# --- history ---------------------------------------------------------------------------------


@pytest.fixture
async def seeded(container, clock, people, registry):
    """Eight calls a minute apart: answered by either agent, abandoned in the queue and in the
    IVR, the closed line and a refusal; one resolved, one abusive."""
    ids = []
    for n in range(8):
        call_id = f"h{n}"
        ids.append(call_id)
        cert = CERT if n % 2 == 0 else OTHER
        caller = f"+7916000000{n}"
        await event(container, clock, event="call_started", call_id=call_id, caller_number=caller)
        if n == 6:  # the closed line
            await event(
                container, clock, event="certificate_checked", call_id=call_id,
                certificate=cert, status="CLOSED", attempt=1,
            )  # fmt: skip
            await event(container, clock, event="call_ended", call_id=call_id, hangup_by="system")
        elif n == 7:  # refused: an expired number, the IVR hangs up
            await event(
                container, clock, event="certificate_checked", call_id=call_id,
                certificate=cert, status="EXPIRED", attempt=1,
            )  # fmt: skip
            await event(container, clock, event="call_ended", call_id=call_id, hangup_by="system")
        elif n == 5:  # abandoned in the IVR
            await event(
                container, clock, event="call_ended", call_id=call_id, hangup_by="caller",
                abandoned="ivr",
            )  # fmt: skip
        else:
            await event(
                container, clock, event="certificate_checked", call_id=call_id,
                certificate=cert, status="VALID", attempt=1,
            )  # fmt: skip
            await event(container, clock, event="queued", call_id=call_id, queue="support")
            if n == 4:  # abandoned in the queue
                await event(container, clock, event="call_ended", call_id=call_id)
            else:
                agent = "PJSIP/101" if n in (0, 2) else "PJSIP/102"
                await event(container, clock, event="agent_connected", call_id=call_id, agent=agent)
                await event(container, clock, event="call_ended", call_id=call_id)
        clock.advance(60)
    await container.calls.set_outcome("h0", "resolved", "иванова", clock.now())
    return ids


async def test_history_filters_paging_and_sorting_agree(client, seeded, people):
    boss = people["boss"]
    status, html = await page(client, "/supervisor/history", boss)
    assert status == 200
    assert rows_of(html) == [f"h{n}" for n in range(7, -1, -1)]  # newest first
    assert "Найдено звонков: 8" in html

    async def ids(query: str) -> list[str]:
        status, html = await page(client, "/supervisor/history?" + query, boss)
        assert status == 200, html
        return rows_of(html) if 'id="history"' in html else []

    # queued: reached the queue and was not abandoned there (the reports' rule too)
    assert await ids("route=queued") == ["h3", "h2", "h1", "h0"]
    assert await ids("route=abandoned_queue") == ["h4"]
    assert await ids("route=abandoned_ivr") == ["h5"]
    assert await ids("route=closed") == ["h6"]
    assert await ids("route=refused") == ["h7"]
    assert await ids("agent=иванова") == ["h2", "h0"]
    assert await ids("agent=PJSIP/102") == ["h3", "h1"]
    assert await ids("certificate=" + OTHER) == ["h7", "h3", "h1"]  # h5 hung up before
    assert await ids("organisation=ромашка") == ["h6", "h4", "h2", "h0"]
    assert await ids("caller=0000003") == ["h3"]
    assert await ids("outcome=resolved") == ["h0"]
    assert await ids("window=met") == ["h3", "h2", "h1", "h0"]
    assert await ids("from=2026-03-18") == []
    assert await ids("to=2026-03-16") == []
    assert await ids("from=2026-03-17T11:02&to=2026-03-17T11:04:30") == ["h4", "h3", "h2"]
    # sorting, both ways, ties broken by time: pages of three walk the same order
    # sorting by the interface, both ways, ties by time the same way, no agent last
    assert await ids("sort=agent&dir=asc") == ["h0", "h2", "h1", "h3", "h4", "h5", "h6", "h7"]
    assert await ids("sort=agent") == ["h3", "h1", "h2", "h0", "h7", "h6", "h5", "h4"]
    assert await ids("dir=asc") == [f"h{n}" for n in range(8)]
    assert await ids("sort=outcome&route=queued") == ["h0", "h3", "h2", "h1"]
    # a page past the end is empty, not an error
    assert await ids("route=queued&page=2") == []


async def test_paging_walks_the_same_order_as_one_long_page(client, container, clock, people):
    for n in range(60):
        caller = f"+7495{(n * 37) % 60:07d}"  # numbers in another order than the times
        await event(
            container, clock, event="call_started", call_id=f"p{n:02d}", caller_number=caller
        )
        clock.advance(7)
    for query in ("", "sort=caller_number&dir=asc", "sort=caller_number"):
        _, html = await page(client, f"/supervisor/history?size=100&{query}", people["boss"])
        one = rows_of(html)
        walked = []
        for n in (1, 2, 3):
            _, html = await page(
                client, f"/supervisor/history?size=25&page={n}&{query}", people["boss"]
            )
            walked += rows_of(html)
            assert f"страница {n} из 3" in html
        assert len(one) == 60 and walked == one, query
        numbers = [(int(call_id[1:]) * 37) % 60 for call_id in one]
        if query.endswith("asc"):
            assert numbers == sorted(numbers)
        elif query:
            assert numbers == sorted(numbers, reverse=True)
        else:
            assert one == [f"p{n:02d}" for n in range(59, -1, -1)]


async def test_history_links_keep_the_filter(client, seeded, people):
    _, html = await page(client, "/supervisor/history?route=queued&sort=agent", people["boss"])
    links = re.findall(r'href="(/supervisor/history\?[^"]*)"', html)
    assert any("route=queued" in x and "dir=asc" in x and "sort=agent" in x for x in links)
    assert 'aria-sort="descending"' in html
    assert '<option value="queued" selected>' in html


@pytest.mark.parametrize(
    "query",
    ["from=yesterday", "window=late", "route=nowhere", "size=7", "page=0", "page=x",
     "caller=%3Cscript%3E", "sort=password", "from=2026-03-17&to=2026-03-01",
     "organisation=" + "я" * 101],
)  # fmt: skip
async def test_bad_filters_are_422_pages(client, people, query):
    status, html = await page(client, "/supervisor/history?" + query, people["boss"])
    assert status == 422, html
    assert "invalid_query" in html


# --- a call and a certificate ---------------------------------------------------------------


async def test_a_calls_page_shows_its_whole_timeline_and_ticket(
    client, container, clock, people, registry
):
    await queued(container, clock, "t1")
    clock.advance(20)
    await event(container, clock, event="agent_connected", call_id="t1", agent="PJSIP/101")
    clock.advance(120)
    await container.calls.extend("t1", "сложная установка", "иванова", clock.now(), 300)
    clock.advance(30)
    await container.calls.escalate("t1", "иванова", clock.now())
    clock.advance(10)
    await event(container, clock, event="call_ended", call_id="t1", hangup_by="agent")
    status, html = await page(client, "/supervisor/calls/t1", people["boss"])
    assert status == 200, html
    kinds = re.findall(r'<li class="moment tl-(\w+)', html)
    for kind in (
        "call_started", "certificate_checked", "queued", "agent_connected", "window_opened",
        "window_extended", "ticket_created", "call_ended", "window_deadline", "ticket_due",
    ):  # fmt: skip
        assert kind in kinds, kind
    assert kinds.index("call_started") < kinds.index("queued") < kinds.index("agent_connected")
    assert kinds.index("window_extended") < kinds.index("ticket_created")
    assert "сложная установка" in html and "+5:00" in html
    for span in ("tl-ivr", "tl-queue", "tl-talk"):
        assert f'class="tl-span {span}' in html
    assert "Заявка № " in html and "Пётр Сидоров" in html
    # an agent may not open it, nor an unknown call anyone
    status, _ = await page(client, "/supervisor/calls/t1", people["иванова"])
    assert status == 403
    status, html = await page(client, "/supervisor/calls/nope", people["boss"])
    assert status == 404


async def test_a_certificates_page_shows_holder_coverage_calls_and_tickets(
    client, container, clock, people, registry
):
    await queued(container, clock, "k1", cert=OTHER)
    await event(container, clock, event="agent_connected", call_id="k1", agent="PJSIP/101")
    await container.calls.escalate("k1", "иванова", clock.now())
    status, html = await page(client, "/supervisor/certificates/" + OTHER, people["boss"])
    assert status == 200
    assert "Анна &lt;b&gt;Смирнова&lt;/b&gt;" in html and "<b>Смирнова" not in html
    assert rows_of(html, "cert-calls") == ["k1"]
    assert 'data-ticket="' in html.split('id="cert-tickets"', 1)[1]
    status, html = await page(client, "/supervisor/certificates/" + CERT, people["boss"])
    assert status == 200 and "Установка" in html and "+79161234567" in html
    status, _ = await page(client, "/supervisor/certificates/0000000", people["boss"])
    assert status == 404


# --- who may look ----------------------------------------------------------------------------

PAGES = (
    "/supervisor",
    "/supervisor/board",
    "/supervisor/board/live",
    "/supervisor/wallboard",
    "/supervisor/wallboard/live",
    "/supervisor/history",
    "/supervisor/certificates/1234567",
)


async def test_agents_and_anonymous_visitors_cannot_open_supervisor_pages(client, people):
    for path in PAGES:
        status, _ = await page(client, path, people["иванова"])
        assert status == 403, path
        r = await client.get(path, allow_redirects=False)
        assert r.status == 302 and r.headers["Location"].startswith("/login?next="), path
        status, _ = await page(client, path, people["root"])
        assert status in (200, 302, 404), path


async def test_the_pages_speak_english_too(client, seeded, people):
    headers = {**people["boss"], "Cookie": people["boss"]["Cookie"] + "; cc_lang=en"}
    for path, word in (
        ("/supervisor/board", "Live board"),
        ("/supervisor/wallboard", "oral answers in time today"),
        ("/supervisor/history", "Calls found: 8"),
        ("/supervisor/calls/h0", "Timeline"),
        ("/supervisor/certificates/" + CERT, "Services covered"),
    ):
        status, html = await page(client, path, headers)
        assert status == 200 and word in html, path


async def test_the_pages_keep_to_the_strict_csp(client, seeded, people):
    from tests.integration.test_pages import _Inline

    for path in (*PAGES[1:-1], "/supervisor/calls/h0", "/supervisor/certificates/" + CERT):
        r = await client.get(path, headers=people["boss"])
        assert r.status == 200, path
        assert r.headers["Cache-Control"] == "no-store"
        parser = _Inline()
        parser.feed(await r.text())
        assert not parser.problems, f"{path}: {parser.problems}"


async def test_past_its_count_bound_the_history_says_more_than(
    client, container, clock, people, monkeypatch
):
    import callcenter.adapters.board_sql as board_sql
    import callcenter.web.pages.supervisor as pages

    monkeypatch.setattr(board_sql, "COUNT_BOUND", 30)
    monkeypatch.setattr(pages, "COUNT_BOUND", 30)
    for n in range(60):
        await event(container, clock, event="call_started", call_id=f"m{n:02d}", caller_number="1")
        clock.advance(1)
    _, html = await page(client, "/supervisor/history?size=25", people["boss"])
    assert "Найдено звонков: более 30" in html and 'rel="next"' in html
    assert 'rel="last"' not in html
    _, html = await page(client, "/supervisor/history?size=25&page=3", people["boss"])
    assert rows_of(html) == [f"m{n:02d}" for n in range(9, -1, -1)]  # the end, all the same
    assert 'rel="next"' not in html
