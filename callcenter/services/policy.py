"""Use cases of the versioned policy: read the book, publish a version with notice."""

from __future__ import annotations

import asyncio
import time as _time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from callcenter.domain.policy import PolicyBook, PolicyVersion, check_notice


class PolicyService:
    """The policy book (base version from config + published ones), re-read every little while."""

    def __init__(
        self,
        uow_factory: Callable,
        base: PolicyVersion,
        min_notice_days: int = 15,
        refresh_seconds: float = 30.0,
        read_uow: Callable | None = None,
    ) -> None:
        self._uow = uow_factory
        #: the book is read in a read-only unit of work: on SQLite one that does not wait
        #: for the writers' turn, so a writer (a batch of events following a window) that
        #: asks for the book while another caller's read of it is under way does not wait
        #: for a read that waits for it
        self._read_uow = read_uow or uow_factory
        self.base = base
        self.min_notice_days = min_notice_days
        self._refresh = refresh_seconds
        self._book: PolicyBook | None = None
        self._loaded_at = 0.0
        #: the read in progress, shared by everyone who asks meanwhile (at 300 calls/s a
        #: stale book would otherwise be read again by every dialogue until one read ends)
        self._loading: asyncio.Future[PolicyBook] | None = None
        self._generation = 0  # a publish since a read began: that read's book is not kept

    async def book(self) -> PolicyBook:
        if self._book is not None and _time.monotonic() - self._loaded_at <= self._refresh:
            return self._book
        loading = self._loading
        if loading is None or loading.get_loop() is not asyncio.get_running_loop():
            loading = self._loading = asyncio.ensure_future(self._load(self._generation))
            loading.add_done_callback(self._loaded)
        # one caller giving up (its budget ran out) does not cancel the others' read
        return await asyncio.shield(loading)

    async def _load(self, generation: int) -> PolicyBook:
        async with self._read_uow() as uow:
            book = PolicyBook(self.base, await uow.policies.list())
        if generation == self._generation:
            self._book, self._loaded_at = book, _time.monotonic()
        return book

    def _loaded(self, loading: asyncio.Future) -> None:
        if self._loading is loading:
            self._loading = None
        if not loading.cancelled():
            loading.exception()  # retrieved: each waiter has been handed it

    async def in_force_at(self, at: datetime) -> PolicyVersion:
        return (await self.book()).in_force_at(at)

    async def publish(self, version: PolicyVersion, now: datetime) -> PolicyVersion:
        """Store a new version if it is sane and announced early enough (clause 6.4)."""
        version.check()
        check_notice(version, now, self.min_notice_days)
        stored = replace(version, published_at=now)
        async with self._uow() as uow:
            new_id = await uow.policies.add(stored)
            await uow.commit()
        self._book, self._loading = None, None
        self._generation += 1
        return replace(stored, id=new_id)
