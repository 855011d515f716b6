"""What the IVR asks of the service: working time, the caller-ID shortcut, checked lookups."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from callcenter.domain.cert_status import LOCKED
from callcenter.domain.certificates import LookupStatus, normalize_phone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockoutRule:
    failures: int = 5
    window_seconds: int = 3600


class IvrService:
    def __init__(
        self, uow_factory: Callable, registry, policy, calendars, rule: LockoutRule
    ) -> None:
        self._uow = uow_factory
        self.registry = registry
        self.policy = policy
        self.calendars = calendars
        self.rule = rule

    async def working_time(self, at: datetime) -> tuple[bool, datetime]:
        """Whether the line is open at ``at`` under the policy then in force, and when it opens."""
        cal = self.calendars.for_policy(await self.policy.in_force_at(at))
        return cal.is_open(at), cal.next_opening(at)

    async def caller_certificates(self, caller: str, at: datetime) -> list[dict]:
        """The caller-ID shortcut: certificates naming this phone as an authorised contact."""
        return [
            {"number": r.number, "last4": r.number[-4:], "status": r.status.value}
            for r in await self.registry.by_phone(caller, at)
        ]

    async def check(self, call_id: str, caller: str | None, number: str, at: datetime) -> dict:
        """A lookup that counts failures, so guessing is locked out across calls (R-10).

        The counts are read on the lock-free read path; only a failure, or the holder's very
        first request (R-7), costs a write.
        """
        phone = normalize_phone(caller or "")
        since = at - timedelta(seconds=self.rule.window_seconds)
        reader = self.registry.reader
        if self._locked(*await reader.failures(since, phone, number)):
            log.warning("call %s: locked out before lookup", call_id)
            return {"status": LOCKED, "last4": number[-4:]}
        result = await self.registry.lookup(number, at)
        status = result.status.value
        if result.status is LookupStatus.VALID:
            if result.certificate.first_request_at is None:
                async with self._uow() as uow:
                    await uow.certificates.mark_first_request(number, at)
                    await uow.commit()
            return {"status": status, "last4": number[-4:]}
        async with self._uow() as uow:
            await uow.lockouts.add_failure(call_id, phone, number, status, at)
            await uow.commit()
        if self._locked(*await reader.failures(since, phone, number)):
            log.warning("call %s: lockout threshold reached", call_id)
            status = LOCKED
        return {"status": status, "last4": number[-4:]}

    def _locked(self, by_caller: int, by_number: int) -> bool:
        return max(by_caller, by_number) >= self.rule.failures
