"""Heap snapshots of a serving instance, to find what grows with the calls served (issue 14).

Off unless ``CALLCENTER_TRACEMALLOC=<prefix>`` is set: then ``serve`` starts ``tracemalloc``
(``CALLCENTER_TRACEMALLOC_FRAMES`` frames per allocation, 10) and on each SIGUSR2 writes
``<prefix>.<pid>.<n>.snap`` and logs the traced heap's size. Tracing slows the process
about twofold: a diagnostic, never for production. With ``CALLCENTER_TRACEMALLOC_FRAMES=0``
nothing is traced (no cost); each SIGUSR2 then only writes the allocators' own figures to
stderr (the log): pymalloc's (``sys._debugmallocstats``: arenas held against bytes in use)
and glibc's (``malloc_stats``: per arena, system bytes against in use), which tell live
objects from memory held and not given back. Compare two snapshots, grouped by traceback,
largest growth first::

    python -m callcenter.memtrace OLD.snap NEW.snap [--top 25] [--by lineno]

``bench/bench_load.py --tracemalloc PREFIX`` passes the switch to both instances and
signals them at every progress line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tracemalloc

log = logging.getLogger(__name__)
ENV, FRAMES_ENV = "CALLCENTER_TRACEMALLOC", "CALLCENTER_TRACEMALLOC_FRAMES"


def install(loop: asyncio.AbstractEventLoop, environ=os.environ) -> bool:
    """Start tracing and dump a snapshot on SIGUSR2, if the switch is set; whether it is."""
    prefix = environ.get(ENV)
    if not prefix:
        return False
    frames = int(environ.get(FRAMES_ENV, "10"))
    if frames > 0:
        tracemalloc.start(frames)
    count = 0

    def dump() -> None:
        nonlocal count
        count += 1
        if not frames:
            allocator_stats(count)
            return
        path = f"{prefix}.{os.getpid()}.{count}.snap"
        snap = tracemalloc.take_snapshot()
        snap.dump(path)
        size, peak = tracemalloc.get_traced_memory()
        log.warning("tracemalloc: %s (traced %.1f MiB, peak %.1f MiB)", path, size / 2**20,
                    peak / 2**20)  # fmt: skip

    loop.add_signal_handler(signal.SIGUSR2, dump)
    return True


def allocator_stats(n: int) -> None:
    """pymalloc's and glibc's figures, on stderr (C stdio: flushed here)."""
    import ctypes

    print(f"=== memtrace {n} pid {os.getpid()} allocated blocks {sys.getallocatedblocks()}",
          file=sys.stderr, flush=True)  # fmt: skip
    sys._debugmallocstats()
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_stats()
        libc.fflush(None)
    except (OSError, AttributeError):  # not glibc
        pass


def compare(old: str, new: str, top: int = 25, by: str = "traceback", out=print) -> None:
    """The ``top`` allocation sites whose size grew most from ``old`` to ``new``."""
    filters = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    ]
    a = tracemalloc.Snapshot.load(old).filter_traces(filters)
    b = tracemalloc.Snapshot.load(new).filter_traces(filters)
    total_a = sum(s.size for s in a.statistics("filename"))
    total_b = sum(s.size for s in b.statistics("filename"))
    out(f"traced: {total_a / 2**20:.2f} -> {total_b / 2**20:.2f} MiB")
    for d in b.compare_to(a, by)[:top]:
        out(f"{d.size_diff / 1024:+10.1f} KiB {d.count_diff:+8d} blocks "
            f"(now {d.size / 1024:.1f} KiB in {d.count})")  # fmt: skip
        frames = d.traceback.format(limit=-12 if by == "traceback" else 1)
        for line in frames:
            out("      " + line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compare two tracemalloc snapshots")
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--by", default="traceback", choices=["traceback", "lineno", "filename"])
    a = ap.parse_args(argv)
    compare(a.old, a.new, a.top, a.by)
    return 0


if __name__ == "__main__":
    sys.exit(main())
