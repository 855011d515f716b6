"""Pushes are addressed when published: an agent's socket wakes only for what is theirs."""

from __future__ import annotations

import asyncio

from callcenter.services.notifier import Notifier

OWNERS = {"call-a": "anna", "call-b": "boris", "call-free": None}


async def owner_of(note: dict) -> str | None:
    await asyncio.sleep(0)  # as the database read it stands for: a real suspension
    return OWNERS[note["call_id"]]


def drained(q: asyncio.Queue) -> list[tuple[str, str | None]]:
    out = []
    while not q.empty():
        m = q.get_nowait()
        out.append((m["type"], m.get("call_id") or m.get("login")))
    return out


async def settle() -> None:
    for _ in range(50):  # the router's turns: a few loop iterations per note
        await asyncio.sleep(0)


async def test_each_agent_gets_their_own_calls_the_teams_calls_and_their_state_only():
    n = Notifier()
    n.owner = owner_of
    async with (
        n.subscribe("anna") as anna,
        n.subscribe("anna") as anna_tab2,
        n.subscribe("boris") as boris,
        n.subscribe() as supervisor,
    ):
        n.publish({"type": "window_opened", "call_id": "call-a"})
        n.publish({"type": "window_warning", "call_id": "call-b"})
        n.publish({"type": "call_ended", "call_id": "call-free"})
        n.publish({"type": "agent_state", "login": "boris", "state": "paused"})
        n.publish({"type": "supervisor_alert", "call_id": "call-a"})
        n.publish({"type": "ticket_due_soon", "ticket_id": 7})
        await settle()
        seen_by_anna = [
            ("window_opened", "call-a"),
            ("call_ended", "call-free"),
            ("ticket_due_soon", None),
        ]
        assert drained(anna) == seen_by_anna
        assert drained(anna_tab2) == seen_by_anna
        assert drained(boris) == [
            ("window_warning", "call-b"),
            ("call_ended", "call-free"),
            ("agent_state", "boris"),
            ("ticket_due_soon", None),
        ]
        assert [t for t, _ in drained(supervisor)] == [
            "window_opened",
            "window_warning",
            "call_ended",
            "agent_state",
            "supervisor_alert",
            "ticket_due_soon",
        ]
    assert n.subscribers == 0
    await n.close()


async def test_an_owner_that_cannot_be_read_loses_the_note_for_agents_not_the_router():
    n = Notifier()
    calls = []

    async def flaky(note: dict) -> str | None:
        calls.append(note["call_id"])
        if note["call_id"] == "broken":
            raise ConnectionError("database away")
        return "anna"

    n.owner = flaky
    async with n.subscribe("anna") as anna, n.subscribe() as supervisor:
        n.publish({"type": "window_opened", "call_id": "broken"})
        n.publish({"type": "window_opened", "call_id": "fine"})
        await settle()
        assert drained(anna) == [("window_opened", "fine")]
        assert len(drained(supervisor)) == 2
    assert calls == ["broken", "fine"]
    await n.close()


async def test_a_slow_agent_is_told_to_resync_and_blocks_nobody():
    n = Notifier(queue_size=2)
    n.owner = owner_of
    async with n.subscribe("anna") as anna, n.subscribe("boris") as boris:
        for i in range(5):
            n.publish({"type": "call_updated", "call_id": "call-a", "n": i})
        n.publish({"type": "call_updated", "call_id": "call-b"})
        await settle()
        # anna fell a whole queue behind: what she had not read is gone, and she is told so
        left = [(m["type"], m.get("n")) for m in (anna.get_nowait() for _ in range(anna.qsize()))]
        assert left == [("resync", None), ("call_updated", 4)], left
        assert drained(boris) == [("call_updated", "call-b")]
    await n.close()


async def test_a_supervisor_that_fell_behind_is_told_to_resync_then_gets_what_follows():
    n = Notifier(queue_size=3)
    async with n.subscribe() as board:
        for i in range(3):
            n.publish({"type": "call_connected", "call_id": f"c{i}"})
        assert board.full()
        n.publish({"type": "window_overrun", "call_id": "c0"})
        n.publish({"type": "ticket_created", "call_id": "c0"})
        assert drained(board) == [
            ("resync", None),
            ("window_overrun", "c0"),
            ("ticket_created", "c0"),
        ]
        n.publish({"type": "call_ended", "call_id": "c1"})  # room again: no resync
        assert drained(board) == [("call_ended", "c1")]
    await n.close()
