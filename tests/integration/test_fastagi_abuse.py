"""A hostile FastAGI peer, over real sockets: one WARNING line naming the peer and what was
wrong, never an ERROR or a traceback; idle connections and over-long lines are closed; the
server goes on serving Asterisk."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.telephony.fastagi import MAX_LINE, fastagi_server
from tests.agi_peer import Caller, Hangup, run_fastagi

LOGGER = "callcenter.telephony.fastagi"


@pytest.fixture
def quick(container):
    """The container with a short idle timeout, so the idle test takes a fraction of a second."""
    container.settings = container.settings.replace(fastagi={"idle_timeout_seconds": 0.3})
    return container


async def _talk(port: int, data: bytes, *, wait: float = 5.0, must_close: bool = True) -> bytes:
    """Send ``data``, then read until the server closes; what it said. ``must_close=False``:
    a server that waits for an AGI reply (it took the env for AGI) is left after ``wait``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if data:
            writer.write(data)
            await writer.drain()
        if not must_close:
            try:
                async with asyncio.timeout(wait):
                    return await reader.read()
            except TimeoutError:
                return b""
        async with asyncio.timeout(wait):  # the server must close: a hang fails the test
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def _only_warnings(caplog, port: int | None = None) -> list[logging.LogRecord]:
    records = [r for r in caplog.records if r.name == LOGGER]
    assert not [r for r in records if r.levelno >= logging.ERROR], [r.getMessage() for r in records]
    assert not [r for r in records if r.exc_info], "a traceback was logged"
    return [r for r in records if r.levelno == logging.WARNING]


async def test_an_idle_connection_is_closed_after_the_timeout(quick, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with fastagi_server(quick, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        started = loop.time()
        said = await _talk(port, b"", wait=3.0)
        took = loop.time() - started
    assert said == b"" and 0.25 <= took < 2.0
    (line,) = _only_warnings(caplog)
    assert "127.0.0.1:" in line.getMessage() and "idle" in line.getMessage()
    assert (
        quick.metrics.registry.get_sample_value(
            "callcenter_fastagi_refused_total", {"reason": "idle"}
        )
        == 1
    )


async def test_an_over_long_line_closes_the_connection_with_one_warning(container, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        said = await _talk(port, b"agi_network: yes\n" + b"x" * (MAX_LINE + 10) + b"\n")
    assert said == b""
    (line,) = _only_warnings(caplog)
    assert "longer than" in line.getMessage() and "127.0.0.1:" in line.getMessage()


async def test_an_unknown_script_from_a_silent_peer_is_not_held_past_the_idle_timeout(
    quick, caplog
):
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with fastagi_server(quick, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        env = b"agi_network: yes\nagi_network_script: nowhere\n\n"
        said = await _talk(port, env, wait=3.0)  # must close, well before REPLY_TIMEOUT
    assert said.startswith(b"VERBOSE")
    (line,) = _only_warnings(caplog)
    assert "unknown script 'nowhere'" in line.getMessage() and "127.0.0.1:" in line.getMessage()


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # a web scanner
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\n\n",  # TLS
        b"no colon here\n\n",
        b":\n\n",
        b"agi_network: yes\nagi_network_script: nowhere\n\n",  # AGI, but no such script
        b"agi_network: yes\nagi_network_script: collect_certificate\n\n",  # a bare env
    ],
)
async def test_garbage_gives_one_warning_and_no_traceback(container, caplog, garbage):
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        is_env = garbage.startswith(b"agi_network")
        await _talk(port, garbage, wait=0.3 if is_env else 5.0, must_close=not is_env)
        await asyncio.sleep(0.05)  # the session's last log line
    warnings = _only_warnings(caplog)
    if garbage.endswith(b"collect_certificate\n\n"):
        return  # an env that is AGI: the flow runs (and the peer's silence ends it)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "127.0.0.1:" in warnings[0].getMessage()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
async def test_any_bytes_then_a_real_call_still_works(container, caplog, chunks):
    """Whatever a peer sends, the log holds no ERROR and the next Asterisk call works."""
    caplog.clear()
    caplog.set_level(logging.INFO, logger=LOGGER)
    container.settings = container.settings.replace(fastagi={"idle_timeout_seconds": 0.2})
    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await _talk(port, b"\n".join(chunks) + b"\n\n", wait=0.5, must_close=False)
        await asyncio.sleep(0.02)
        _only_warnings(caplog)
        ok = await run_fastagi("127.0.0.1", port, "call_ended", Caller(actions=[Hangup()]))
    assert ok.agistatus == "SUCCESS", ok.timeline


async def test_stopping_mid_dialogue_ends_sessions_quietly(container, caplog):
    """A dialogue cut short by the service stopping is one INFO line, not asyncio's ERROR
    with a traceback (its stream callback asks a cancelled task for its exception)."""
    caplog.set_level(logging.INFO)
    async with fastagi_server(container, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"agi_network: yes\nagi_network_script: collect_certificate\n"
            b"agi_channel: PJSIP/trunk-00000001\nagi_linkedid: 1795480500.9\n"
            b"agi_callerid: 79001234567\n\n"
        )
        await writer.drain()
        first = await asyncio.wait_for(reader.readline(), 5)  # the dialogue's first command
        assert first.strip()
    # the server is gone, with the session in the middle of waiting for our reply
    await asyncio.sleep(0.05)  # let asyncio run the stream callbacks it would log from
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, not left hanging
    writer.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert any("service is stopping" in r.getMessage() for r in caplog.records)
