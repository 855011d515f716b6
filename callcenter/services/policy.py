"""Use cases of the versioned policy: read the book, publish a version with notice."""

from __future__ import annotations

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
    ) -> None:
        self._uow = uow_factory
        self.base = base
        self.min_notice_days = min_notice_days
        self._refresh = refresh_seconds
        self._book: PolicyBook | None = None
        self._loaded_at = 0.0

    async def book(self) -> PolicyBook:
        if self._book is None or _time.monotonic() - self._loaded_at > self._refresh:
            async with self._uow() as uow:
                self._book = PolicyBook(self.base, await uow.policies.list())
            self._loaded_at = _time.monotonic()
        return self._book

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
        self._book = None
        return replace(stored, id=new_id)
