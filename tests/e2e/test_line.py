"""Issue 12: no caller stranded, none misrouted, over both transports with the AGI test peer.

Each test names the item of the issue it holds. ``process``: the real
``agi_scripts/collect_certificate.py`` subprocess against the peer; ``fastagi``: the peer over
real TCP to the FastAGI server answering in-process.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

import pytest

from callcenter.adapters import db
from callcenter.adapters.repositories import CertificateReader
from callcenter.calendar import MOSCOW
from callcenter.telephony.fastagi import fastagi_server
from tests.agi_peer import (
    Caller,
    Dtmf,
    FakeAsterisk,
    PeerOptions,
    Speak,
    Timeout,
    run_fastagi,
    run_process_agi,
)
from tests.conftest import ROOT
from tests.e2e.conftest import OTHER, VALID, agi_env, free_port, local_calendar_env

SOUNDS = PeerOptions(sound_patterns=("callcenter/*", "silence/*", "digits/*"))
SCRIPT = ROOT / "agi_scripts" / "collect_certificate.py"
SATURDAY_NOON = datetime(2026, 3, 21, 12, 0, tzinfo=MOSCOW)


def routed(result, route, status):
    assert result.variables.get("CC_ROUTE") == route, result.timeline
    assert result.variables.get("CC_CERT_STATUS") == status, result.timeline


def cut_database(container) -> None:
    """Point the container at a database that refuses every connection (an outage)."""
    dead = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    container.engine = db.create_engine(dead)
    container.sessions.configure(bind=container.engine)
    container.registry.reader = CertificateReader(dead)
    container.registry._cache.clear()
    container.policy._book = None


# --- item 2: the local calendar decides when the service cannot ------------------------------


async def test_service_down_closed_day_process_agi(container, registry_data, tmp_path):
    """The service is not running, the day is a day off: CLOSED from the local calendar, not
    UNVERIFIED into the queue (the failed call_started report no longer skips the question)."""
    env = agi_env(f"http://127.0.0.1:{free_port()}", "x", tmp_path)
    env |= local_calendar_env(tmp_path, open_now=False)
    res = await asyncio.to_thread(
        run_process_agi, [SCRIPT], Caller(actions=[Timeout()]), options=SOUNDS,
        extra_env=env,
    )  # fmt: skip
    routed(res, "CLOSED", "CLOSED")
    assert any("callcenter/closed" in c for c in res.commands)
    assert not any("enter-number" in c for c in res.commands)  # only the message is offered


async def test_database_down_closed_day_fastagi(container, registry_data, clock):
    clock.at = SATURDAY_NOON
    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await container.engine.dispose()
        cut_database(container)
        res = await run_fastagi(
            "127.0.0.1", port, "collect_certificate", Caller(actions=[Dtmf(VALID + "#")]),
            options=SOUNDS,
        )  # fmt: skip
    routed(res, "CLOSED", "CLOSED")
    say = next(c for c in res.commands if c.startswith("SAY DATETIME"))
    monday = int(datetime(2026, 3, 23, 9, 0, tzinfo=MOSCOW).timestamp())
    assert say.split()[2] == str(monday)


async def test_database_down_working_hours_fastagi_still_queues(container, registry_data):
    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await container.engine.dispose()
        cut_database(container)
        res = await run_fastagi(
            "127.0.0.1", port, "collect_certificate", Caller(actions=[Dtmf(VALID + "#")]),
            options=SOUNDS,
        )  # fmt: skip
    routed(res, "QUEUE", "UNVERIFIED")


@pytest.fixture(params=["process", "fastagi"])
async def dial(request, container, client, pbx_token, registry_data, tmp_path):
    """dial(caller, options) -> PeerResult over the transport under test."""
    url = str(client.make_url("/")).rstrip("/")
    env = agi_env(url, pbx_token, tmp_path)

    async def call(caller, options=SOUNDS, script="collect_certificate", extra_env=None):
        if request.param == "process":
            return await asyncio.to_thread(
                run_process_agi,
                [ROOT / "agi_scripts" / f"{script}.py"],
                caller,
                options=options,
                extra_env={**env, **(extra_env or {})},
            )
        async with fastagi_server(container, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            return await run_fastagi("127.0.0.1", port, script, caller, options=options)

    return call


# --- item 4: digits typed ahead are kept -----------------------------------------------------

#: the welcome prompt as long as on the real switch (4.4 s at 8 kHz)
REAL_WELCOME = PeerOptions(
    sound_patterns=SOUNDS.sound_patterns, sound_durations={"callcenter/welcome": 35200}
)
TYPED_OVER_WELCOME = "4000000000000002#"


def test_peer_reproduces_fact_16_digits_lost_in_a_prompt_without_escape_digits():
    """What the real switch did to the old dialogue: 2 s into a 4.4 s welcome the caller types
    16 digits and #; the following GET DATA gets only 000000002."""
    peer = FakeAsterisk(
        Caller(actions=[Dtmf(TYPED_OVER_WELCOME, during="callcenter/welcome", at_ms=2000)]),
        REAL_WELCOME,
    )
    assert peer.on_command('STREAM FILE callcenter/welcome ""').reply == [
        "200 result=0 endpos=35200"
    ]
    got = peer.on_command("GET DATA callcenter/enter-number 7000 20").reply
    assert got == ["200 result=000000002"]


def test_peer_ends_a_prompt_with_escape_digits_at_the_first_key():
    peer = FakeAsterisk(
        Caller(actions=[Dtmf(TYPED_OVER_WELCOME, during="callcenter/welcome", at_ms=2000)]),
        REAL_WELCOME,
    )
    reply = peer.on_command('STREAM FILE callcenter/welcome "0123456789*"').reply
    assert reply == [f"200 result={ord('4')} endpos=16000"]
    assert peer.on_command('GET DATA "" 7000 19').reply == ["200 result=000000000000002"]


async def test_number_typed_over_the_welcome_is_kept(dial, container):
    typed = Dtmf(VALID + "#", during="callcenter/welcome", at_ms=2000)
    res = await dial(Caller(caller_id="79990000000", actions=[typed]), REAL_WELCOME)
    routed(res, "QUEUE", "VALID")
    assert res.variables["CC_CERT_NUMBER"] == VALID
    assert 'STREAM FILE callcenter/welcome "0123456789*"' in res.commands
    # the key that ended the welcome is fed into a collection without a prompt
    assert [c for c in res.commands if c.startswith("GET DATA")] == ['GET DATA "" 7000 19']


async def test_number_typed_over_the_offer_to_a_contact_is_kept(dial):
    """A caller whose phone is a certificate's contact types another number while the offer
    plays: every digit is kept and the offer is not answered by them."""
    typed = Dtmf(OTHER + "#", during="callcenter/offer-cert-ending", at_ms=500)
    res = await dial(Caller(caller_id="89001112233", actions=[typed]))
    routed(res, "QUEUE", "VALID")
    assert res.variables["CC_CERT_NUMBER"] == OTHER
    assert not any("offer-press-1" in c for c in res.commands)


async def test_number_started_at_the_offers_question_is_kept(dial):
    """A key other than 1 or 2 at the offer's question is the first digit of a number."""
    res = await dial(
        Caller(caller_id="89001112233", actions=[Dtmf("5550001#"), Timeout(), Timeout()])
    )
    routed(res, "REFUSED", "UNKNOWN")
    assert res.variables["CC_CERT_NUMBER"] == "5550001"  # 5 was the question's answer


async def test_number_typed_over_the_retry_prompts_is_kept(dial, container):
    res = await dial(
        Caller(
            caller_id="79990000001",
            actions=[Dtmf("5550001#"), Dtmf(VALID + "#", during="callcenter/try-again")],
        )
    )
    routed(res, "QUEUE", "VALID")
    checks = [
        e.data["status"]
        for e in await container.calls.events(res.variables["CC_CALL_ID"])
        if e.event == "certificate_checked"
    ]
    assert checks == ["UNKNOWN", "VALID"]


async def test_a_caller_who_waits_hears_every_prompt(dial):
    res = await dial(Caller(caller_id="79990000002", actions=[Timeout(), Dtmf(VALID + "#")]))
    routed(res, "QUEUE", "VALID")
    assert [c for c in res.commands if c.startswith("GET DATA")] == [
        "GET DATA callcenter/enter-number 7000 20"
    ] * 2


# --- item 3: AMI takes only the support line's calls -----------------------------------------


def _ami(*lines: tuple[str, str]):
    from callcenter.adapters.ami_codec import AmiMessage

    return AmiMessage(lines)


def test_ami_takes_queue_events_of_the_lines_queues_only():
    from callcenter.adapters.ami_events import SupportLine

    line = SupportLine(["support"])
    join = [("Event", "QueueCallerJoin"), ("Linkedid", "1.1"), ("Uniqueid", "1.1")]
    assert line.take(_ami(*join, ("Queue", "support")))["event"] == "queued"
    assert line.take(_ami(*join, ("Queue", "sales"))) is None
    connect = [("Event", "AgentConnect"), ("Linkedid", "1.1"), ("Interface", "PJSIP/101")]
    assert line.take(_ami(*connect, ("Queue", "sales"))) is None
    assert line.take(_ami(*connect, ("Queue", "support")))["event"] == "agent_connected"


def test_ami_takes_a_hangup_only_of_a_marked_or_queued_call():
    from callcenter.adapters.ami_events import SupportLine

    line = SupportLine(["support"])
    internal = _ami(
        ("Event", "Hangup"), ("Uniqueid", "2.1"), ("Linkedid", "2.1"), ("Cause", "16"),
        ("ChanVariable", "CC_CALL_ID="),
    )  # fmt: skip
    assert line.take(internal) is None  # an internal call: never entered the line
    marked = _ami(
        ("Event", "Hangup"), ("Uniqueid", "3.1"), ("Linkedid", "3.1"), ("Cause", "16"),
        ("ChanVariable", "CC_CALL_ID=3.1"),
    )  # fmt: skip
    assert line.take(marked) == {"event": "call_ended", "call_id": "3.1", "source": "ami",
                                 "cause": "16"}  # fmt: skip
    line.take(_ami(("Event", "QueueCallerJoin"), ("Linkedid", "4.1"), ("Queue", "support")))
    unmarked = _ami(("Event", "Hangup"), ("Uniqueid", "4.1"), ("Linkedid", "4.1"))
    assert line.take(unmarked)["call_id"] == "4.1"  # no channelvars, but it joined the line


def test_the_dialplan_marks_the_call_before_anything_else_and_ami_reports_the_mark():
    conf = (ROOT / "config/asterisk/extensions.conf").read_text()
    main = conf.split("[cc-main]", 1)[1]
    assert main.index("Set(CC_CALL_ID=${CHANNEL(linkedid)})") < main.index("AGI(")
    manager = (ROOT / "config/asterisk/manager.conf").read_text()
    assert "\nchannelvars = CC_CALL_ID\n" in manager


# --- item 6: [ivr] language, and * for the other language ------------------------------------


async def test_a_caller_presses_star_for_english(dial):
    star = Dtmf("*", during="callcenter/other-language", at_ms=300)
    res = await dial(Caller(caller_id="79990000003", actions=[star, Dtmf(VALID + "#")]))
    routed(res, "QUEUE", "VALID")
    switch = res.commands.index("SET VARIABLE CHANNEL(language) en")
    assert switch < res.commands.index("GET DATA callcenter/enter-number 7000 20")
    assert res.channel_variables.get("CHANNEL(language)", "en") == "en"


async def test_without_star_the_line_keeps_its_language(dial):
    res = await dial(Caller(caller_id="79990000004", actions=[Dtmf(VALID + "#")]))
    routed(res, "QUEUE", "VALID")
    assert not any("CHANNEL(language)" in c for c in res.commands)  # already ru
    assert 'STREAM FILE callcenter/other-language "0123456789*"' in res.commands


@pytest.mark.parametrize("transport", ["process", "fastagi"])
async def test_ivr_language_setting_is_applied(container, client, pbx_token, registry_data,
                                               tmp_path, transport):  # fmt: skip
    container.settings = container.settings.replace(ivr={"language": "en"})
    caller = Caller(caller_id="79990000005", actions=[Dtmf(VALID + "#")])
    if transport == "process":
        env = agi_env(str(client.make_url("/")).rstrip("/"), pbx_token, tmp_path)
        env["CALLCENTER_IVR_LANGUAGE"] = "en"
        res = await asyncio.to_thread(
            run_process_agi, [SCRIPT], caller, options=SOUNDS, extra_env=env
        )
    else:
        async with fastagi_server(container, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            res = await run_fastagi("127.0.0.1", port, "collect_certificate", caller,
                                    options=SOUNDS)  # fmt: skip
    routed(res, "QUEUE", "VALID")
    assert res.commands.index("SET VARIABLE CHANNEL(language) en") < res.commands.index(
        'STREAM FILE callcenter/welcome "0123456789*"'
    )


# --- item 7: hangup_by with Local-channel queue members --------------------------------------

CALLER_ID = "1795482833.0"


def _hangup_handler(**variables) -> Caller:
    """The caller's hangup handler after talking to a Local-channel member (fact 17: the
    peer leaves CHANNEL(hangupsource) empty, as Asterisk does there)."""
    return Caller(
        channel="Local/7000@support-line-00000001;2",
        uniqueid=CALLER_ID,
        dead=True,
        context="cc-hangup",
        variables={"HANGUPCAUSE": "16", "CC_ROUTE": "QUEUE",
                   "MEMBERINTERFACE": "Local/agent1@agents/n", **variables},
    )  # fmt: skip


async def _ended(container):
    [event] = [e for e in await container.calls.events(CALLER_ID) if e.event == "call_ended"]
    return event.data


async def test_local_member_agent_hung_up_first(dial, container):
    await dial(_hangup_handler(**{"SHARED(CC_AGENT_GONE)": "1"}), script="call_ended")
    assert (await _ended(container))["hangup_by"] == "agent"


async def test_local_member_caller_hung_up_first(dial, container):
    res = await dial(_hangup_handler(), script="call_ended")
    assert "GET FULL VARIABLE ${SHARED(CC_AGENT_GONE)}" in res.commands
    assert (await _ended(container))["hangup_by"] == "caller"


async def test_sip_member_hangupsource_still_decides(dial, container):
    res = await dial(
        _hangup_handler(**{"MEMBERINTERFACE": "PJSIP/101",
                           "CHANNEL(hangupsource)": "PJSIP/101-0000002a"}),
        script="call_ended",
    )  # fmt: skip
    assert (await _ended(container))["hangup_by"] == "agent"
    assert not any("SHARED" in c for c in res.commands)


def test_the_agent_channel_gets_the_hangup_handler_that_marks_the_caller():
    conf = (ROOT / "config/asterisk/extensions.conf").read_text()
    agent = conf.split("\n[cc-agent-connected]", 1)[1].split("\n[", 1)[0]
    assert "Set(CHANNEL(hangup_handler_push)=cc-agent-hangup,s,1(${ARG2}))" in agent
    assert "Set(SHARED(CC_AGENT_GONE,${ARG1})=1)" in conf.split("[cc-agent-hangup]", 1)[1]
    assert '"cc-agent-connected,${CHANNEL(linkedid)},${CHANNEL}"' in conf


# --- item 8: a sample pjsip.conf --------------------------------------------------------------


def _pjsip_objects(text: str) -> list[tuple[str, dict[str, str]]]:
    """res_pjsip's sorcery reading: every [name](templates) is one object; a template's
    (``(!)``) keys are inherited; repeated section names are separate objects."""
    templates: dict[str, dict[str, str]] = {}
    objects: list[tuple[str, dict[str, str]]] = []
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        head = re.fullmatch(r"\[([^\]]+)\](?:\(([^)]*)\))?", line)
        if head:
            name, inherit = head.group(1), [t.strip() for t in (head.group(2) or "").split(",")]
            current = {}
            for t in inherit:
                if t and t != "!":
                    current.update(templates[t])
            if "!" in inherit:
                templates[name] = current
            else:
                objects.append((name, current))
            continue
        key, _, value = line.partition("=")
        assert current is not None and _, line
        current[key.strip()] = value.strip()
    return objects


def test_sample_pjsip_conf_has_the_trunk_and_the_queue_members():
    conf = ROOT / "config/asterisk"
    objects = _pjsip_objects((conf / "pjsip.conf").read_text())
    by_type: dict[str, dict[str, dict[str, str]]] = {}
    for name, fields in objects:
        by_type.setdefault(fields.get("type", "?"), {})[name] = fields
    assert "?" not in by_type, by_type.get("?")
    endpoints = by_type["endpoint"]
    # the trunk: identified by address, into the line's entry context, RFC 4733 DTMF
    trunk = endpoints["provider"]
    assert trunk["context"] in ("support-line", "support-line-fastagi")
    assert f"[{trunk['context']}]" in (conf / "extensions.conf").read_text()
    assert trunk["dtmf_mode"] == "rfc4733"
    assert by_type["identify"]["provider"]["endpoint"] == "provider"
    assert by_type["identify"]["provider"]["match"]
    # every queue member PJSIP/N of queues.conf is an endpoint with auth, aor and rfc4733
    members = re.findall(r"^member\s*=>\s*PJSIP/(\w+)", (conf / "queues.conf").read_text(), re.M)
    assert members == ["101", "102"]
    for agent in members:
        assert endpoints[agent]["dtmf_mode"] == "rfc4733"
        assert by_type["auth"][agent]["username"] == agent
        assert agent in by_type["aor"]
        assert endpoints[agent]["auth"] == endpoints[agent]["aors"] == agent
    assert by_type["transport"]["transport-udp"]["protocol"] == "udp"


# --- item 5: FastAGI down, the local process AGI keeps the call's record ---------------------


def test_fastagi_failure_runs_the_scripts_locally_in_the_dialplan():
    from tests.unit.test_asterisk_config import Asterisk, build_dialplan, load

    plan = build_dialplan(load("extensions.conf"))
    tries: list[str] = []

    def agi(chan, name, args):
        tries.append(name)
        over_fastagi = tries.count(name) == 1
        if over_fastagi:
            return "FAILURE"  # connection refused: the service is down (fact 9)
        if name == "collect_certificate":
            chan.variables.update(CC_ROUTE="QUEUE", CC_CERT_STATUS="UNVERIFIED")
        return "SUCCESS"

    run = Asterisk(plan, agi).call("support-line-fastagi")
    local = "/usr/local/share/callcenter/agi_scripts/"
    assert run.agi_targets == [
        "agi://127.0.0.1:4573/collect_certificate",
        local + "collect_certificate.py",
        "agi://127.0.0.1:4573/agent_connected",
        local + "agent_connected.py",
        "agi://127.0.0.1:4573/call_ended",
        local + "call_ended.py",
    ]
    assert run.queued  # the caller reached the queue as the local script decided


def test_process_agi_entry_runs_each_script_once():
    from tests.unit.test_asterisk_config import Asterisk, build_dialplan, load

    plan = build_dialplan(load("extensions.conf"))
    run = Asterisk(plan, lambda chan, name, args: "FAILURE").call("support-line")
    assert [t.rsplit("/", 1)[1] for t in run.agi_targets] == [
        "collect_certificate.py", "agent_connected.py", "call_ended.py"
    ]  # fmt: skip


# --- the closed line that takes a message ----------------------------------------------------


@pytest.fixture
def settings(settings, tmp_path):
    """Asterisk's recording folder and the service's recordings folder in the test's own."""
    (tmp_path / "asterisk-vm").mkdir()
    return settings.replace(
        voicemail={"record_dir": str(tmp_path / "asterisk-vm"), "dir": str(tmp_path / "kept")}
    )


@pytest.fixture
def closed_dial(dial, clock, tmp_path):
    """dial() on a Saturday at noon, the process AGI told where Asterisk records."""
    clock.at = SATURDAY_NOON

    async def call(caller, options=SOUNDS):
        env = {"CALLCENTER_VOICEMAIL_RECORD_DIR": str(tmp_path / "asterisk-vm")}
        return await dial(caller, options, extra_env=env)

    return call


async def _tickets(container, clock):
    page = await container.tickets.search(clock.now(), source="voicemail")
    return page.items


async def test_a_message_left_on_the_closed_line_becomes_a_ticket(
    closed_dial, container, client, clock, supervisor_token, pbx_token, tmp_path
):
    caller = Caller(
        caller_id="79990000010",
        actions=[Dtmf("1"), Dtmf(VALID + "#"), Speak(5000, "hash")],
    )
    res = await closed_dial(caller)
    routed(res, "CLOSED", "CLOSED")
    record = [c for c in res.commands if c.startswith("RECORD FILE")]
    vm = tmp_path / "asterisk-vm"
    assert record == [f'RECORD FILE {vm}/voicemail-1795482833.0 wav "#" 40000 0 BEEP s=4']
    [ticket] = await _tickets(container, clock)
    assert ticket.certificate_number == VALID and ticket.call_id == "1795482833.0"
    assert ticket.received_at == SATURDAY_NOON
    # the 12 working hours start at the next working minute, Monday 09:00
    assert ticket.due_at == datetime(2026, 3, 24, 12, 0, tzinfo=MOSCOW)
    assert f'SAY DIGITS {ticket.id} ""' in res.commands  # the number is read back
    assert res.commands.index('STREAM FILE callcenter/vm-saved ""') < res.commands.index(
        f'SAY DIGITS {ticket.id} ""'
    )
    assert not list(vm.iterdir())  # taken from Asterisk's folder once the ticket holds it
    # the recording, kept with the ticket, to play or download
    url = f"/api/v1/tickets/{ticket.id}/recording"
    async with client.get(url, headers={"Authorization": f"Bearer {supervisor_token}"}) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "audio/wav"
        audio = await r.read()
    assert audio[:4] == b"RIFF" and len(audio) == 44 + 5000 * 8 * 2
    async with client.get(url) as r:
        assert r.status == 401
    async with client.get(url, headers={"Authorization": f"Bearer {pbx_token}"}) as r:
        assert r.status == 403
    async with client.get(
        f"/api/v1/tickets/{ticket.id}", headers={"Authorization": f"Bearer {supervisor_token}"}
    ) as r:
        body = await r.json()
    assert body["source"] == "voicemail" and body["has_recording"] is True


async def test_an_invalid_certificate_is_told_why_and_not_recorded(closed_dial, container, clock):
    from tests.e2e.conftest import EXPIRED

    caller = Caller(
        caller_id="79990000011",
        actions=[Dtmf("1"), *[Dtmf(EXPIRED + "#")] * 3, Speak(5000, "hash")],
    )
    res = await closed_dial(caller)
    assert sum("callcenter/expired" in c for c in res.commands) == 3
    assert 'STREAM FILE callcenter/vm-refused ""' in res.commands
    assert not any(c.startswith("RECORD FILE") for c in res.commands)
    assert await _tickets(container, clock) == []


async def test_a_hangup_while_recording_keeps_the_message(closed_dial, container, clock):
    caller = Caller(
        caller_id="79990000012", actions=[Dtmf("1"), Dtmf(VALID + "#"), Speak(4000, "hangup")]
    )
    res = await closed_dial(caller)
    assert res.hung_up
    [ticket] = await _tickets(container, clock)
    assert ticket.recording
    assert not any(c.startswith("SAY DIGITS") for c in res.commands)


async def test_silence_leaves_no_ticket(closed_dial, container, clock):
    caller = Caller(caller_id="79990000013", actions=[Dtmf("1"), Dtmf(VALID + "#"), Timeout()])
    res = await closed_dial(caller)
    assert 'STREAM FILE callcenter/vm-empty ""' in res.commands
    assert await _tickets(container, clock) == []


async def test_no_key_no_message(closed_dial, container, clock):
    res = await closed_dial(Caller(caller_id="79990000014", actions=[Timeout()]))
    routed(res, "CLOSED", "CLOSED")
    assert not any("enter-number" in c for c in res.commands)
    assert await _tickets(container, clock) == []


async def test_recording_route_answers_404_without_a_recording(client, supervisor_token):
    headers = {"Authorization": f"Bearer {supervisor_token}"}
    async with client.get("/api/v1/tickets/999/recording", headers=headers) as r:
        assert r.status == 404
        assert (await r.json())["error"] == "ticket_not_found"
    async with client.get("/api/v1/tickets/x/recording", headers=headers) as r:
        assert r.status == 422


# --- fact 18: a frozen FastAGI server holds the caller until its process dies ----------------

FROZEN_SERVER = """
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
conns = []
while True:
    c, _ = s.accept()
    conns.append(c)  # holds the connection, answers nothing
"""


async def test_peer_reproduces_fact_18_a_frozen_fastagi_server(tmp_path):
    """A real server process, stopped with SIGSTOP: the peer, as Asterisk, has no inactivity
    timeout and holds the caller; only the process dying (SIGKILL closes its sockets) returns
    control to the dialplan, with AGISTATUS=SUCCESS and no route (so the fallback runs)."""
    import os
    import signal
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FROZEN_SERVER, stdout=asyncio.subprocess.PIPE
    )
    try:
        port = int(await proc.stdout.readline())
        os_kill = os.kill
        os_kill(proc.pid, signal.SIGSTOP)
        session = asyncio.create_task(
            run_fastagi("127.0.0.1", port, "collect_certificate", Caller(), timeout=60)
        )
        done, _ = await asyncio.wait({session}, timeout=1.0)
        assert not done  # still in AGI(), in silence
        os_kill(proc.pid, signal.SIGKILL)
        res = await asyncio.wait_for(session, 30)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert res.agistatus == "SUCCESS"
    assert "CC_ROUTE" not in res.variables
    assert res.commands == []


async def test_the_message_path_has_the_same_lockout(closed_dial, container, clock):
    unknown = [Dtmf(f"555000{k}#") for k in range(1, 6)]
    first = await closed_dial(Caller(caller_id="79990000015", actions=[Dtmf("1"), *unknown[:3]]))
    assert 'STREAM FILE callcenter/vm-refused ""' in first.commands
    second = await closed_dial(
        Caller(caller_id="79990000015", uniqueid="1795482900.3",
               actions=[Dtmf("1"), *unknown[3:], Speak(5000)])
    )  # fmt: skip
    assert 'STREAM FILE callcenter/locked ""' in second.commands
    assert not any(c.startswith("RECORD FILE") for c in second.commands)
    assert await _tickets(container, clock) == []


async def test_voicemail_route_refuses_bad_input_with_stable_codes(
    client, pbx_token, registry_data, tmp_path
):
    import base64

    from tests.agi_peer import _write_wav
    from tests.e2e.conftest import EXPIRED

    _write_wav(str(tmp_path / "m.wav"), 16000)
    wav = base64.b64encode((tmp_path / "m.wav").read_bytes()).decode()
    headers = {"Authorization": f"Bearer {pbx_token}"}

    async def post(**body):
        base = {"call_id": "9.1", "number": VALID, "caller": "79990000016", "recording": wav}
        async with client.post("/api/v1/ivr/voicemail", json={**base, **body},
                               headers=headers) as r:  # fmt: skip
            return r.status, await r.json()

    status, body = await post(recording="not base64!")
    assert (status, body["error"]) == (422, "invalid_recording")
    status, body = await post(recording=base64.b64encode(b"RIFF0000NOTAWAVE" * 1000).decode())
    assert (status, body["error"]) == (422, "invalid_recording")
    status, body = await post(number=EXPIRED)
    assert (status, body["error"]) == (422, "invalid_certificate")
    status, body = await post(at="yesterday at noon")
    assert (status, body["error"]) == (422, "invalid_instant")
    status, body = await post()
    assert status == 201
    again, body2 = await post()  # the same call's message twice is one ticket
    assert again == 201 and body2["ticket_id"] == body["ticket_id"]


# --- a message the service cannot take when it is left: kept, then its ticket ----------------


async def test_a_message_the_database_cannot_take_now_is_kept_and_becomes_its_ticket_later(
    request, dial, closed_dial, container, client, pbx_token, clock, tmp_path
):
    """The database goes away while the caller records (only the hand-over fails): the
    caller hears that the message is kept, the driver spools it with the recording left
    where Asterisk wrote it, and once the database is back the spool makes it a ticket dated
    when it was left, over both transports."""
    from callcenter.telephony.fastagi import flush_spool, service_spool
    from callcenter.telephony.service_client import ServiceClient
    from callcenter.telephony.spool import Spool

    leave = container.voicemail.leave
    away = {"on": True}

    async def database_away_for_the_hand_over(**kw):
        if away["on"]:
            raise ConnectionRefusedError("the database is away")
        return await leave(**kw)

    container.voicemail.leave = database_away_for_the_hand_over
    caller = Caller(
        caller_id="79990000015", actions=[Dtmf("1"), Dtmf(VALID + "#"), Speak(5000, "hash")]
    )
    res = await closed_dial(caller)
    assert 'STREAM FILE callcenter/vm-kept ""' in res.commands
    assert not any(c.startswith("SAY DIGITS") for c in res.commands)
    assert await _tickets(container, clock) == []
    vm = tmp_path / "asterisk-vm"
    [kept] = list(vm.iterdir())  # the recording waits where Asterisk wrote it

    away["on"] = False
    clock.advance(3600)  # an hour later: the ticket still counts from when it was left
    by_process = request.node.callspec.params["dial"] == "process"
    if by_process:
        # the script stamps the message with the host's clock (the switch's): read it back
        url = str(client.make_url("/")).rstrip("/")
        spool = Spool(str(tmp_path / "spool"), owner=url)
        [(_, entry)] = list(spool.entries())
        left = datetime.fromisoformat(entry["voicemail"]["at"])
    else:
        spool, left = service_spool(container.settings), SATURDAY_NOON

    async def flush() -> int:
        if not by_process:
            return await flush_spool(container, spool)
        http = ServiceClient(url, pbx_token)
        try:
            return await asyncio.to_thread(spool.flush, http)
        finally:
            http.close()

    assert await flush() == 1
    [ticket] = await _tickets(container, clock)
    assert ticket.received_at == left  # when it was left, not when it was handed over
    assert ticket.recording and not kept.exists()
    assert await flush() == 0  # nothing left to send, nothing sent twice
    assert len(await _tickets(container, clock)) == 1
