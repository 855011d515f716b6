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
