"""Tickets to a real Redmine and their answers back (issue 13).

A session-scoped Redmine (Debian's package on SQLite, ``tests/redmine``) serves every test;
each test's callcenter database gets its own ``ticket_prefix``, so tickets of different tests
(and of the SQLite and PostgreSQL runs) never share a marker. Our clock is injected and set
from Redmine's own clock (its ``Date`` header), never from ours; the outbox and the poller
are driven one step at a time.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.adapters import tables as t
from callcenter.adapters.clock import FixedClock
from callcenter.calendar import MOSCOW
from callcenter.config import ConfigError
from callcenter.domain.certificates import Certificate, Contact, HolderType, luhn_complete
from tests.conftest import ROOT, free_port
from tests.redmine.server import RedmineServer, missing
from tests.wire import wire

pytestmark = pytest.mark.slow
NUMBER = luhn_complete("55000000001")
HOLDER = "Иванова Мария Петровна"
_prefixes = itertools.count(1)


@pytest.fixture(scope="session")
def redmine(tmp_path_factory):
    why = missing()
    if why:
        pytest.skip(why)
    server = RedmineServer(tmp_path_factory.mktemp("redmine"), free_port())
    server.prepare()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def rm_clock(redmine) -> FixedClock:
    """Our clock, an hour behind Redmine's: a ticket received now is answered within time."""
    return FixedClock((await redmine.server_time()) - timedelta(hours=1))


def redmine_settings(settings, redmine, **over):
    return settings.replace(
        helpdesk={
            "kind": "redmine",
            "url": redmine.url,
            "api_key": redmine.info["service_key"],
            "project": redmine.info["project"],
            "tracker": redmine.info["tracker"],
            "answered_status": redmine.info["answered_status"],
            "ticket_prefix": f"t{next(_prefixes)}x{free_port()}",
            "max_backoff_seconds": 60,
            **over,
        }
    )


@pytest.fixture
async def hd(settings, redmine, rm_clock):
    c = bootstrap.build(redmine_settings(settings, redmine), clock=rm_clock)
    await db.upgrade(c.engine)
    now = rm_clock.now()
    today = now.astimezone(MOSCOW).date()
    await c.registry.import_certificates(
        [
            Certificate(
                NUMBER,
                HolderType.ORGANISATION,
                HOLDER,
                "ООО «Ромашка»",
                "Континент-АП",
                "5.0.13000",
                today - timedelta(days=60),
                today + timedelta(days=300),
                contacts=[Contact(HOLDER, "+79001234567")],
            )
        ],
        now,
    )
    yield c
    await c.close()


def marker(c, ticket_id: int) -> str:
    return f"{c.settings.helpdesk.ticket_prefix}-{ticket_id}"


async def portal_ticket(c, text="Не запускается служба после обновления") -> dict:
    tk = await c.tickets.create_from_portal(
        c.clock.now(), full_name=HOLDER, certificate=NUMBER, description=text
    )
    return wire(tk, c)


async def ticket(c, tid: int) -> dict:
    return wire(await c.tickets.get(tid), c)


async def overrun_call(c, clock, call_id: str) -> dict:
    at = clock.now().isoformat()
    for body in (
        {"event": "call_started", "call_id": call_id, "caller_number": "79001234567"},
        {"event": "certificate_checked", "call_id": call_id, "certificate": NUMBER},
        {"event": "queued", "call_id": call_id, "queue": "support"},
        {"event": "agent_connected", "call_id": call_id, "agent": "PJSIP/101"},
    ):
        if body["event"] == "certificate_checked":
            body["status"] = "VALID"
        await c.calls.record({**body, "at": at}, clock.now())
    clock.advance(600 + c.settings.timers.grace_seconds)
    assert await c.scheduler.fire_due() == 1
    return wire(await c.calls.get(call_id), c)["ticket"]


def redmine_instant(text: str) -> str:
    """Redmine's UTC instant as our API renders instants (Moscow, with its offset)."""
    at = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(MOSCOW)
    return at.isoformat()


async def test_an_overrun_call_becomes_exactly_one_issue_with_its_fields(hd, redmine, rm_clock):
    tk = await overrun_call(hd, rm_clock, "1795800000.1")
    assert tk["helpdesk_url"] is None and tk["answer_source"] is None
    assert await hd.outbox.deliver_due() == 1

    (issue,) = await redmine.issues_marked(marker(hd, tk["id"]))
    issue = await redmine.issue(issue["id"])
    assert issue["project"]["name"] == "Техподдержка"
    assert issue["tracker"]["name"] == redmine.info["tracker"]
    due = datetime.fromisoformat(tk["due_at"])
    assert issue["due_date"] == due.astimezone(MOSCOW).date().isoformat()
    assert HOLDER in issue["subject"]
    text = issue["description"]
    for expected in (
        f"Обращение № {tk['id']}",
        f"Срок ответа: {tk['due_at']}",
        f"Сертификат: {NUMBER}",
        "Продукт: Континент-АП, версия 5, сборка 0.13000",
        "услуги: install, admin, kit_restore, recovery, build_update",
        "Звонок 1795800000.1 с номера 79001234567, оператор PJSIP/101",
        "Переведено в письменную форму: overrun",
    ):
        assert expected in text, (expected, text)
    url = f"{redmine.url}/issues/{issue['id']}"
    assert (await ticket(hd, tk["id"]))["helpdesk_url"] == url

    # the delivery's answer is lost and the message is sent again: the lookup finds the issue
    async with hd.engine.begin() as conn:
        await conn.execute(update(t.outbox).values(delivered_at=None))
    assert await hd.outbox.deliver_due() == 1
    assert len(await redmine.issues_marked(marker(hd, tk["id"]))) == 1
    assert (await ticket(hd, tk["id"]))["helpdesk_url"] == url


async def test_a_reply_in_redmine_is_the_answer_at_redmines_time(hd, redmine, rm_clock):
    fresh = await portal_ticket(hd, "Вопрос, на который ответят в срок")
    status_only = await portal_ticket(hd, "Вопрос, закрытый сменой статуса")
    rm_clock.advance(-30 * 86400)  # a request received a month ago: its 12 working hours are up
    late = await portal_ticket(hd, "Вопрос, на который ответят поздно")
    rm_clock.advance(30 * 86400)
    assert await hd.outbox.deliver_due() == 3
    issues = {
        tk["id"]: (await redmine.issues_marked(marker(hd, tk["id"])))[0]["id"]
        for tk in (fresh, status_only, late)
    }
    assert await hd.answers.poll_once() == 0  # nothing answered yet

    # our own user's note (a withdrawal, say) is not an answer; a private note is not either
    await redmine.api(
        "PUT",
        f"/issues/{issues[fresh['id']]}.json",
        {"issue": {"notes": "служебная заметка"}},
        key=redmine.info["service_key"],
    )
    await redmine.reply(issues[fresh["id"]], "внутреннее", private_notes=True)
    assert await hd.answers.poll_once() == 0

    reply = await redmine.reply(issues[fresh["id"]], "Перезапустите службу «Агент» — помогло?")
    late_reply = await redmine.reply(issues[late["id"]], "Извините за задержку.")
    statuses = await redmine.api("GET", "/issue_statuses.json")
    answered_id = next(s["id"] for s in statuses["issue_statuses"] if s["name"] == "Отвечена")
    moved = await redmine.reply(issues[status_only["id"]], "", status_id=answered_id)

    noticed = rm_clock.now() + timedelta(hours=5)  # we look much later than they answered
    rm_clock.at = noticed
    assert await hd.answers.poll_once() == 3

    got = await ticket(hd, fresh["id"])
    assert got["answered_at"] == redmine_instant(reply["created_on"])
    assert got["answer"] == "Перезапустите службу «Агент» — помогло?"
    assert got["answer_source"] == "helpdesk" and got["status"] == "answered"
    assert got["deadline_met"] is True
    assert got["helpdesk_url"] == f"{redmine.url}/issues/{issues[fresh['id']]}"
    got_late = await ticket(hd, late["id"])
    assert got_late["answered_at"] == redmine_instant(late_reply["created_on"])
    assert got_late["deadline_met"] is False
    got_moved = await ticket(hd, status_only["id"])
    assert got_moved["answered_at"] == redmine_instant(moved["created_on"])
    assert got_moved["answer"] == "Статус: Отвечена"

    # later replies and later polls change nothing: the first answer stands
    await redmine.reply(issues[fresh["id"]], "Ещё одно сообщение")
    assert await hd.answers.poll_once() == 0
    assert await ticket(hd, fresh["id"]) == got
    # an answer recorded here is refused again, and the helpdesk's stays
    with pytest.raises(Exception, match="answered already"):
        await hd.tickets.answer(fresh["id"], "ответ здесь", rm_clock.now())


async def test_redmine_down_for_hours_loses_nothing_and_doubles_nothing(hd, redmine, rm_clock):
    redmine.stop()
    try:
        tk = await portal_ticket(hd, "Обращение, пока Redmine лежит")
        assert await hd.outbox.deliver_due() == 0
        assert hd.outbox.failures == 1
        gauges = await hd.metrics.render()
        assert b"callcenter_outbox_backlog 1.0" in gauges
        for _ in range(3):  # hours of retries, each refused
            rm_clock.advance(3600)
            assert await hd.outbox.deliver_due() == 0
        with pytest.raises(OSError):
            await hd.answers.poll_once()
    finally:
        redmine.start()
    rm_clock.advance(3600)
    assert await hd.outbox.deliver_due() == 1
    assert await hd.outbox.deliver_due() == 0
    (issue,) = await redmine.issues_marked(marker(hd, tk["id"]))
    assert await hd.answers.poll_once() == 0
    async with hd.engine.connect() as conn:
        synced = (await conn.execute(select(t.helpdesk_sync))).mappings().one()
    assert synced["last_success_at"] == rm_clock.now()

    # answered in Redmine, which then goes down before we look
    reply = await redmine.reply(issue["id"], "Ответ, данный до отключения")
    redmine.stop()
    try:
        rm_clock.advance(4 * 3600)
        with pytest.raises(OSError):
            await hd.answers.poll_once()
        async with hd.engine.connect() as conn:
            after = (await conn.execute(select(t.helpdesk_sync))).mappings().one()
        assert after["cursor"] == synced["cursor"]  # a failed sync moves nothing
        assert after["last_success_at"] == synced["last_success_at"]
        assert (await ticket(hd, tk["id"]))["answered_at"] is None
    finally:
        redmine.start()
    rm_clock.advance(3600)
    assert await hd.answers.poll_once() == 1
    got = await ticket(hd, tk["id"])
    assert got["answered_at"] == redmine_instant(reply["created_on"])  # Redmine's, not ours
    assert got["deadline_met"] is True
    assert len(await redmine.issues_marked(marker(hd, tk["id"]))) == 1
    metrics = (await hd.metrics.render()).decode()
    assert "callcenter_outbox_backlog 0.0" in metrics
    stamp = re.search(r"^callcenter_helpdesk_last_sync_timestamp_seconds (\S+)$", metrics, re.M)
    assert float(stamp.group(1)) == rm_clock.now().timestamp()


async def test_an_attachment_goes_with_the_issue(hd, redmine, rm_clock, tmp_path):
    recording = tmp_path / "сообщение.wav"
    recording.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    tk = await portal_ticket(hd, "Голосовое сообщение")
    async with hd.uow() as uow:
        payload = json.loads((await uow.session.execute(select(t.outbox.c.payload))).scalar_one())
    payload["attachments"] = [{"path": str(recording), "content_type": "audio/wav"}]
    where = await hd.helpdesk.deliver("ticket.created", f"ticket-{tk['id']}", payload)
    issue = await redmine.issue(where.ref)
    (att,) = issue["attachments"]
    assert att["filename"] == "сообщение.wav"
    assert att["filesize"] == recording.stat().st_size
    assert att["content_type"] == "audio/wav"
    # the same delivery again finds the issue and uploads nothing more
    again = await hd.helpdesk.deliver("ticket.created", f"ticket-{tk['id']}", payload)
    assert again == where
    assert len((await redmine.issue(where.ref))["attachments"]) == 1


async def test_start_refuses_a_project_or_tracker_redmine_does_not_have(settings, redmine):
    from callcenter.serve import prepare

    bad = redmine_settings(settings, redmine, project="no-such-project")
    with pytest.raises(ConfigError, match="project: 'no-such-project': no such project"):
        await prepare(bad)
    bad = redmine_settings(settings, redmine, tracker="Ошибка")
    with pytest.raises(ConfigError, match="tracker: 'Ошибка' is not enabled in project support"):
        await prepare(bad)


def test_helpdesk_check_says_exactly_what_is_missing(redmine, tmp_path):
    env = {
        "CALLCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cc.sqlite3",
        "CALLCENTER_HELPDESK_KIND": "redmine",
        "CALLCENTER_HELPDESK_URL": redmine.url,
        "CALLCENTER_HELPDESK_API_KEY": redmine.info["service_key"],
        "CALLCENTER_HELPDESK_PROJECT": "support",
        "CALLCENTER_HELPDESK_TRACKER": redmine.info["tracker"],
        "CALLCENTER_HELPDESK_ANSWERED_STATUS": "Отвечена",
        "PATH": "/usr/bin:/bin",
    }

    def check(**over):
        return subprocess.run(
            [sys.executable, "-m", "callcenter.cli", "helpdesk", "check"],
            env={**env, **over},
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )

    good = check()
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.splitlines()[-1] == "helpdesk: ready"
    assert "ok       tracker: Поддержка" in good.stdout

    bad = check(
        CALLCENTER_HELPDESK_TRACKER="Ошибка",
        CALLCENTER_HELPDESK_ANSWERED_STATUS="Answered",
        CALLCENTER_HELPDESK_TICKET_FIELD="Номер заявки",
    )
    assert bad.returncode == 1
    lines = [x for x in bad.stdout.splitlines() if x.startswith("MISSING")]
    assert lines == [
        "MISSING  tracker: 'Ошибка' is not enabled in project support (enabled: Bug, Feature, "
        "Support, Поддержка)",
        "MISSING  answered_status: no status 'Answered' (known: New, In Progress, Resolved, "
        "Feedback, Closed, Rejected, Новая, Отвечена, Закрыта)",
        "MISSING  ticket_field: no issue custom field 'Номер заявки' (create one: format Text, "
        "'Used as a filter', for all projects, for the tracker)",
    ]
    assert bad.stdout.splitlines()[-1] == "helpdesk: 3 thing(s) missing"

    key = check(CALLCENTER_HELPDESK_API_KEY="0" * 40)
    assert key.returncode == 1
    assert "MISSING  api_key: refused by Redmine" in key.stdout
    project = check(CALLCENTER_HELPDESK_PROJECT="nope")
    assert "MISSING  project: 'nope': no such project (HTTP 404)" in project.stdout
    down = check(CALLCENTER_HELPDESK_URL=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1
    assert "MISSING  url: cannot be reached (ClientConnectorError" in down.stdout


async def test_a_withdrawn_ticket_is_noted_on_its_issue(hd, redmine, rm_clock):
    started = rm_clock.now()
    tk = await overrun_call(hd, rm_clock, "1795800000.9")
    assert await hd.outbox.deliver_due() == 1
    (issue,) = await redmine.issues_marked(marker(hd, tk["id"]))
    # the call's end in time becomes known late: the ticket is withdrawn, the issue told so
    end = {"event": "call_ended", "call_id": "1795800000.9", "hangup_by": "caller"}
    await hd.calls.record(
        {**end, "at": (started + timedelta(seconds=300)).isoformat()}, rm_clock.now()
    )
    got = await ticket(hd, tk["id"])
    assert got["status"] == "withdrawn"
    assert await hd.outbox.deliver_due() == 1
    journals = (await redmine.issue(issue["id"]))["journals"]
    assert [j["notes"] for j in journals] == [f"Обращение отозвано: {got['withdrawn_reason']}"]
    assert journals[0]["user"]["id"] == redmine.info["service_id"]
    assert await hd.answers.poll_once() == 0  # our own note is no answer
    assert (await ticket(hd, tk["id"]))["answered_at"] is None
