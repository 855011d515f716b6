"""The AMI client, codec and event mapping (callcenter/adapters/ami*.py) against the recorded
Asterisk 22 streams.

Real TCP sockets: tests/ami_server.py speaks AMI as recorded in
/work/shared/asterisk-transcripts (07 basics, 05/06 complete event streams) and the client
connects to it. Expected bytes are read from the recordings wherever possible.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from callcenter.adapters.ami import AmiClient, AmiNotConnected, AmiTimeout
from callcenter.adapters.ami_codec import (
    AmiFramer,
    AmiMessage,
    encode_action,
    format_message,
    parse_messages,
)
from callcenter.adapters.ami_events import to_call_event
from callcenter.domain.events import parse_event
from tests.ami_server import (
    BANNER,
    Q5,
    Q6,
    RAW_07,
    FakeAmiServer,
    LogMessage,
    distinct_ids,
    parse_log,
)
from tests.conftest import free_port

LOGGER = "callcenter.adapters.ami"
NOW = datetime(2026, 11, 24, 1, 20, 51, tzinfo=UTC)
Q5_CALL = "1795483251.54"
Q6_CALL = "1795483283.62"


def first(recording_events: tuple[LogMessage, ...], name: str, **match: str) -> LogMessage:
    return next(
        e
        for e in recording_events
        if e.name == name and all(e.get(k) == v for k, v in match.items())
    )


def msg(ev: LogMessage) -> AmiMessage:
    (m,) = parse_messages(ev.data)
    return m


def valid(body: dict) -> dict:
    """``body`` after checking that the service accepts it as it is."""
    event = parse_event(body, NOW)
    assert event.source == "ami"
    assert event.at_given == ("at" in body)
    return body


# --------------------------------------------------------------------------- framing

SYNTHETIC = (
    b"Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/101-00000001\r\n"
    b"ChanVariable: CALLER_LINKEDID=1795483251.54\r\nChanVariable: QUEUE=support\r\n"
    b"ChanVariable: EMPTY=\r\nAccountCode: \r\nValue: a: b: c\r\nLinkedid: 1795483251.54\r\n\r\n"
)
SAMPLE = (
    BANNER
    + Q5.login_response.data
    + first(Q5.events, "QueueCallerJoin").data
    + first(Q5.events, "AgentConnect").data
    + SYNTHETIC
    + first(Q5.events, "Hangup", Uniqueid=Q5_CALL).data
)


def test_framing_the_whole_sample():
    framer = AmiFramer()
    out = framer.feed(SAMPLE)
    assert framer.banner == "Asterisk Call Manager/11.0.0"
    assert not framer.pending
    assert [m.kind for m in out] == ["response", "event", "event", "event", "event"]
    login, join, connect, varset, hangup = out
    assert login == {
        "Response": "Success",
        "ActionID": "mon-login",
        "Message": "Authentication accepted",
    }
    assert join["Event"] == "QueueCallerJoin" and join["Queue"] == "support"
    assert join["AccountCode"] == ""  # 'AccountCode: ' keeps its space on the wire
    assert connect["Interface"] == "Local/agent1@agents/n" and connect["HoldTime"] == "0"
    assert varset["ChanVariable"] == "CALLER_LINKEDID=1795483251.54"  # the first value
    assert varset.getall("ChanVariable") == [
        "CALLER_LINKEDID=1795483251.54",
        "QUEUE=support",
        "EMPTY=",
    ]
    assert varset["Value"] == "a: b: c"  # only the first colon separates
    assert varset.get_ci("LINKEDID") == "1795483251.54"
    assert hangup["Cause"] == "16" and hangup["Cause-txt"] == "Normal Clearing"
    # Every message goes back to exactly its recorded bytes.
    assert b"".join(m.to_bytes() for m in out) == SAMPLE[len(BANNER) :]


def _expected():
    framer = AmiFramer()
    return framer.feed(SAMPLE)


def _same(a: list[AmiMessage], b: list[AmiMessage]) -> bool:
    return a == b and [m.lines for m in a] == [m.lines for m in b]


def test_framing_at_every_split_point():
    expected = _expected()
    for cut in range(len(SAMPLE) + 1):
        framer = AmiFramer()
        out = framer.feed(SAMPLE[:cut]) + framer.feed(SAMPLE[cut:])
        assert _same(out, expected), cut
        assert framer.banner == "Asterisk Call Manager/11.0.0", cut


def test_framing_one_byte_at_a_time():
    framer = AmiFramer()
    out = [m for i in range(len(SAMPLE)) for m in framer.feed(SAMPLE[i : i + 1])]
    assert _same(out, _expected())


@hypothesis_settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(SAMPLE)), max_size=25))
def test_framing_arbitrary_chunks(cuts):
    bounds = [0, *sorted(cuts), len(SAMPLE)]
    framer = AmiFramer()
    out = [m for a, b in itertools.pairwise(bounds) for m in framer.feed(SAMPLE[a:b])]
    assert _same(out, _expected())


def test_framing_tolerates_lf_only_lines():
    framer = AmiFramer()
    out = framer.feed(SAMPLE.replace(b"\r\n", b"\n"))
    assert framer.banner == "Asterisk Call Manager/11.0.0"
    assert _same(out, _expected())


def test_framing_keeps_an_unfinished_message_back():
    framer = AmiFramer()
    join = first(Q5.events, "QueueCallerJoin").data
    assert framer.feed(BANNER + join[:-2]) == []  # the closing empty line is missing
    assert framer.pending
    (m,) = framer.feed(b"\r\n")
    assert m["Event"] == "QueueCallerJoin" and not framer.pending


def test_framing_the_complete_recorded_streams():
    for rec in (Q5, Q6):
        stream = rec.banner + rec.login_response.data
        stream += b"".join(e.data for e in (*rec.session_events, *rec.events)) + rec.goodbye.data
        out = parse_messages(stream)
        assert len(out) == 1 + len(rec.session_events) + len(rec.events) + 1
        assert [m["Event"] for m in out[1:-1]] == [
            e.name for e in (*rec.session_events, *rec.events)
        ]
        assert out[-1]["Response"] == "Goodbye"


def test_encode_action():
    data = encode_action("Originate", {"Channel": "PJSIP/101", "Variable": ["A=1", "B=2"]}, "o-1")
    assert data == (
        b"Action: Originate\r\nActionID: o-1\r\nChannel: PJSIP/101\r\n"
        b"Variable: A=1\r\nVariable: B=2\r\n\r\n"
    )
    with pytest.raises(ValueError):
        encode_action("Ping", {"Foo": "x\r\nAction: Logoff"})
    with pytest.raises(ValueError):
        format_message([("Bad:Key", "x")])


# --------------------------------------------------------------------------- mapping


def test_mapping_queue_caller_join():
    body = to_call_event(msg(first(Q5.events, "QueueCallerJoin")))
    assert valid(body) == {
        "event": "queued",
        "call_id": Q5_CALL,
        "source": "ami",
        "queue": "support",
    }


def test_mapping_agent_connect_uses_the_member_interface():
    body = to_call_event(msg(first(Q5.events, "AgentConnect")))
    assert valid(body) == {
        "event": "agent_connected",
        "call_id": Q5_CALL,
        "source": "ami",
        "agent": "Local/agent1@agents/n",
        "agent_name": "Agent One",
        "hold_seconds": 0,
    }
    # A PJSIP member without a MemberName line, held 37 s.
    lines = [
        (k, {"Interface": "PJSIP/101", "HoldTime": "37"}.get(k, v))
        for k, v in msg(first(Q5.events, "AgentConnect")).lines
        if k != "MemberName"
    ]
    body = to_call_event(AmiMessage(lines))
    assert body["agent"] == "PJSIP/101" and body["hold_seconds"] == 37
    assert "agent_name" not in valid(body)


def test_mapping_queue_caller_abandon():
    body = to_call_event(msg(first(Q6.events, "QueueCallerAbandon")))
    assert valid(body) == {
        "event": "call_ended",
        "call_id": Q6_CALL,
        "source": "ami",
        "hangup_by": "caller",
        "abandoned": "queue",
    }


def test_mapping_hangup_only_for_the_callers_own_channel():
    hangups = [e for e in Q5.events if e.name == "Hangup"]
    assert len(hangups) == 4  # agent ;1/;2, caller ;2, caller ;1 - all with the caller's Linkedid
    assert {e.get("Linkedid") for e in hangups} == {Q5_CALL}
    bodies = [to_call_event(msg(e)) for e in hangups]
    assert bodies[:3] == [None, None, None]
    assert valid(bodies[3]) == {
        "event": "call_ended",
        "call_id": Q5_CALL,
        "source": "ami",
        "cause": "16",
    }


def test_mapping_ignores_cel_and_everything_else():
    cel_end = first(Q5.events, "CEL", EventName="LINKEDID_END")
    assert cel_end.get("UniqueID") == cel_end.get("LinkedID") == Q5_CALL
    assert to_call_event(msg(cel_end)) is None
    mapped = {e.name for e in (*Q5.events, *Q6.events) if to_call_event(msg(e))}
    assert mapped == {"QueueCallerJoin", "AgentConnect", "QueueCallerAbandon", "Hangup"}
    assert to_call_event({"Event": "Hangup", "Uniqueid": "1.2"}) is None  # no Linkedid


def test_mapping_timestamp_becomes_at():
    m = msg(first(Q5.events, "QueueCallerJoin"))
    m.add("Timestamp", "1795483251.993150")
    body = valid(to_call_event(m))
    assert body["at"] == "2026-11-24T01:20:51.993150+00:00"
    assert parse_event(body, NOW).at == datetime(2026, 11, 24, 1, 20, 51, 993150, tzinfo=UTC)
    m = msg(first(Q5.events, "QueueCallerJoin"))
    m.add("Timestamp", "soon")
    assert "at" not in to_call_event(m)


def test_mapping_whole_recordings_in_order():
    q5 = [b for e in Q5.events if (b := to_call_event(msg(e)))]
    q6 = [b for e in Q6.events if (b := to_call_event(msg(e)))]
    assert [(b["event"], b["call_id"]) for b in q5] == [
        ("queued", Q5_CALL),
        ("agent_connected", Q5_CALL),
        ("call_ended", Q5_CALL),
    ]
    assert [b["event"] for b in q6] == ["queued", "call_ended", "call_ended"]
    for b in q5 + q6:
        valid(b)


# --------------------------------------------------------------------------- fake server fidelity


def _recorded_reply(action_id: str) -> bytes:
    _, messages = parse_log(RAW_07)
    return next(m.data for m in messages if m.direction == "<<" and m.get("ActionID") == action_id)


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(2):
        return await reader.readuntil(b"\r\n\r\n")


async def _raw(server: FakeAmiServer):
    reader, writer = await asyncio.open_connection(server.host, server.port)
    async with asyncio.timeout(2):
        assert await reader.readline() == BANNER
    return reader, writer


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_server_replies_as_recorded_in_07():
    async with FakeAmiServer(auth_fail_delay=0.1) as server:
        # 7.1: a wrong secret is answered after the delay, then the server closes.
        reader, writer = await _raw(server)
        t0 = time.monotonic()
        writer.write(b"Action: Login\r\nUsername: test\r\nSecret: wrong\r\nActionID: bad-1\r\n\r\n")
        assert await _read_message(reader) == _recorded_reply("bad-1")
        assert time.monotonic() - t0 >= 0.09
        async with asyncio.timeout(2):
            assert await reader.read() == b""
        await _close(writer)

        reader, writer = await _raw(server)
        # 7.3: an action before login.
        writer.write(b"Action: Ping\r\nActionID: ping-before-login\r\n\r\n")
        assert await _read_message(reader) == _recorded_reply("ping-before-login")
        # 7.4: login, events off: nothing but the response follows.
        writer.write(
            b"Action: Login\r\nUsername: test\r\nSecret: test\r\nEvents: off\r\n"
            b"ActionID: login-1\r\n\r\n"
        )
        assert await _read_message(reader) == _recorded_reply("login-1")
        # 7.5/7.6: Ping echoes the ActionID right after Response, or sends none.
        writer.write(b"Action: Ping\r\nActionID: ping-1\r\n\r\n")
        pong = r"Response: Success\r\n%sPing: Pong\r\nTimestamp: \d+\.\d{6}\r\n\r\n"
        assert re.fullmatch(pong % r"ActionID: ping-1\r\n", (await _read_message(reader)).decode())
        assert re.fullmatch(pong % r"ActionID: ping-1\r\n", _recorded_reply("ping-1").decode())
        writer.write(b"Action: Ping\r\n\r\n")
        assert re.fullmatch(pong % "", (await _read_message(reader)).decode())
        # 7.9: an unknown action, 7.16: Logoff, then the close.
        writer.write(b"Action: NoSuchAction\r\nActionID: bad-action\r\n\r\n")
        assert await _read_message(reader) == _recorded_reply("bad-action")
        writer.write(b"Action: Logoff\r\nActionID: logoff-1\r\n\r\n")
        assert await _read_message(reader) == _recorded_reply("logoff-1")
        async with asyncio.timeout(2):
            assert await reader.read() == b""
        await _close(writer)
        assert server.login_attempts == 2 and server.logins == 1


async def test_server_filters_events_by_the_login_mask():
    async with FakeAmiServer() as server:
        reader, writer = await _raw(server)
        writer.write(b"Action: Login\r\nUsername: test\r\nSecret: test\r\nEvents: agent\r\n\r\n")
        assert (await _read_message(reader)).startswith(b"Response: Success\r\n")
        sent = await server.replay(Q5.events)
        agent_events = [e for e in Q5.events if e.get("Privilege") == "agent,all"]
        assert sent == len(agent_events) == 9
        for ev in agent_events:
            assert await _read_message(reader) == ev.data
        await _close(writer)


# --------------------------------------------------------------------------- client


class Collector:
    """on_event: keeps every event and the call-event body it maps to."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.events: list[AmiMessage] = []
        self.bodies: list[dict] = []
        self.fail_on = fail_on

    async def __call__(self, ev: AmiMessage) -> None:
        self.events.append(ev)
        if ev.get("Event") == self.fail_on:
            self.fail_on = None
            raise RuntimeError("the call log is down")
        body = to_call_event(ev)
        if body is not None:
            self.bodies.append(valid(body))


def make_client(server: FakeAmiServer, on_event, **kw) -> AmiClient:
    opts = {
        "reconnect_min": 0.01,
        "reconnect_max": 0.04,
        "ping_interval": 60.0,
        "close_timeout": 1.0,
        "rand": lambda: 0.5,  # jitter factor exactly 1.0
    }
    opts.update(kw)
    return AmiClient(server.host, server.port, "test", "test", on_event, **opts)


@contextlib.asynccontextmanager
async def running(client: AmiClient):
    task = asyncio.create_task(client.run())
    try:
        yield task
    finally:
        await client.close()
        async with asyncio.timeout(5):
            await task
        leftover = [t for t in asyncio.all_tasks() if t.get_name().startswith("ami-")]
        assert leftover == [], leftover


async def settled(client: AmiClient) -> None:
    """Every event the server wrote so far has been through on_event (a Pong comes after)."""
    async with asyncio.timeout(5):
        await client.wait_logged_in()  # the server counts a login before the client reads it
    await client.action("Ping")
    async with asyncio.timeout(5):
        await client.drain_events()


async def test_login_actions_and_logoff():
    async with FakeAmiServer() as server:
        client = make_client(server, Collector())
        with pytest.raises(AmiNotConnected):
            await client.action("Ping")
        async with running(client) as task:
            async with asyncio.timeout(5):
                await client.wait_logged_in()
            login = server.actions[0]
            assert login["Action"] == "Login"
            assert (login["Username"], login["Secret"], login["Events"]) == (
                "test",
                "test",
                "call,agent",
            )
            assert login["ActionID"]
            pong = await client.action("Ping", ActionID="my-ping")
            assert dict(pong) == {
                "Response": "Success",
                "ActionID": "my-ping",
                "Ping": "Pong",
                "Timestamp": pong["Timestamp"],
            }
            assert list(pong)[:2] == ["Response", "ActionID"]
            auto = await client.action("Ping")
            assert auto["ActionID"] == server.actions[-1]["ActionID"] != "my-ping"
            bad = await client.action("NoSuchAction")
            assert bad["Response"] == "Error"
            assert (
                bad["Message"] == _recorded_reply("bad-action").decode().split("Message: ")[1][:-4]
            )
        assert task.done() and task.exception() is None
        assert server.actions[-1]["Action"] == "Logoff"
        assert client.logins == 1 and not client.logged_in
        with pytest.raises(AmiNotConnected):
            await client.action("Ping")


async def test_responses_are_matched_by_action_id_not_order():
    async with FakeAmiServer(answer_pings=False) as server:
        client = make_client(server, Collector())
        async with running(client):
            async with asyncio.timeout(5):
                await client.wait_logged_in()
            a = asyncio.create_task(client.action("Ping", ActionID="a"))
            b = asyncio.create_task(client.action("Ping", ActionID="b"))
            await server.wait_for(lambda: len(server.actions) == 3)
            await server.send_raw(b"Response: Success\r\nActionID: zzz\r\nPing: Pong\r\n\r\n")
            await server.send_raw(b"Response: Success\r\nActionID: b\r\nPing: Pong\r\n\r\n")
            assert (await b)["ActionID"] == "b" and not a.done()
            await server.send_raw(b"Response: Error\r\nActionID: a\r\nMessage: late\r\n\r\n")
            assert (await a)["Message"] == "late"
            with pytest.raises(AmiTimeout):
                await client.action("Ping", reply_timeout=0.05)


async def test_failed_login_is_logged_and_retried_with_backoff(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0.001)

    async with FakeAmiServer(secret="other", auth_fail_delay=0.01) as server:
        client = make_client(server, Collector(), sleep=sleep)
        async with running(client):
            await server.wait_for(lambda: len(delays) >= 4)
            assert client.logins == 0 and client.login_failures >= 4
            assert delays[:4] == [0.01, 0.02, 0.04, 0.04]  # doubling, capped
            errors = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert errors and all("Authentication failed" in r.getMessage() for r in errors)
            assert (
                f"AMI login to 127.0.0.1:{server.port} as 'test' failed" in errors[0].getMessage()
            )
            server.secret = "test"  # the admin fixes manager.conf
            await server.wait_logins(1)
            async with asyncio.timeout(5):
                await client.wait_logged_in()
            before_drop = len(delays)
            await server.drop()
            await server.wait_logins(2)
            assert delays[before_drop] == 0.01  # the backoff started again after the login


async def test_replay_q5_queue_agent_answer():
    collect = Collector()
    async with FakeAmiServer() as server:
        client = make_client(server, collect)
        async with running(client):
            await server.wait_logins(1)
            await server.replay(Q5.events, chunk=97)  # messages split across TCP reads
            await settled(client)
    assert collect.bodies == [
        {"event": "queued", "call_id": Q5_CALL, "source": "ami", "queue": "support"},
        {
            "event": "agent_connected",
            "call_id": Q5_CALL,
            "source": "ami",
            "agent": "Local/agent1@agents/n",
            "agent_name": "Agent One",
            "hold_seconds": 0,
        },
        {"event": "call_ended", "call_id": Q5_CALL, "source": "ami", "cause": "16"},
    ]
    # Events: call,agent - the AGI/dialplan/system chatter never reached the client.
    privileges = {e.get("Privilege") for e in collect.events}
    assert privileges == {"call,all", "agent,all"}
    wanted = [e for e in Q5.events if e.get("Privilege") in privileges]
    assert [e.to_bytes() for e in collect.events] == [e.data for e in wanted]


async def test_replay_q6_queue_abandon():
    collect = Collector()
    async with FakeAmiServer() as server:
        client = make_client(server, collect)
        async with running(client):
            await server.wait_logins(1)
            await server.replay(Q6.events, speed=1000.0)
            await settled(client)
    assert collect.bodies == [
        {"event": "queued", "call_id": Q6_CALL, "source": "ami", "queue": "support-abandon"},
        {
            "event": "call_ended",
            "call_id": Q6_CALL,
            "source": "ami",
            "hangup_by": "caller",
            "abandoned": "queue",
        },
        {"event": "call_ended", "call_id": Q6_CALL, "source": "ami", "cause": "16"},
    ]


async def test_replayed_calls_with_rewritten_ids_stay_apart():
    collect = Collector()
    async with FakeAmiServer() as server:
        client = make_client(server, collect)
        async with running(client):
            await server.wait_logins(1)
            await server.replay(Q5.events)
            await server.replay(Q5.events, rewrite=distinct_ids(Q5.events, 1))
            await server.replay(Q6.events, rewrite=distinct_ids(Q6.events, 2))
            await settled(client)
    calls: dict[str, list[str]] = {}
    for b in collect.bodies:
        calls.setdefault(b["call_id"], []).append(b["event"])
    assert calls == {
        Q5_CALL: ["queued", "agent_connected", "call_ended"],
        "1795483251.1054": ["queued", "agent_connected", "call_ended"],
        "1795483283.2062": ["queued", "call_ended", "call_ended"],
    }


async def test_reconnects_after_a_drop_mid_stream(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    collect = Collector()
    cut = next(i for i, e in enumerate(Q5.events) if e.name == "AgentConnect")
    async with FakeAmiServer() as server:
        client = make_client(server, collect)
        async with running(client):
            await server.wait_logins(1)
            await server.replay(Q5.events[:cut])
            await settled(client)
            assert [b["event"] for b in collect.bodies] == ["queued"]
            # Half a Hangup of the caller, then the network goes away.
            await server.send_raw(b"Event: Hangup\r\nPrivilege: call,all\r\nUniqueid: 17954")
            await server.drop()
            await server.wait_logins(2)
            async with asyncio.timeout(5):
                await client.wait_logged_in()
            await server.replay(Q5.events[cut:])
            await settled(client)
            assert [a["Action"] for a in server.actions].count("Login") == 2
    assert [b["event"] for b in collect.bodies] == ["queued", "agent_connected", "call_ended"]
    assert not any(e.get("Uniqueid") == "17954" for e in collect.events)
    assert client.connects == 2 and client.logins == 2
    assert any(
        "AMI connection to 127.0.0.1" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


async def test_a_silent_server_is_detected_by_ping(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with FakeAmiServer(answer_pings=False) as server:
        client = make_client(server, Collector(), ping_interval=0.05, ping_timeout=0.05)
        async with running(client):
            await server.wait_logins(1)
            server.answer_pings = True  # from the next connection on
            await server.wait_logins(2)
            await settled(client)
    assert any("no reply to Ping" in r.getMessage() for r in caplog.records)
    pings = [a for a in server.sessions[0].actions if a["Action"] == "Ping"]
    assert pings and all(p["ActionID"] for p in pings)


async def test_an_on_event_failure_is_logged_not_fatal(caplog):
    collect = Collector(fail_on="QueueCallerJoin")
    async with FakeAmiServer() as server:
        client = make_client(server, collect)
        async with running(client):
            await server.wait_logins(1)
            await server.replay(Q5.events)
            await settled(client)
            assert client.logged_in and client.connects == 1
    assert [b["event"] for b in collect.bodies] == ["agent_connected", "call_ended"]
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "on_event failed for QueueCallerJoin" in record.getMessage()
    assert client.events_dispatched == client.events_received == len(collect.events)


async def test_close_while_waiting_to_reconnect():
    port = free_port()  # nobody listens: connection refused
    client = AmiClient(
        "127.0.0.1", port, "test", "test", Collector(), reconnect_min=30.0, reconnect_max=60.0
    )
    task = asyncio.create_task(client.run())
    async with asyncio.timeout(5):
        while client.last_error is None:  # noqa: ASYNC110 - the refusal is only visible here
            await asyncio.sleep(0.005)
    t0 = time.monotonic()
    await client.close()
    assert time.monotonic() - t0 < 1.0
    async with asyncio.timeout(1):
        await task
    assert "ConnectionRefusedError" in client.last_error or "Connect" in client.last_error
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("ami-")] == []
    await client.run()  # a closed client stays closed: returns at once
