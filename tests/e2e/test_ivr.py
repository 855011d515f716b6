"""The IVR's acceptance scenarios, over both transports.

``process``: agi_scripts/collect_certificate.py as a real subprocess speaking AGI on its
stdin/stdout with the test peer, reaching a real service over HTTP. ``fastagi``: the peer
connects over real TCP to the FastAGI server, which answers in-process. Time is the
container's fixed clock; the working-time decision is the service's.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

import pytest

from callcenter.calendar import MOSCOW
from callcenter.telephony.fastagi import fastagi_server
from tests.agi_peer import Caller, Dtmf, Hangup, PeerOptions, Timeout, run_fastagi, run_process_agi
from tests.conftest import ROOT
from tests.e2e.conftest import EXPIRED, OTHER, VALID, agi_env, free_port, local_calendar_env

SOUNDS = PeerOptions(sound_patterns=("callcenter/*", "silence/*", "digits/*"))


def typed(number: str) -> Dtmf:
    return Dtmf(number + "#")


@pytest.fixture(params=["process", "fastagi"])
async def dial(request, container, client, pbx_token, registry_data, tmp_path):
    """dial(caller, **peer kwargs) -> PeerResult, over the transport under test."""
    url = str(client.make_url("/")).rstrip("/")
    env = agi_env(url, pbx_token, tmp_path)
    script = ROOT / "agi_scripts" / "collect_certificate.py"
    if request.param == "process":

        async def call(caller, options=SOUNDS, extra_env=None, name=script):
            return await asyncio.to_thread(
                run_process_agi,
                [name],
                caller,
                options=options,
                extra_env={**env, **(extra_env or {})},
            )

        yield call
        return

    async def call(caller, options=SOUNDS, extra_env=None, name=script):
        async with fastagi_server(container, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            return await run_fastagi("127.0.0.1", port, name.stem, caller, options=options)

    yield call


def routed(result, route, status):
    assert result.variables.get("CC_ROUTE") == route, result.timeline
    assert result.variables.get("CC_CERT_STATUS") == status
    assert result.variables.get("CC_CALL_ID")


async def events_of(container, result):
    return [(e.event, e.data) for e in await container.calls.events(result.variables["CC_CALL_ID"])]


async def test_valid_number_is_queued(dial, container):
    res = await dial(Caller(caller_id="79990000000", actions=[typed(VALID)]))
    routed(res, "QUEUE", "VALID")
    assert res.variables["CC_CERT_NUMBER"] == VALID
    assert res.agistatus == "SUCCESS"
    kinds = [k for k, _ in await events_of(container, res)]
    assert kinds == ["call_started", "certificate_checked", "queued"]
    # GET DATA with an explicit timeout, not pyst2's 2 s default
    get_data = [c for c in res.commands if c.startswith("GET DATA")]
    assert get_data == ["GET DATA callcenter/enter-number 7000 20"]


async def test_caller_id_shortcut(dial, container):
    res = await dial(Caller(caller_id="89001112233", actions=[Dtmf("1")]))
    routed(res, "QUEUE", "VALID")
    assert res.variables["CC_CERT_NUMBER"] == VALID
    # the digits are said with escape digits: a caller may type a number over them
    assert f'SAY DIGITS {VALID[-4:]} "0123456789*"' in res.commands
    assert not any("enter-number" in c for c in res.commands)


async def test_caller_id_shortcut_declined(dial):
    res = await dial(Caller(caller_id="89001112233", actions=[Dtmf("2"), typed(OTHER)]))
    routed(res, "QUEUE", "VALID")
    assert res.variables["CC_CERT_NUMBER"] == OTHER


async def test_bad_check_digit_then_valid(dial, container):
    container.settings = container.settings.replace(certificates={"check_digit": "luhn"})
    container.registry.number_format = container.registry.number_format.__class__(
        6, 20, container.registry.number_format.check_digit.__class__("luhn")
    )
    typo = VALID[:-1] + str((int(VALID[-1]) + 1) % 10)
    res = await dial(
        Caller(actions=[typed(typo), typed(VALID)]),
        extra_env={"CALLCENTER_CERTIFICATES_CHECK_DIGIT": "luhn"},
    )
    routed(res, "QUEUE", "VALID")
    checks = [d for k, d in await events_of(container, res) if k == "certificate_checked"]
    assert [c["status"] for c in checks] == ["VALID"]  # the typo never reached a lookup
    assert any("invalid-number" in c for c in res.commands)


async def test_three_unknown_numbers_are_refused(dial, container):
    res = await dial(Caller(actions=[typed("5550001"), typed("5550002"), typed("5550003")]))
    routed(res, "REFUSED", "UNKNOWN")
    assert sum("not-found" in c for c in res.commands) == 3
    assert any("refused" in c for c in res.commands)


async def test_expired_is_told_and_refused(dial):
    res = await dial(Caller(actions=[typed(EXPIRED), typed(EXPIRED), typed(EXPIRED)]))
    routed(res, "REFUSED", "EXPIRED")
    assert any("callcenter/expired" in c for c in res.commands)


async def test_expired_then_valid(dial):
    res = await dial(Caller(actions=[typed(EXPIRED), typed(VALID)]))
    routed(res, "QUEUE", "VALID")


async def test_timeouts_with_no_digits(dial):
    res = await dial(Caller(actions=[Timeout(), Timeout(), Timeout()]))
    routed(res, "REFUSED", "NO_INPUT")
    assert sum("no-input" in c for c in res.commands) == 3


async def test_garbage_dtmf_is_rejected_locally(dial, container):
    res = await dial(Caller(actions=[Dtmf("12*34#"), Dtmf("#"), typed(VALID)]))
    routed(res, "QUEUE", "VALID")


async def test_hangup_during_entry(dial, container):
    res = await dial(Caller(actions=[Hangup()]))
    assert "CC_ROUTE" not in res.variables
    assert res.agistatus == "HANGUP"
    if res.transport == "process":
        assert res.sighups == 1
    evts = await events_of(container, res)
    assert evts[-1] == ("call_ended", {"abandoned": "ivr", "hangup_by": "caller"})


async def test_service_down_queues_unverified_within_3s(container, registry_data, tmp_path):
    port = free_port()  # nothing listens there
    env = agi_env(f"http://127.0.0.1:{port}", "x", tmp_path)
    env |= local_calendar_env(tmp_path, open_now=True)  # the script's own calendar: open
    t0 = time.monotonic()
    res = await asyncio.to_thread(
        run_process_agi,
        [ROOT / "agi_scripts/collect_certificate.py"],
        Caller(actions=[typed(VALID)]),
        options=SOUNDS,
        extra_env=env,
    )
    elapsed = time.monotonic() - t0
    routed(res, "QUEUE", "UNVERIFIED")
    assert elapsed < 10  # generous: the assertion is about the route, the bench about time
    spooled = sorted((tmp_path / "spool").glob("*.json"))
    kept = [json.loads(f.read_text(encoding="utf-8")) for f in spooled]
    assert {k["for"] for k in kept} == {f"http://127.0.0.1:{port}"}  # the service it was for
    kept = [k["event"] for k in kept]
    # every report is kept for later, not only the first that failed
    assert [(e["event"], e.get("status")) for e in kept] == [
        ("call_started", None),
        ("certificate_checked", "UNVERIFIED"),
        ("queued", None),
    ]


async def test_slow_service_queues_unverified(container, registry_data, tmp_path):
    """A service that accepts but never answers costs one bounded wait, then UNVERIFIED."""
    writers = []

    async def silent(reader, writer):
        writers.append(writer)
        await reader.read()  # never answers; returns when the client gives up

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    env = agi_env(f"http://127.0.0.1:{port}", "x", tmp_path)
    env |= local_calendar_env(tmp_path, open_now=True)
    try:
        res = await asyncio.to_thread(
            run_process_agi,
            [ROOT / "agi_scripts/collect_certificate.py"],
            Caller(actions=[typed(VALID)]),
            options=SOUNDS,
            extra_env=env,
            timeout=20,
        )
    finally:
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()
    routed(res, "QUEUE", "UNVERIFIED")
    # one request waited for (the first report), none after it
    assert res.elapsed_ms < 30_000


async def test_database_down_fastagi_queues_unverified(container, registry_data, caplog):
    import logging

    from callcenter.adapters import db
    from callcenter.adapters.repositories import CertificateReader

    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await container.engine.dispose()
        dead = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
        container.engine = db.create_engine(dead)
        container.sessions.configure(bind=container.engine)
        container.registry.reader = CertificateReader(dead)
        container.registry._cache.clear()
        res = await run_fastagi(
            "127.0.0.1", port, "collect_certificate", Caller(actions=[typed(VALID)]), options=SOUNDS
        )
    routed(res, "QUEUE", "UNVERIFIED")
    # an outage is expected, not a bug: warnings, no ERROR and no traceback
    ours = [r for r in caplog.records if r.name == "callcenter.telephony.fastagi"]
    assert any(
        r.levelno == logging.WARNING and "database unavailable" in r.getMessage() for r in ours
    )
    assert not [r for r in ours if r.levelno >= logging.ERROR or r.exc_info]


async def test_lockout_holds_across_calls_and_transports(
    container, client, pbx_token, registry_data, tmp_path
):
    """Five failed numbers from one phone lock it out, whichever transport took them."""
    url = str(client.make_url("/")).rstrip("/")
    env = agi_env(url, pbx_token, tmp_path)
    caller = "79005550101"
    first = await asyncio.to_thread(
        run_process_agi,
        [ROOT / "agi_scripts/collect_certificate.py"],
        Caller(caller_id=caller, actions=[typed("7770001"), typed("7770002"), typed("7770003")]),
        options=SOUNDS,
        extra_env=env,
    )
    routed(first, "REFUSED", "UNKNOWN")
    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        second = await run_fastagi(
            "127.0.0.1",
            port,
            "collect_certificate",
            Caller(
                caller_id=caller,
                uniqueid="1795482900.7",
                actions=[typed("7770004"), typed("7770005")],
            ),
            options=SOUNDS,
        )
        routed(second, "REFUSED", "LOCKED")
        assert any("callcenter/locked" in c for c in second.commands)
        # even a valid number is refused while the lock holds
        third = await run_fastagi(
            "127.0.0.1",
            port,
            "collect_certificate",
            Caller(caller_id=caller, uniqueid="1795482901.9", actions=[typed(VALID)]),
            options=SOUNDS,
        )
        routed(third, "REFUSED", "LOCKED")


@pytest.mark.parametrize(
    ("moment", "opens"),
    [
        (datetime(2026, 3, 15, 11, 0, tzinfo=MOSCOW), "2026-03-16"),  # a Sunday
        (datetime(2026, 1, 9, 11, 0, tzinfo=MOSCOW), "2026-01-12"),  # transferred day off
        (datetime(2026, 3, 17, 18, 0, tzinfo=MOSCOW), "2026-03-18"),  # 18:00 sharp
    ],
)
async def test_closed_line(dial, container, clock, moment, opens):
    clock.at = moment
    res = await dial(Caller(actions=[Timeout()]))  # the message offered is not taken
    routed(res, "CLOSED", "CLOSED")
    assert any("callcenter/closed" in c for c in res.commands)
    assert any("callcenter/portal" in c for c in res.commands)
    say = next(c for c in res.commands if c.startswith("SAY DATETIME"))
    expected = int(datetime.fromisoformat(opens + "T09:00:00+03:00").timestamp())
    assert say.split()[2] == str(expected)
    assert not any("enter-number" in c for c in res.commands)  # only the message is offered
    assert "queued" not in [k for k, _ in await events_of(container, res)]
