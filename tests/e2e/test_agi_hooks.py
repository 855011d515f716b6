"""agent_connected (Queue()'s Gosub, agent channel) and call_ended (hangup handler, dead mode)."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.demo import demo_certificates
from callcenter.telephony import simulator
from callcenter.telephony.fastagi import fastagi_server
from tests.agi_peer import Caller, Dtmf, PeerOptions, run_fastagi, run_process_agi
from tests.conftest import ROOT
from tests.e2e.conftest import VALID, agi_env

CALLER_LINKEDID = "1795483251.54"


@pytest.fixture(params=["process", "fastagi"])
async def run_script(request, container, client, pbx_token, tmp_path):
    url = str(client.make_url("/")).rstrip("/")
    env = agi_env(url, pbx_token, tmp_path)

    async def run(name: str, caller: Caller):
        if request.param == "process":
            return await asyncio.to_thread(
                run_process_agi, [ROOT / "agi_scripts" / f"{name}.py"], caller, extra_env=env
            )
        async with fastagi_server(container, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            return await run_fastagi("127.0.0.1", port, name, caller)

    return run


def agent_channel(**variables) -> Caller:
    """The member channel as transcript 05 shows it: own uniqueid, the caller's linkedid."""
    return Caller(
        caller_id="5",
        channel="Local/agent1@agents-0000001c;1",
        uniqueid="1795483251.56",
        linkedid=CALLER_LINKEDID,
        context="cc-agent-connected",
        variables=variables,
    )


async def test_agent_connected_reports_member_interface(run_script, container):
    res = await run_script(
        "agent_connected",
        agent_channel(
            ARG1=CALLER_LINKEDID,
            MEMBERINTERFACE="PJSIP/101",
            MEMBERNAME="Оператор Иванова",
            QEHOLDTIME="12",
        ),
    )
    assert res.agistatus == "SUCCESS"
    [event] = await container.calls.events(CALLER_LINKEDID)
    assert event.event == "agent_connected"
    assert event.data == {
        "agent": "PJSIP/101",
        "agent_name": "Оператор Иванова",
        "hold_seconds": 12,
    }


async def test_agent_connected_without_queue_variables(run_script, container):
    """Without setinterfacevar the agent comes from the channel name (fact 12)."""
    await run_script("agent_connected", agent_channel())
    [event] = await container.calls.events(CALLER_LINKEDID)
    assert event.data == {"agent": "Local/agent1@agents"}


async def test_agent_connected_with_unexpanded_membergosub_args(run_script, container):
    """membergosub= passes '${CHANNEL(linkedid)}' literally; the linkedid still wins."""
    await run_script(
        "agent_connected", agent_channel(ARG1="${CHANNEL(linkedid)}", MEMBERINTERFACE="PJSIP/102")
    )
    [event] = await container.calls.events(CALLER_LINKEDID)
    assert event.call_id == CALLER_LINKEDID


def hangup_handler(**variables) -> Caller:
    return Caller(
        channel="PJSIP/provider-0000001b",
        uniqueid=CALLER_LINKEDID,
        dead=True,
        context="cc-hangup",
        variables={"HANGUPCAUSE": "16", **variables},
    )


async def test_call_ended_after_talking_to_an_agent(run_script, container):
    res = await run_script(
        "call_ended", hangup_handler(CC_ROUTE="QUEUE", MEMBERINTERFACE="PJSIP/101")
    )
    assert res.agistatus in ("SUCCESS", "HANGUP")
    [event] = await container.calls.events(CALLER_LINKEDID)
    assert event.event == "call_ended"
    assert event.data["cause"] == "16"
    assert "abandoned" not in event.data


async def test_call_ended_abandoned_in_queue(run_script, container):
    await run_script("call_ended", hangup_handler(CC_ROUTE="QUEUE"))
    [event] = await container.calls.events(CALLER_LINKEDID)
    assert event.data["abandoned"] == "queue"


async def test_call_ended_refused_is_ended_by_the_system(run_script, container):
    await run_script("call_ended", hangup_handler(CC_ROUTE="REFUSED"))
    [event] = await container.calls.events(CALLER_LINKEDID)
    assert event.data["hangup_by"] == "system"


async def test_call_ended_flushes_the_spool(container, client, clock, pbx_token, tmp_path):
    """Events kept while the service was down arrive with the next hangup handler."""
    from callcenter.telephony.spool import Spool

    url = str(client.make_url("/")).rstrip("/")
    spool = Spool(str(tmp_path / "spool"), owner=url)
    spool.keep({"event": "queued", "call_id": "1795480000.1", "queue": "support", "source": "agi"})
    env = agi_env(url, pbx_token, tmp_path)
    await asyncio.to_thread(
        run_process_agi,
        [ROOT / "agi_scripts/call_ended.py"],
        hangup_handler(CC_ROUTE="QUEUE"),
        extra_env=env,
    )
    [late] = await container.calls.events("1795480000.1")
    assert late.event == "queued"
    assert late.at != clock.now()  # it keeps the time it happened, not the time it arrived
    assert list((tmp_path / "spool").glob("*.json")) == []


async def test_simulator_places_calls_through_fastagi(container, clock):
    numbers, contacts = simulator.demo_numbers(clock.now())
    await container.registry.import_certificates(demo_certificates(clock.now()), clock.now())
    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        done = await simulator.run(
            "127.0.0.1", port, 60, 10, "mixed", 0.0, numbers, contacts, seed=3
        )
    by_scenario = {}
    for call in done:
        by_scenario.setdefault(call.scenario, set()).add(call.route)
    assert by_scenario["valid"] == {"QUEUE"}
    assert by_scenario["unknown"] <= {"REFUSED"}
    assert by_scenario.get("no_input", {"REFUSED"}) == {"REFUSED"}
    assert by_scenario.get("abandon_ivr", {""}) == {""}
    queued = next(c for c in done if c.scenario == "valid")
    kinds = [e.event for e in await container.calls.events(queued.uniqueid)]
    assert kinds == [
        "call_started",
        "certificate_checked",
        "queued",
        "agent_connected",
        "call_ended",
    ]


async def test_a_refused_report_is_not_spooled_and_does_not_stop_the_rest(
    container, client, pbx_token, tmp_path
):
    """A 4xx for one report: the service is up, only that event is refused. A report made
    after the service failed is kept in the spool, whatever the failure before it was."""
    from callcenter.telephony import ivr
    from callcenter.telephony.process_agi import resolve
    from callcenter.telephony.service_client import ServiceClient
    from callcenter.telephony.spool import Spool

    url = str(client.make_url("/")).rstrip("/")
    spool = Spool(str(tmp_path / "spool"), owner=url)
    svc = ServiceClient(url, pbx_token)
    bad = {"event": "queued", "call_id": "1795480400.1", "source": "agi"}  # no queue: 422
    good = {"event": "queued", "call_id": "1795480400.1", "queue": "support", "source": "agi"}
    try:
        refused = await asyncio.to_thread(resolve, ivr.Report(bad), svc, spool)
        stored = await asyncio.to_thread(resolve, ivr.Report(good), svc, spool)
    finally:
        svc.close()
    assert refused is None and isinstance(stored, dict) and not svc.down
    assert [e.event for e in await container.calls.events("1795480400.1")] == ["queued"]
    assert list((tmp_path / "spool").glob("*.json")) == []

    svc.down = True  # the service failed earlier in this call (the 422 is still last_error)
    assert await asyncio.to_thread(resolve, ivr.Report(good), svc, spool) is ivr.SERVICE_DOWN
    assert len(list((tmp_path / "spool").glob("*.json"))) == 1


async def test_fastagi_keeps_events_its_database_cannot_take(container, clock, tmp_path):
    """A FastAGI call while the database is unreachable: the caller is still queued, its
    events go to the spool, and they are recorded once a database can take them."""
    from callcenter import bootstrap
    from callcenter.config import Settings
    from callcenter.telephony.fastagi import flush_spool, service_spool
    from tests.conftest import free_port

    dead_url = f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none"
    spool_dir = tmp_path / "spool"
    settings = Settings().replace(database={"url": dead_url}, agi={"spool_dir": str(spool_dir)})
    dead = bootstrap.build(settings, clock=clock)
    try:
        async with fastagi_server(dead, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            res = await run_fastagi(
                "127.0.0.1",
                port,
                "collect_certificate",
                Caller(uniqueid="1795480600.1", actions=[Dtmf(VALID + "#")]),
                options=PeerOptions(sound_patterns=("callcenter/*",)),
            )
    finally:
        await dead.close()
    assert res.variables.get("CC_ROUTE") == "QUEUE", (res.variables, res.commands)  # not stranded
    kept = sorted(spool_dir.glob("*.json"))
    assert len(kept) == 3  # call_started, certificate_checked (UNVERIFIED), queued

    sent = await flush_spool(container, service_spool(settings))
    assert sent == len(kept)
    events = await container.calls.events(res.variables["CC_CALL_ID"])
    assert [(e.event, e.data.get("status")) for e in events] == [
        ("call_started", None),
        ("certificate_checked", "UNVERIFIED"),
        ("queued", None),
    ]
    assert list(spool_dir.glob("*.json")) == []


async def test_a_fastagi_flush_records_only_its_own_instances_events(container, tmp_path):
    """Two `serve` on one host given the same spool folder: each records only what was kept
    for it; the other's entries stay where they are until their own instance takes them."""
    from callcenter.config import Settings
    from callcenter.telephony.fastagi import flush_spool, service_spool

    first = Settings().replace(agi={"spool_dir": str(tmp_path)}, http={"port": 8080})
    second = first.replace(http={"port": 8081})
    event = {"event": "queued", "call_id": "1795480700.1", "queue": "support", "source": "agi"}
    service_spool(first).keep(event)

    assert await flush_spool(container, service_spool(second)) == 0
    assert await container.calls.events("1795480700.1") == []
    assert len(list(tmp_path.glob("*.json"))) == 1

    assert await flush_spool(container, service_spool(first)) == 1
    assert [e.event for e in await container.calls.events("1795480700.1")] == ["queued"]
    assert list(tmp_path.glob("*.json")) == []
