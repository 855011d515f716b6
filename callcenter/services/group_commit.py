"""Group commit: writes that arrive while one transaction runs share the next one.

A lone write goes at once (no added wait when the line is quiet); under load every
transaction carries all that queued behind the previous one, so its fixed cost (round trips,
BEGIN/COMMIT, an fsync) is paid once per batch instead of once per event. A batch that fails
is written again one item at a time, so one bad item, or a database that fails for a moment,
costs each caller only its own answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any

log = logging.getLogger(__name__)

WriteBatch = Callable[[Sequence[Any]], Awaitable[Sequence[Any]]]


class GroupCommit:
    """``parallel`` writers at most: 1 where the database has one writer anyway (SQLite);
    a few where a transaction mostly waits on round trips (PostgreSQL).

    With ``key`` (an item's call, say), items of one key are written in the order they were
    submitted: a batch leaves in the queue the items whose key is in another writer's batch
    still being written, and that writer takes them next. Writers never wait on each
    other's rows, and a later item is never stored before an earlier one of its key.
    """

    def __init__(
        self,
        write: WriteBatch,
        *,
        max_batch: int = 256,
        parallel: int = 1,
        name: str = "writes",
        is_outage: Callable[[BaseException], bool] = lambda exc: False,
        key: Callable[[Any], Hashable] | None = None,
    ) -> None:
        self._write = write
        self._key = key
        self._writing: set[Hashable] = set()  # the keys of the batches being written
        self._is_outage = is_outage  # then every item would fail alike: no one-by-one retry
        self._max = max_batch
        self._parallel = max(1, parallel)
        self._name = name
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self._workers: set[asyncio.Task] = set()
        self.batches = 0  # batches written, and the items in them: how much was grouped
        self.items = 0

    async def submit(self, item: Any) -> Any:
        """Write ``item`` with whatever else is waiting; its own result or exception."""
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieved)
        self._queue.append((item, fut))
        if len(self._workers) < self._parallel:
            task = asyncio.create_task(self._run(), name=f"group-commit-{self._name}")
            self._workers.add(task)
            task.add_done_callback(self._worker_done)
        # the writer owns the item now: a caller that goes away does not cancel its write
        return await asyncio.shield(fut)

    def _worker_done(self, task: asyncio.Task) -> None:
        """Also for a writer cancelled before it ever ran, whose own finally never ran."""
        self._workers.discard(task)
        if task.cancelled() and not self._workers:
            self._stop_queue()

    def _stop_queue(self) -> None:
        _fail(self._queue, RuntimeError(f"{self._name}: writer stopped"))
        self._queue.clear()

    async def drain(self) -> None:
        """Wait until everything submitted so far is written (shutdown)."""
        while self._workers:
            await asyncio.wait(list(self._workers))

    async def _run(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                if not batch:  # all that waits is another writer's to take when it is done
                    break
                keys = {self._key(item) for item, _ in batch} if self._key else set()
                self._writing |= keys
                try:
                    await self._flush(batch)
                finally:
                    self._writing -= keys
        except BaseException:  # cancelled (shutdown), or a bug
            if len(self._workers) <= 1:  # the last writer: nobody is left to take the queue
                self._stop_queue()
            raise
        finally:
            # at once, not only in the done-callback: a submit arriving in between would find
            # the writer "busy" and its item would wait for nobody
            self._workers.discard(asyncio.current_task())

    def _take(self) -> list[tuple[Any, asyncio.Future]]:
        """The next batch: the oldest items, but none whose key another writer is writing."""
        if self._key is None or not self._writing:
            batch = self._queue[: self._max]
            del self._queue[: self._max]
            return batch
        batch, kept = [], []
        for entry in self._queue:
            if len(batch) < self._max and self._key(entry[0]) not in self._writing:
                batch.append(entry)
            else:
                kept.append(entry)
        self._queue[:] = kept
        return batch

    async def _flush(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        try:
            await self._write_batch(batch)
        except BaseException as exc:  # cancelled, or a bug: nobody is left waiting forever
            _fail(batch, RuntimeError(f"{self._name}: writer stopped ({exc!r})"))
            raise

    async def _write_batch(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._write(items)
        except Exception as exc:
            if len(batch) == 1 or self._is_outage(exc):
                _fail(batch, exc)
                return
            log.warning(
                "%s: a batch of %d failed (%s); writing one by one", self._name, len(batch), exc
            )
            for item, fut in batch:
                try:
                    (result,) = await self._write([item])
                except Exception as one:
                    _settle(fut, exc=one)
                else:
                    _settle(fut, result)
            return
        self.batches += 1
        self.items += len(batch)
        for (_, fut), result in zip(batch, results, strict=True):
            _settle(fut, result)


def _retrieved(fut: asyncio.Future) -> None:
    """A caller that went away leaves no 'exception never retrieved' noise behind."""
    if not fut.cancelled():
        fut.exception()


def _fail(pending: list[tuple[Any, asyncio.Future]], exc: BaseException) -> None:
    """Every caller still waiting in ``pending`` gets ``exc``."""
    for _, fut in pending:
        _settle(fut, exc=exc)


def _settle(fut: asyncio.Future, result: Any = None, exc: BaseException | None = None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
