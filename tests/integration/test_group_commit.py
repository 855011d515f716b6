"""Events arriving together share one transaction; each caller still gets its own answer."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.services.group_commit import GroupCommit
from tests.wire import wire


def started(call_id: str, caller: str = "79001234567") -> dict:
    return {"event": "call_started", "call_id": call_id, "caller_number": caller}


async def test_concurrent_events_share_transactions_and_build_every_call(container, clock):
    journal = container.calls.log._journal
    before_batches, before_items = journal.batches, journal.items
    bodies = []
    for i in range(60):
        cid = f"1795480000.{i}"
        bodies += [
            started(cid),
            {
                "event": "certificate_checked",
                "call_id": cid,
                "certificate": "42",
                "status": "VALID",
            },
            {"event": "queued", "call_id": cid, "queue": "support"},
        ]
    results = await asyncio.gather(*(container.calls.record(b, clock.now()) for b in bodies))
    assert all(new for _, new in results)
    assert journal.items - before_items == 180
    assert journal.batches - before_batches < 180  # they really were grouped
    for i in (0, 31, 59):
        call = wire(await container.calls.get(f"1795480000.{i}"), container)
        assert call["caller_number"] == "79001234567"
        assert call["certificate"] == "42"
        assert call["certificate_status"] == "VALID"
        assert call["queue"] == "support"
        assert call["queued_at"] is not None


async def test_the_same_event_twice_in_one_batch_is_new_once(container, clock):
    body = {**started("1795480001.1"), "at": clock.now().isoformat()}
    results = await asyncio.gather(
        *(container.calls.record(dict(body), clock.now()) for _ in range(5))
    )
    assert sorted(new for _, new in results) == [False, False, False, False, True]
    assert len(await container.calls.events("1795480001.1")) == 1


async def test_a_caller_that_goes_away_does_not_cancel_its_write(container, clock):
    task = asyncio.create_task(container.calls.record(started("1795480002.1"), clock.now()))
    await asyncio.sleep(0)  # submitted, not yet written
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await container.calls.drain()
    assert [e.event for e in await container.calls.events("1795480002.1")] == ["call_started"]


async def test_a_failing_batch_is_written_again_one_by_one():
    written: list[int] = []
    calls: list[list[int]] = []

    async def write(items):
        calls.append(list(items))
        await asyncio.sleep(0)
        if 13 in items:
            raise ValueError("thirteen is refused")
        written.extend(items)
        return [i * 10 for i in items]

    journal = GroupCommit(write, name="test")
    first = asyncio.ensure_future(journal.submit(0))
    await asyncio.sleep(0)  # the first is on its way before the rest arrive
    rest = await asyncio.gather(*(journal.submit(i) for i in range(1, 20)), return_exceptions=True)
    results = [await first, *rest]
    assert [r for r in results if not isinstance(r, Exception)] == [
        i * 10 for i in range(20) if i != 13
    ]
    assert isinstance(results[13], ValueError) and "thirteen" in str(results[13])
    assert sorted(written) == [i for i in range(20) if i != 13]
    assert calls[0] == [0]  # a lone first write goes at once
    assert any(len(c) > 1 for c in calls)  # the rest queued up behind it


async def test_batches_are_capped():
    sizes: list[int] = []

    async def write(items):
        sizes.append(len(items))
        await asyncio.sleep(0)
        return list(items)

    journal = GroupCommit(write, max_batch=7, name="test")
    assert await asyncio.gather(*(journal.submit(i) for i in range(40))) == list(range(40))
    assert max(sizes) == 7 and sum(sizes) == 40


async def test_parallel_writers_stay_within_their_limit():
    running = peak = 0

    async def write(items):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        return [i + 1 for i in items]

    journal = GroupCommit(write, parallel=3, max_batch=10, name="test")
    assert await asyncio.gather(*(journal.submit(i) for i in range(200))) == list(range(1, 201))
    assert 1 < peak <= 3


async def test_an_item_arriving_as_the_writer_stops_is_not_left_behind():
    late: list[asyncio.Future] = []

    async def write(items):  # finishes without yielding, and a new item is on its way
        if not late:
            late.append(asyncio.ensure_future(journal.submit("late")))
        return [f"{i}!" for i in items]

    journal = GroupCommit(write, name="test")
    assert await journal.submit("first") == "first!"
    assert await asyncio.wait_for(late[0], 5) == "late!"


async def test_an_outage_fails_the_batch_at_once_not_item_by_item():
    calls: list[list[int]] = []

    async def write(items):
        calls.append(list(items))
        await asyncio.sleep(0)
        raise ConnectionRefusedError("database down")

    journal = GroupCommit(write, is_outage=lambda exc: isinstance(exc, OSError), name="test")
    first = asyncio.ensure_future(journal.submit(0))
    await asyncio.sleep(0)
    rest = await asyncio.gather(*(journal.submit(i) for i in range(1, 30)), return_exceptions=True)
    results = [*rest, await asyncio.gather(first, return_exceptions=True)]
    assert all(isinstance(r, ConnectionRefusedError) for r in rest)
    assert len(calls) == 2  # the lone first write, then one for all the rest: no retries
    assert results


async def test_a_writer_cancelled_before_it_ran_does_not_block_later_writes():
    async def write(items):
        return list(items)

    journal = GroupCommit(write, name="test")
    doomed = asyncio.ensure_future(journal.submit("a"))
    await asyncio.sleep(0)  # submit ran: the writer task exists but has not started
    for task in list(journal._workers):
        task.cancel()
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="writer stopped"):
        await doomed
    assert await asyncio.wait_for(journal.submit("b"), 5) == "b"


async def test_a_keys_items_are_written_in_order_never_by_two_writers_at_once():
    """Two writers: a call's later event waits for the writer storing its earlier one (it
    takes it next), while another call's event goes alongside in the other writer."""
    writing: set[str] = set()
    overlaps: list[str] = []
    written: list[tuple[str, int]] = []
    running = peak = 0
    release = asyncio.Event()

    async def write(items):
        nonlocal running, peak
        keys = {k for k, _ in items}
        overlaps.extend(keys & writing)
        writing.update(keys)
        running += 1
        peak = max(peak, running)
        await release.wait()
        written.extend(items)
        writing.difference_update(keys)
        running -= 1
        return list(items)

    journal = GroupCommit(write, parallel=2, name="test", key=lambda item: item[0])
    first = asyncio.ensure_future(journal.submit(("a", 0)))
    await asyncio.sleep(0)  # the first writer holds ("a", 0)
    later = [asyncio.ensure_future(journal.submit(item)) for item in [("a", 1), ("b", 0)]]
    for _ in range(5):
        await asyncio.sleep(0)  # the second writer starts, with what it may take
    release.set()
    await asyncio.gather(first, *later)
    assert not overlaps
    assert peak == 2  # ("b", 0) went alongside ("a", 0)
    assert [n for k, n in written if k == "a"] == [0, 1]
