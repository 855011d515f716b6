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
    """R-10 as a rate limit on guesses (numbers the registry does not know) per window:
    ``failures`` per caller ID and per number; callers without a caller ID share one bucket
    of ``anonymous_failures``. Lookups of a real certificate (expired, not yet valid, not
    covered) are not guesses and count nothing."""

    failures: int = 5
    window_seconds: int = 3600
    anonymous_failures: int = 20


#: the bucket of every caller without a caller ID (absent, "unknown", "anonymous", "")
ANONYMOUS = ""


def caller_key(caller: str | None) -> str:
    """Whom a guess is counted against: the normalised phone, else the caller ID's digits (an
    internal extension), else the shared anonymous bucket. Asterisk sends "unknown" or
    "anonymous" without CLI; no digits means nobody in particular."""
    raw = (caller or "").strip()
    phone = normalize_phone(raw)
    if phone:
        return phone
    digits = "".join(ch for ch in raw if ch.isdigit())
    return digits[:20] or ANONYMOUS


class IvrService:
    def __init__(
        self, uow_factory: Callable, registry, policy, calendars, rule: LockoutRule
    ) -> None:
        self._uow = uow_factory
        self.registry = registry
        self.policy = policy
        self.calendars = calendars
        self.rule = rule
        #: told of every LOCKED answer, whichever transport asked (the composition root
        #: counts it in /metrics as a refusal of kind "locked")
        self.on_locked: Callable[[], None] = lambda: None

    async def working_time(self, at: datetime) -> tuple[bool, datetime]:
        """Whether the line is open at ``at`` under the policy then in force, and when it opens."""
        cal = self.calendars.for_policy(await self.policy.in_force_at(at))
        return cal.is_open(at), cal.next_opening(at)

    def local_working_time(self, at: datetime) -> tuple[bool, datetime]:
        """The same question without the database: the configured base policy's hours (what a
        process AGI's local calendar answers when the service is down)."""
        cal = self.calendars.for_policy(self.policy.base)
        return cal.is_open(at), cal.next_opening(at)

    async def caller_certificates(self, caller: str, at: datetime) -> list[dict]:
        """The caller-ID shortcut: certificates naming this phone as an authorised contact."""
        return [
            {"number": r.number, "last4": r.number[-4:], "status": r.status.value}
            for r in await self.registry.by_phone(caller, at)
        ]

    async def check(self, call_id: str, caller: str | None, number: str, at: datetime) -> dict:
        """A lookup that counts guesses, so guessing is locked out across calls and across
        FastAGI and process AGI alike (both come here) (R-10).

        The counts are read on the lock-free read path; only a guess, or the holder's very
        first request (R-7), costs a write. While locked, nothing is looked up: the answer
        is LOCKED whatever the number, so it tells a guesser nothing.
        """
        who = caller_key(caller)
        since = at - timedelta(seconds=self.rule.window_seconds)
        reader = self.registry.reader
        if self._locked(who, *await reader.failures(since, who, number)):
            log.warning("call %s: locked out before lookup (%s)", call_id, _shown(who))
            self.on_locked()
            return {"status": LOCKED, "last4": number[-4:]}
        result = await self.registry.lookup(number, at)
        status = result.status.value
        if result.status is LookupStatus.VALID:
            if result.certificate.first_request_at is None:
                async with self._uow() as uow:
                    await uow.certificates.mark_first_request(number, at)
                    await uow.commit()
                self.registry.forget(number)
            return {"status": status, "last4": number[-4:]}
        if result.status is not LookupStatus.UNKNOWN:
            return {"status": status, "last4": number[-4:]}  # a real certificate: no guess
        async with self._uow() as uow:
            await uow.lockouts.add_failure(call_id, who, number, status, at)
            await uow.commit()
        if self._locked(who, *await reader.failures(since, who, number)):
            log.warning("call %s: lockout threshold reached (%s)", call_id, _shown(who))
            self.on_locked()
            status = LOCKED
        return {"status": status, "last4": number[-4:]}

    def _locked(self, who: str, by_caller: int, by_number: int) -> bool:
        ceiling = self.rule.anonymous_failures if who == ANONYMOUS else self.rule.failures
        return by_caller >= ceiling or by_number >= self.rule.failures


def _shown(who: str) -> str:
    """A caller in a log line: the last digits only (guideline 9), or 'no caller ID'."""
    return f"caller ...{who[-4:]}" if who else "no caller ID"
