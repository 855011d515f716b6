"""The process AGI against several service URLs (comma-separated CALLCENTER_URL): an
instance that refuses connections or never answers is passed over within the call's time
limit, and the caller is routed as the live instance says (not UNVERIFIED)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.agi_peer import Caller, run_process_agi
from tests.conftest import ROOT
from tests.e2e.conftest import VALID, agi_env, free_port
from tests.e2e.test_ivr import SOUNDS, events_of, routed, typed

SCRIPT = ROOT / "agi_scripts" / "collect_certificate.py"


async def _dial(env) -> object:
    return await asyncio.to_thread(
        run_process_agi, [SCRIPT], Caller(actions=[typed(VALID)]), options=SOUNDS, extra_env=env
    )


@pytest.fixture
async def silent_instance():
    """An instance that accepts connections and never answers (hung, or a dead host's NAT)."""
    writers = []

    async def silent(reader, writer):
        writers.append(writer)
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for w in writers:
        w.close()
    server.close()
    await server.wait_closed()


async def test_a_stopped_instance_is_passed_over(
    container, client, pbx_token, registry_data, tmp_path
):
    live = str(client.make_url("/")).rstrip("/")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    res = await _dial(agi_env(f"{dead}, {live}", pbx_token, tmp_path))
    routed(res, "QUEUE", "VALID")
    kinds = [k for k, _ in await events_of(container, res)]
    assert kinds == ["call_started", "certificate_checked", "queued"]
    assert not list((tmp_path / "spool").glob("*.json"))  # nothing left for later


async def test_a_hung_instance_is_passed_over_within_the_budget(
    container, client, pbx_token, registry_data, tmp_path, silent_instance
):
    live = str(client.make_url("/")).rstrip("/")
    res = await _dial(agi_env(f"{silent_instance},{live}", pbx_token, tmp_path))
    routed(res, "QUEUE", "VALID")
    kinds = [k for k, _ in await events_of(container, res)]
    assert kinds == ["call_started", "certificate_checked", "queued"]
    assert not list((tmp_path / "spool").glob("*.json"))


async def test_all_instances_down_is_unverified_and_spooled_for_the_list(
    container, registry_data, tmp_path, silent_instance
):
    from tests.e2e.conftest import local_calendar_env

    urls = f"http://127.0.0.1:{free_port()},{silent_instance}"
    env = agi_env(urls, "x", tmp_path) | local_calendar_env(tmp_path, open_now=True)
    res = await _dial(env)
    routed(res, "QUEUE", "UNVERIFIED")
    kept = [json.loads(p.read_text()) for p in sorted((tmp_path / "spool").glob("*.json"))]
    assert {k["for"] for k in kept} == {urls}
    assert [k["event"]["event"] for k in kept] == ["call_started", "certificate_checked", "queued"]


async def test_a_draining_server_finishes_its_dialogue_and_refuses_new_ones(
    container, registry_data
):
    from callcenter.telephony.fastagi import fastagi_server
    from tests.agi_peer import run_fastagi

    ctx = fastagi_server(container, "127.0.0.1", 0, drain_seconds=20)
    server = await ctx.__aenter__()
    port = server.sockets[0].getsockname()[1]
    # Asterisk connected and is still sending the variables when the stop comes
    call = asyncio.create_task(
        run_fastagi(
            "127.0.0.1",
            port,
            "collect_certificate",
            Caller(actions=[typed(VALID)]),
            options=SOUNDS,
            split_delay=1.5,
        )
    )
    await asyncio.sleep(0.3)
    stopping = asyncio.create_task(ctx.__aexit__(None, None, None))
    refused = False
    for _ in range(100):  # the listening socket goes at once
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
        except ConnectionRefusedError:
            refused = True
            break
        except ConnectionResetError:  # queued as the listening socket closed: not served
            pass
        await asyncio.sleep(0.02)
    assert refused and not call.done()
    res = await call
    routed(res, "QUEUE", "VALID")  # the dialogue in progress ran to its end
    await stopping
    kinds = [k for k, _ in await events_of(container, res)]
    assert kinds == ["call_started", "certificate_checked", "queued"]
