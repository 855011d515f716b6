"""One timer task per process: sleeps until the earliest deadline, fires, sleeps again.

Deadlines live in the database; the heap here is only a cache of them. On start, and every
``resync_seconds`` (so windows opened by another instance are seen), every pending timer is
loaded and the overdue ones fire at once (Home Assistant's restore pattern). Firing only asks
the use case for a conditional transition, so firing twice, or in two processes, is harmless.

A timer whose fire fails is tried again with a growing delay. While the database is away
(``is_outage``) it is retried for as long as that lasts; any other failure (stored data the
use case cannot handle, a bug) is not cured by waiting, so after ``max_attempts`` the timer
is *parked*: one ERROR with the traceback, ``on_parked`` (the metric), a ``supervisor_alert``
push, and no more fires of it in this process (the periodic reload skips it) until its state
changes and a new timer is armed for it. Nothing stored can keep the loop failing forever.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from callcenter.domain.samples import FloatRing
from callcenter.domain.timers import TimerKind

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0  # the first retry; then twice as long each time
MAX_RETRY_SECONDS = 300.0
MAX_ATTEMPTS = 5  # fires of a timer that fails for another reason than an outage
#: the last fire lags kept (bench_windows reads them): 8 bytes each, 0.8 MB when full
LAGS_KEPT = 100_000


class Scheduler:
    def __init__(
        self,
        timing,
        tickets,
        clock,
        resync_seconds: float = 30.0,
        max_sleep: float = 60.0,
        parallel: int = 8,
        *,
        batch: int = 500,
        notifier=None,
        is_outage: Callable[[BaseException], bool] = lambda exc: False,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.timing, self.tickets, self.clock = timing, tickets, clock
        self.notifier = notifier
        self.is_outage = is_outage
        self.max_attempts = max_attempts
        self._failures: dict[tuple[str, Any], int] = {}  # (kind, key) -> failed fires in a row
        self.parked: set[tuple[str, Any]] = set()
        #: metrics: a timer parked (kind); wired by bootstrap
        self.on_parked: Callable[[str], None] = lambda kind: None
        self.resync_seconds = resync_seconds
        self.max_sleep = max_sleep
        self.parallel = parallel
        #: window deadlines fired together in one transaction, at most (0: one by one)
        self.batch = batch
        self._batches = batch > 1 and hasattr(timing, "fire_deadlines")
        #: drainers of the due window deadlines at once (each one batch at a time)
        self.deadline_lanes = 2
        self._deadlines: list[tuple[datetime, str, Any]] = []  # due, waiting for a batch
        self._queued: set[Any] = set()  # their keys
        self._drainers = 0
        self._gate = asyncio.Semaphore(parallel)
        self._inflight: set[asyncio.Task] = set()  # owned: cancelled and awaited by run()
        self._heap: list[tuple[datetime, int, str, Any]] = []
        self._armed: set[tuple[datetime, str, Any]] = set()
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self.fired = 0
        #: due time to the end of its fire (the transaction committed): the fire lag
        self.lag_seconds = FloatRing(LAGS_KEPT)
        #: due time to the start of its fire (what ``lag_seconds`` was before fires were
        #: batched): the two together say how much of the lag is the fire's own work
        self.start_lag_seconds = FloatRing(LAGS_KEPT)
        self.on_lag: Callable[[str, float], None] = lambda kind, seconds: None  # metrics

    def add(self, when: datetime | None, kind: str, key: Any) -> None:
        """Arm a timer (duplicates are dropped); wakes the loop when it is the new earliest.

        A use case arms one after a state change, which may be what a parked timer of the same
        kind and key waited for: it is tried afresh."""
        if when is not None:
            self.parked.discard((str(kind), key))
            self._failures.pop((str(kind), key), None)
        self._arm(when, kind, key)

    def _arm(self, when: datetime | None, kind: str, key: Any) -> None:
        if when is None or (when, kind, key) in self._armed:
            return
        self._armed.add((when, kind, key))
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (when, next(self._seq), kind, key))
        if earliest is None or when < earliest:
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._heap)

    async def load(self) -> int:
        """Arm every pending timer from the database."""
        timers = await self.timing.pending_timers()
        for when, kind, key in timers:
            if (str(kind), key) not in self.parked and (str(kind), key) not in self._failures:
                self._arm(when, kind, key)  # a failing one is already armed for its retry
        return len(timers)

    async def fire_due(self) -> int:
        """Fire every timer whose time has come and wait for them; returns how many
        transitions happened (what tests call after moving the clock)."""
        return sum(int(n) for n in await asyncio.gather(*self._start_due()))

    def _start_due(self) -> list[asyncio.Task]:
        """Start the due timers' fires, at most ``parallel`` running at once. The loop does
        not wait for them: one at a time, a PostgreSQL escalation's ~15 ms of round trips let
        a steady stream of deadlines fall seconds behind.

        Window deadlines join a queue that ``deadline_lanes`` drainers empty, ``batch`` at a
        time in one transaction each: what falls due while a batch is being written goes in
        the next one (10,000 windows falling due at once were 10,000 transactions of ten
        statements each, and a stream of them fell minutes behind under load). The other
        timers fire one by one."""
        now = self.clock.now()
        due = []
        while self._heap and self._heap[0][0] <= now:
            when, _, kind, key = heapq.heappop(self._heap)
            self._armed.discard((when, kind, key))
            if kind == TimerKind.WINDOW_DEADLINE and self._batches:
                if key not in self._queued:  # queued already: its fire decides as of then
                    self._queued.add(key)
                    self._deadlines.append((when, kind, key))
            else:
                due.append((when, kind, key))
        gate = self._gate

        async def fire(when: datetime, kind: str, key: Any) -> bool:
            async with gate:
                return await self._fire_one(when, kind, key, now)

        coros = [fire(*d) for d in due]
        if self._deadlines:
            wanted = -(-len(self._deadlines) // self.batch)
            while self._drainers < min(self.deadline_lanes, wanted):
                self._drainers += 1
                coros.append(self._drain())
        tasks = [asyncio.create_task(c) for c in coros]
        self._inflight.update(tasks)
        for task in tasks:
            task.add_done_callback(self._inflight.discard)
        return tasks

    async def _drain(self) -> int:
        """Fire the queued window deadlines, a batch at a time, until none is left."""
        fired = 0
        try:
            while self._deadlines:
                part = self._deadlines[: self.batch]
                del self._deadlines[: self.batch]
                try:
                    async with self._gate:
                        now = self.clock.now()
                        if len(part) == 1:
                            fired += int(await self._fire_one(*part[0], now))
                        else:
                            fired += await self._fire_batch(part, now)
                finally:
                    self._queued.difference_update(key for _, _, key in part)
        finally:
            self._drainers -= 1
        return fired

    def _lag(self, when: datetime, kind: str) -> None:
        """Due time to now, taken once the fire's transaction committed (or failed)."""
        lag = (self.clock.now() - when).total_seconds()
        self.lag_seconds.append(lag)
        self.on_lag(str(kind), lag)

    def _started(self, when: datetime) -> None:
        self.start_lag_seconds.append((self.clock.now() - when).total_seconds())

    async def _fire_one(self, when: datetime, kind: str, key: Any, now: datetime) -> bool:
        self._started(when)
        try:
            changed = await self._fire(kind, key, now)
        except Exception as exc:
            self._lag(when, kind)
            self._failed(kind, key, now, exc)
            return False
        self._lag(when, kind)
        self._failures.pop((str(kind), key), None)
        self.fired += int(changed)
        return changed

    async def _fire_batch(self, timers: list[tuple[datetime, str, Any]], now: datetime) -> int:
        """Window deadlines in one transaction. If it fails, an outage retries each timer as
        alone; anything else fires them one by one, so one window the batch cannot take fails
        (and is parked) alone and does not hold the others back."""
        for when, _, _ in timers:
            self._started(when)
        try:
            changed = await self.timing.fire_deadlines([key for _, _, key in timers], now)
        except Exception as exc:
            if not self.is_outage(exc):
                log.warning(
                    "%d window deadlines failed together (%s: %s); firing them one by one",
                    len(timers),
                    type(exc).__name__,
                    exc,
                )
                return sum([await self._fire_one(when, k, key, now) for when, k, key in timers])
            for when, kind, key in timers:
                self._lag(when, kind)
                self._failed(kind, key, now, exc)
            return 0
        fired = 0
        for when, kind, key in timers:
            self._lag(when, kind)
            self._failures.pop((str(kind), key), None)
            if changed.pop(key, False):  # a key armed twice counts once
                fired += 1
        self.fired += fired
        return fired

    def _failed(self, kind: str, key: Any, now: datetime, exc: Exception) -> None:
        """Retry later, with a growing delay; park what waiting will not cure."""
        ident = (str(kind), key)
        attempts = self._failures.get(ident, 0) + 1
        outage = self.is_outage(exc)
        if not outage and attempts >= self.max_attempts:
            self._failures.pop(ident, None)
            self._park(kind, key, attempts, exc)
            return
        self._failures[ident] = attempts
        delay = min(MAX_RETRY_SECONDS, RETRY_SECONDS * 2 ** (attempts - 1))
        # one line, no traceback: the ERROR with it comes once, if the timer is parked
        (log.warning if attempts == 1 else log.info)(
            "timer %s %s failed (%s: %s); try %d again in %.0f s",
            kind,
            key,
            type(exc).__name__,
            exc,
            attempts + 1,
            delay,
        )
        self._arm(now + timedelta(seconds=delay), kind, key)

    def _park(self, kind: str, key: Any, attempts: int, exc: Exception) -> None:
        self.parked.add((str(kind), key))
        log.error(
            "timer %s %s parked after %d failed fires; it will not fire again until its "
            "call or ticket changes (or the service restarts)",
            kind,
            key,
            attempts,
            exc_info=exc,
        )
        self.on_parked(str(kind))
        if self.notifier is not None:
            self.notifier.publish(
                {
                    "type": "supervisor_alert",
                    "kind": "timer_parked",
                    "timer": str(kind),
                    "key": key,
                    "call_id": key if isinstance(key, str) else None,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )

    async def _fire(self, kind: TimerKind, key: Any, now: datetime) -> bool:
        match TimerKind(kind):
            case TimerKind.WINDOW_WARNING:
                return await self.timing.fire_warning(key, now)
            case TimerKind.WINDOW_DEADLINE:
                return await self.timing.fire_deadline(key, now)
            case TimerKind.TICKET_WARN75:
                return await self.tickets.fire_warning(key, 75, now)
            case TimerKind.TICKET_WARN90:
                return await self.tickets.fire_warning(key, 90, now)

    async def run(self) -> None:
        """The loop; cancel the task to stop it (fires in flight are cancelled and awaited)."""
        try:
            await self._loop()
        finally:
            for task in list(self._inflight):
                task.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)
            # deadlines queued and not fired: still running in the database, loaded again
            self._deadlines.clear()
            self._queued.clear()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_resync = 0.0
        while True:
            if loop.time() >= next_resync:
                try:
                    await self.load()
                except Exception:
                    log.exception("could not load timers; will try again")
                next_resync = loop.time() + self.resync_seconds
            self._start_due()
            await asyncio.sleep(0)  # let the fires start before computing the next sleep
            delay = min(self.max_sleep, next_resync - loop.time())
            if self._heap:
                delay = min(delay, (self._heap[0][0] - self.clock.now()).total_seconds())
            self._wake.clear()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
