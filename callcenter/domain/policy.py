"""The timing rules as a versioned policy (R-11, R-14).

Each version takes effect at 00:00 Moscow time on its effective date. A call or ticket is
judged by the version in force when it arrived. The vendor must publish a change at least
15 calendar days before it takes effect (clause 6.4), so shorter notice is refused.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from callcenter.domain.errors import PolicyRefused, ValidationError
from callcenter.domain.instants import MOSCOW

WINDOW_STARTS = ("agent_answer", "queue_entry")


@dataclass(frozen=True)
class PolicyVersion:
    effective_from: date
    oral_window_seconds: int = 600
    warning_seconds: int = 120
    written_answer_hours: int = 12
    day_start: time = time(9)
    day_end: time = time(18)
    window_start: str = "agent_answer"
    published_at: datetime | None = None
    note: str = ""
    id: int | None = None

    @property
    def effective_at(self) -> datetime:
        return datetime.combine(self.effective_from, time(0), MOSCOW)

    def check(self) -> None:
        """Refuse values that make no sense, naming the field."""
        problems = []
        if self.oral_window_seconds <= 0:
            problems.append("oral_window_seconds must be positive")
        if not 0 <= self.warning_seconds < self.oral_window_seconds:
            problems.append("warning_seconds must be between 0 and oral_window_seconds")
        if self.written_answer_hours <= 0:
            problems.append("written_answer_hours must be positive")
        if self.day_end <= self.day_start:
            problems.append("day_end must be after day_start")
        if self.window_start not in WINDOW_STARTS:
            problems.append(f"window_start must be one of {', '.join(WINDOW_STARTS)}")
        if problems:
            raise ValidationError("; ".join(problems), code="invalid_policy")

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "effective_from": self.effective_from.isoformat(),
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "oral_window_seconds": self.oral_window_seconds,
            "warning_seconds": self.warning_seconds,
            "written_answer_hours": self.written_answer_hours,
            "day_start": self.day_start.strftime("%H:%M"),
            "day_end": self.day_end.strftime("%H:%M"),
            "window_start": self.window_start,
            "note": self.note,
        }


def check_notice(version: PolicyVersion, published_at: datetime, min_notice_days: int = 15) -> None:
    """Clause 6.4: publication at least ``min_notice_days`` calendar days before effect."""
    published_day = published_at.astimezone(MOSCOW).date()
    earliest = published_day + timedelta(days=min_notice_days)
    if version.effective_from < earliest:
        raise PolicyRefused(
            f"a policy published on {published_day.isoformat()} can take effect on "
            f"{earliest.isoformat()} at the earliest ({min_notice_days} calendar days' notice); "
            f"{version.effective_from.isoformat()} is too soon",
            earliest=earliest.isoformat(),
        )


class PolicyBook:
    """All versions, the configured base first; answers which one was in force at an instant."""

    def __init__(self, base: PolicyVersion, published: list[PolicyVersion] | tuple = ()) -> None:
        versions = sorted([base, *published], key=lambda v: (v.effective_from, v.id or 0))
        self._versions = versions
        self._starts = [v.effective_at for v in versions]

    @property
    def versions(self) -> list[PolicyVersion]:
        return list(self._versions)

    def in_force_at(self, at: datetime) -> PolicyVersion:
        if at.tzinfo is None:
            raise ValueError("in_force_at needs an aware datetime")
        i = bisect.bisect_right(self._starts, at) - 1
        return self._versions[max(i, 0)]
