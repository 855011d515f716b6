"""The C heap's free pages go back to the system (adapters/heap.py)."""

import asyncio
import subprocess
import sys

import pytest

from callcenter.adapters import heap

# blocks over 512 bytes come from glibc's malloc; every 64th is kept, which pins the heap
# (its top cannot shrink) while nearly all its pages are free: the RSS only trimming returns
_FRAGMENT = r"""
import sys
from callcenter.adapters import heap

def anon_kib():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])

blocks = [bytes(1000 + (i * 37) % 3000) for i in range(20_000)]
kept = blocks[::64]
del blocks
before = anon_kib()
released = heap.trimmer()()
after = anon_kib()
print(before, after, released, len(kept))
"""


@pytest.mark.skipif(heap.trimmer() is None, reason="not glibc")
def test_trimming_gives_the_free_pages_of_a_fragmented_heap_back():
    out = subprocess.run(
        [sys.executable, "-c", _FRAGMENT], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after, released = int(out[0]), int(out[1]), int(out[2])
    assert released == 1
    # ~50 MiB were allocated, 1/64 of it is kept: the freed pages leave the RSS
    assert before - after > 20_000, (before, after)


async def test_the_trim_runs_again_and_again_until_cancelled():
    calls = []
    third = asyncio.Event()
    loop = asyncio.get_running_loop()

    def trim() -> int:  # runs on the executor
        calls.append(1)
        if len(calls) == 3:
            loop.call_soon_threadsafe(third.set)
        return 1

    task = asyncio.create_task(heap.trim_every(0, trim=trim))
    await asyncio.wait_for(third.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 3
