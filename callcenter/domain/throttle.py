"""Growing delays after repeated failures, per key (a login, an address, a token).

The rule is pure: ``now`` is passed in, so tests move a fixed clock. The counters live in
the process that holds the :class:`Throttle`; several instances each keep their own, so an
attacker spread over N instances gets at most N times the documented rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from callcenter.domain.errors import TooManyAttempts


@dataclass(frozen=True)
class BackoffRule:
    """``free`` failures cost nothing; the n-th failure beyond them makes the next attempt
    wait ``base_seconds * 2**n`` (n = 1, 2, ...) up to ``cap_seconds``. A key with no failure
    for ``forget_seconds`` starts afresh."""

    free: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 900.0
    forget_seconds: float = 3600.0

    def wait(self, failures: int) -> float:
        """Seconds the next attempt must wait after the last failure."""
        beyond = failures - self.free + 1
        if beyond <= 0:
            return 0.0
        return min(self.cap_seconds, self.base_seconds * 2.0 ** min(beyond, 62))


@dataclass
class _Count:
    failures: int = 0
    last: datetime | None = None
    before: datetime | None = None  # ``last`` before the latest admitted try, for forgive()
    refused: bool = field(default=False)  # already reported in this run of refusals


class Throttle:
    """Failure counters per key with :class:`BackoffRule` delays.

    :meth:`admit` counts the attempt as a failure *before* the slow check runs, so a burst
    of parallel attempts cannot all slip through while the first is still being checked;
    :meth:`forgive` takes that count back when the attempt turned out well.
    """

    def __init__(self, rule: BackoffRule, max_keys: int = 100_000) -> None:
        self.rule = rule
        self.max_keys = max_keys
        self._counts: dict[str, _Count] = {}

    def retry_after(self, key: str, now: datetime) -> float:
        """Seconds until ``key`` may try again (0: it may now)."""
        count = self._live(key, now)
        if count is None or count.last is None:
            return 0.0
        # attempts are not always admitted in the order of their ``now`` (logins from one
        # address wait their turn holding the time they came in): a ``last`` later than
        # ``now`` is no time elapsed, not negative time that would lengthen the wait
        elapsed = max(0.0, (now - count.last).total_seconds())
        return max(0.0, self.rule.wait(count.failures) - elapsed)

    def admit(self, keys: tuple[str, ...], now: datetime, what: str = "attempt") -> None:
        """Raises :class:`TooManyAttempts` if any key must wait; else counts a failure on each."""
        for key in keys:
            wait = self.retry_after(key, now)
            if wait > 0:
                count = self._counts[key]
                exc = TooManyAttempts(
                    f"too many failed {what}s; try again in {math.ceil(wait)} s",
                    retry_after=math.ceil(wait),
                )
                exc.first_refusal, exc.key = not count.refused, key
                count.refused = True
                raise exc
        for key in keys:
            count = self._counts.setdefault(key, _Count())
            count.failures += 1
            count.before, count.last = count.last, max(now, count.last or now)
        if len(self._counts) > self.max_keys:
            self._prune(now)

    def forgive(self, key: str) -> None:
        """The attempt admitted last was not a failure after all."""
        count = self._counts.get(key)
        if count is not None:
            count.failures -= 1
            count.last = count.before or count.last
            if count.failures <= 0:
                del self._counts[key]

    def reset(self, key: str) -> None:
        self._counts.pop(key, None)

    def failures(self, key: str, now: datetime) -> int:
        count = self._live(key, now)
        return count.failures if count else 0

    def _live(self, key: str, now: datetime) -> _Count | None:
        count = self._counts.get(key)
        if count is None:
            return None
        if count.last is not None and self._idle(count, now):
            del self._counts[key]
            return None
        if count.refused and self.rule.wait(count.failures) <= (
            (now - count.last).total_seconds() if count.last else 0
        ):
            count.refused = False  # the wait is over: a new run of refusals is reported anew
        return count

    def _idle(self, count: _Count, now: datetime) -> bool:
        idle_for = self.rule.forget_seconds + self.rule.wait(count.failures)
        return (now - count.last).total_seconds() >= idle_for

    def _prune(self, now: datetime) -> None:
        """Bounded memory under a flood of distinct keys: idle keys go, then the oldest half."""
        for key in [k for k, c in self._counts.items() if c.last and self._idle(c, now)]:
            del self._counts[key]
        if len(self._counts) > self.max_keys:
            by_age = sorted(self._counts, key=lambda k: self._counts[k].last or now)
            for key in by_age[: len(by_age) // 2]:
                del self._counts[key]
