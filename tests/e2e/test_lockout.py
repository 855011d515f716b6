"""R-10 as a rate limit on guesses, over the real transports (FastAGI over TCP, the process
AGI as a subprocess over HTTP): callers without a caller ID share one bucket and are locked
out together; lookups of a real certificate (expired) are not guesses."""

from __future__ import annotations

import asyncio

from callcenter.domain.certificates import luhn_complete
from callcenter.services.ivr import caller_key
from callcenter.telephony.fastagi import fastagi_server
from tests.agi_peer import Caller, run_fastagi, run_process_agi
from tests.conftest import ROOT
from tests.e2e.conftest import EXPIRED, VALID, agi_env
from tests.e2e.test_ivr import SOUNDS, routed, typed

#: distinct unknown numbers with a right check digit (they reach the registry)
GUESSES = [luhn_complete(f"2000000{i:05d}") for i in range(40)]


def test_every_form_of_no_caller_id_is_one_bucket():
    assert {caller_key(c) for c in (None, "", "unknown", "anonymous", " Anonymous ")} == {""}
    assert caller_key("8 (900) 555-01-01") == "+79005550101"
    assert caller_key("1001") == "1001"  # an internal extension is somebody


async def test_anonymous_guessers_are_locked_out_across_calls_and_transports(
    container, client, pbx_token, registry_data, tmp_path
):
    """27 wrong numbers in 9 calls without CLI were never locked; now the anonymous bucket
    (20 guesses a window) locks every caller without a caller ID, whichever transport."""
    assert container.ivr.rule.anonymous_failures == 20
    guesses = iter(GUESSES)
    statuses = []
    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        for call in range(6):  # 18 guesses: 6 calls of 3, no caller ID in three spellings
            result = await run_fastagi(
                "127.0.0.1",
                port,
                "collect_certificate",
                Caller(
                    caller_id=[None, "anonymous", ""][call % 3],
                    uniqueid=f"1795483000.{call}",
                    actions=[typed(next(guesses)) for _ in range(3)],
                ),
                options=SOUNDS,
            )
            statuses.append(result.variables.get("CC_CERT_STATUS"))
    assert statuses == ["UNKNOWN"] * 6
    url = str(client.make_url("/")).rstrip("/")
    env = agi_env(url, pbx_token, tmp_path)
    script = [ROOT / "agi_scripts/collect_certificate.py"]
    # the process AGI: one more unknown number, twice: guess 20 reaches the ceiling -> LOCKED
    locked = await asyncio.to_thread(
        run_process_agi,
        script,
        Caller(caller_id=None, uniqueid="1795483100.1", actions=[typed(next(guesses))] * 3),
        options=SOUNDS,
        extra_env=env,
    )
    routed(locked, "REFUSED", "LOCKED")
    # even a valid certificate is refused to an anonymous caller while the lock holds
    again = await asyncio.to_thread(
        run_process_agi,
        script,
        Caller(caller_id="unknown", uniqueid="1795483100.2", actions=[typed(VALID)]),
        options=SOUNDS,
        extra_env=env,
    )
    routed(again, "REFUSED", "LOCKED")
    async with fastagi_server(container, "127.0.0.1", 0) as server:  # and over FastAGI
        port = server.sockets[0].getsockname()[1]
        fast = await run_fastagi(
            "127.0.0.1",
            port,
            "collect_certificate",
            Caller(caller_id="anonymous", uniqueid="1795483100.4", actions=[typed(VALID)]),
            options=SOUNDS,
        )
    routed(fast, "REFUSED", "LOCKED")
    metrics = await (await client.get("/metrics")).text()
    assert 'callcenter_refusals_total{kind="locked"} 3.0' in metrics
    # a caller with a caller ID is not in the anonymous bucket
    known = await asyncio.to_thread(
        run_process_agi,
        script,
        Caller(caller_id="79005550199", uniqueid="1795483100.3", actions=[typed(VALID)]),
        options=SOUNDS,
        extra_env=env,
    )
    routed(known, "QUEUE", "VALID")


async def test_an_expired_certificate_is_not_a_guess(container, registry_data, clock):
    """Five callers looking up the same expired certificate: all told EXPIRED, none locked."""
    for i in range(8):
        result = await container.ivr.check(f"c{i}", f"+7900555{i:04d}", EXPIRED, clock.now())
        assert result["status"] == "EXPIRED"
    # one caller, many times: still told the truth, never locked by real lookups
    for i in range(8):
        result = await container.ivr.check(f"d{i}", "+79005550001", EXPIRED, clock.now())
        assert result["status"] == "EXPIRED"
