"""The process-AGI scripts' HTTP client and spool, against real sockets."""

from __future__ import annotations

import asyncio
import json

import pytest

from callcenter.telephony.service_client import ServiceClient
from callcenter.telephony.spool import Spool


async def one_shot_server(answers: list[tuple[int, dict]]):
    """Answers one request per connection, then closes it (no Connection: close header),
    as a keep-alive server does when its idle timeout passes."""
    queue = list(answers)
    seen: list[dict] = []

    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        body = await reader.readexactly(length) if length else b""
        seen.append(json.loads(body) if body else {})
        status, payload = queue.pop(0) if queue else (200, {})
        data = json.dumps(payload).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen


async def test_a_closed_keepalive_socket_is_retried_once():
    server, url, seen = await one_shot_server([(200, {"n": 1}), (200, {"n": 2})])
    try:
        client = ServiceClient(url, "t")
        first = await asyncio.to_thread(client.call, "GET", "/a")
        await asyncio.sleep(0.05)  # the server has closed the socket by now
        second = await asyncio.to_thread(client.call, "GET", "/b")
        client.close()
    finally:
        server.close()
        await server.wait_closed()
    assert (first, second) == ({"n": 1}, {"n": 2})
    assert client.down is False and len(seen) == 2


async def test_a_rejected_event_does_not_block_the_spool(tmp_path):
    server, url, seen = await one_shot_server(
        [(422, {"error": "invalid_event"}), (201, {"stored": True})]
    )
    spool = Spool(str(tmp_path), owner=url)
    spool.keep({"event": "queued", "call_id": "bad"})
    await asyncio.sleep(0.01)
    spool.keep({"event": "queued", "call_id": "good", "queue": "support"})
    try:
        client = ServiceClient(url, "t")
        sent = await asyncio.to_thread(spool.flush, client)
        client.close()
    finally:
        server.close()
        await server.wait_closed()
    assert sent == 1
    assert [e["call_id"] for e in seen] == ["bad", "good"]
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".rejected"]


async def test_a_service_error_keeps_the_event_for_later(tmp_path):
    server, url, _ = await one_shot_server([(503, {"error": "down"})])
    spool = Spool(str(tmp_path), owner=url)
    spool.keep({"event": "queued", "call_id": "1.1", "queue": "support"})
    try:
        client = ServiceClient(url, "t")
        assert await asyncio.to_thread(spool.flush, client) == 0
        client.close()
    finally:
        server.close()
        await server.wait_closed()
    assert len(list(tmp_path.glob("*.json"))) == 1


async def test_a_flush_sends_only_the_events_meant_for_its_service(tmp_path):
    """Two services' scripts share the default folder: each flush posts only its own events,
    and leaves the other's, and an entry from before owners existed, where they are."""
    server, url, seen = await one_shot_server([(201, {"stored": True})] * 3)
    other = "http://10.9.9.9:8080"
    Spool(str(tmp_path), owner=other).keep({"event": "queued", "call_id": "theirs", "queue": "q"})
    Spool(str(tmp_path), owner=url + "/").keep({"event": "queued", "call_id": "ours", "queue": "q"})
    legacy = tmp_path / "1795480000.000000-1.json"
    legacy.write_text(json.dumps({"event": "queued", "call_id": "old", "queue": "q"}))
    try:
        client = ServiceClient(url, "t")
        sent = await asyncio.to_thread(Spool(str(tmp_path), owner=url).flush, client)
        client.close()
    finally:
        server.close()
        await server.wait_closed()
    assert sent == 1
    assert [e["call_id"] for e in seen] == ["ours"]
    left = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]
    assert sorted(e.get("for", "-") for e in left) == ["-", other]
    assert [e["event"]["call_id"] for e in left if "for" in e] == ["theirs"]


def test_a_spool_is_not_flushed_to_another_service(tmp_path):
    client = ServiceClient("http://127.0.0.1:1", "t")
    with pytest.raises(ValueError, match="flushed to"):
        Spool(str(tmp_path), owner="http://127.0.0.1:2").flush(client)
