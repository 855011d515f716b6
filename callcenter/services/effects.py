"""What a unit of work leaves for after its commit: timers to arm and notes to push.

Collected while the transaction runs and released only once it committed, so a rolled-back
escalation never arms a timer nor tells a screen about a ticket that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callcenter.domain.timers import TimerKind

TimerHook = Callable[[datetime | None, TimerKind, Any], None]


@dataclass
class Effects:
    timers: list[tuple[datetime | None, TimerKind, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)


class Aftermath:
    """Releases effects: timers to the scheduler (wired by bootstrap), notes to the notifier."""

    def __init__(self, notifier) -> None:
        self.notifier = notifier
        self.on_timer: TimerHook = lambda when, kind, key: None

    def release(self, fx: Effects) -> None:
        for when, kind, key in fx.timers:
            self.on_timer(when, kind, key)
        for note in fx.notes:
            self.notifier.publish(note)
