"""The kinds of timer a scheduler arms: one vocabulary for whoever arms and whoever fires."""

from __future__ import annotations

import enum


class TimerKind(enum.StrEnum):
    WINDOW_WARNING = "window_warning"
    WINDOW_DEADLINE = "window_deadline"
    TICKET_WARN75 = "ticket_warn75"
    TICKET_WARN90 = "ticket_warn90"
