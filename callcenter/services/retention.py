"""Personal data kept no longer than needed (Russian law on personal data, 152-FZ).

Calls older than ``[retention] personal_data_months`` lose the caller's number, name,
organisation and the free texts about them; their tickets lose the requester's name,
organisation, description, the answer's text and the voicemail recording. Every instant
(started, queued, connected, ended, the oral window, received, due, answered) and every
status stays, so the call log's timing and every report figure are the same after the run.
Idempotent: only rows that still hold personal data are written, so a second run changes
nothing. ``serve`` runs it daily; ``callcenter retention run [--dry-run]`` on demand.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

log = logging.getLogger(__name__)

DAY_SECONDS = 86400.0


def months_before(now: datetime, months: int) -> datetime:
    """The same instant ``months`` calendar months earlier (the 31st becomes the month's
    last day)."""
    total = now.year * 12 + (now.month - 1) - months
    year, month = divmod(total, 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


@dataclass(frozen=True)
class RetentionReport:
    cutoff: datetime
    dry_run: bool
    calls: int
    events: int
    ivr_failures: int
    tickets: int
    recordings: int
    outbox: int

    @property
    def changed(self) -> int:
        return self.calls + self.events + self.ivr_failures + self.tickets + self.outbox

    def to_dict(self) -> dict:
        out = asdict(self)
        out["cutoff"] = self.cutoff.isoformat()
        return out


class Retention:
    def __init__(
        self,
        uow_factory,
        months: int,
        forget_recording: Callable[[str], bool],
        slice_days: float = 7.0,
    ) -> None:
        self._uow = uow_factory
        self.months = months
        #: how much of the history one transaction anonymises (see :meth:`_slices`)
        self.slice_days = slice_days
        #: deletes a recording by its stored name; True if a file was there
        self._forget_recording = forget_recording

    async def run(
        self, now: datetime, *, dry_run: bool = False, months: int | None = None
    ) -> RetentionReport:
        months = self.months if months is None else months
        if months <= 0:
            raise ValueError("retention is off (personal_data_months = 0)")
        cutoff = months_before(now, months)
        if dry_run:
            counts = await self._pass(cutoff, apply=False)
        else:
            counts = [0, 0, 0, 0, 0, 0]
            async for done in self._slices(cutoff):
                counts = [a + b for a, b in zip(counts, done, strict=True)]
        calls, events, failures, tickets, recordings, outbox = counts
        report = RetentionReport(
            cutoff, dry_run, calls, events, failures, tickets, recordings, outbox
        )
        log.info(
            "retention%s: before %s: %d call(s), %d event(s), %d IVR failure(s), %d ticket(s),"
            " %d recording(s), %d outbox message(s)",
            " (dry run)" if dry_run else "",
            cutoff.isoformat(timespec="seconds"),
            calls,
            events,
            failures,
            tickets,
            recordings,
            outbox,
        )
        return report

    async def _slices(self, cutoff: datetime):
        """Applies the job from the oldest personal row up to the cutoff, ``slice_days`` of
        rows per transaction: a first run over years of calls never holds the database (on
        SQLite: its only writer) for long, and the line's own writes get in between slices.
        Each slice is idempotent, so a crash midway leaves a consistent state for the next run.
        """
        step = timedelta(days=self.slice_days)
        done_to: datetime | None = None
        while done_to is None or done_to < cutoff:
            async with self._uow() as uow:
                oldest = await uow.retention.oldest(cutoff)
            if oldest is None:
                return
            # always forward, even past a row the statements cannot clear
            start = oldest if done_to is None else max(oldest, done_to)
            done_to = min(start + step, cutoff)
            yield await self._pass(done_to, apply=True)
            await asyncio.sleep(0)

    async def _pass(self, before: datetime, *, apply: bool) -> list[int]:
        """One transaction over the rows older than ``before``; recordings are deleted only
        once it is committed (a crash in between leaves stray files, never a name the
        database still holds)."""
        async with self._uow() as uow:
            r = uow.retention
            calls = await r.calls(before, apply=apply)
            events = await r.events(before, apply=apply)
            failures = await r.ivr_failures(before, apply=apply)
            tickets, recordings = await r.tickets(before, apply=apply)
            outbox = await r.outbox(before, apply=apply)
            if apply:
                await uow.commit()
        if apply:
            for name in recordings:
                await asyncio.to_thread(self._forget_recording, name)
        return [calls, events, failures, tickets, len(recordings), outbox]

    async def run_daily(self, clock, interval: float = DAY_SECONDS) -> None:
        """Once at start, then every ``interval`` seconds; a failed run is logged and the
        next one tries again (nothing is lost by waiting a day)."""
        while True:
            try:
                await self.run(clock.now())
            except Exception:
                log.exception("retention run failed; the next one is in %.0f s", interval)
            await asyncio.sleep(interval)
