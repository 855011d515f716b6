"""Calls, oral windows and written tickets (R-2, R-10, R-11, R-12): plain classes, no I/O.

A call's timeline is a *projection* of its events: folding them in a canonical order gives the
same record whatever order they arrived in and however often, so retries and out-of-order
delivery (AGI, AMI, a spool replayed later) cannot change the log.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from callcenter.domain.errors import Conflict, ValidationError
from callcenter.domain.events import CallEvent

SERVICE_CATEGORIES = ("install", "admin", "kit_restore", "recovery", "build_update", "other")
REFUSAL_REASONS = ("no_certificate", "identity_mismatch", "not_covered", "locked")


class WindowStatus(enum.StrEnum):
    OPEN = "open"
    EXTENDED = "extended"
    MET = "met"
    OVERRUN = "overrun"
    ESCALATED = "escalated"

    @property
    def running(self) -> bool:
        return self in (WindowStatus.OPEN, WindowStatus.EXTENDED)


class TicketStatus(enum.StrEnum):
    """Stored statuses; ``overdue`` is only ever computed (an open ticket past its due time)."""

    OPEN = "open"
    ANSWERED = "answered"
    WITHDRAWN = "withdrawn"


class Outcome(enum.StrEnum):
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    REFUSED = "refused"
    ABUSIVE = "abusive"


_ORDER = {
    "call_started": 0,
    "certificate_checked": 1,
    "queued": 2,
    "agent_connected": 3,
    "call_ended": 4,
}


@dataclass
class CallRecord:
    call_id: str
    caller_number: str | None = None
    channel: str | None = None
    started_at: datetime | None = None
    certificate_number: str | None = None
    certificate_status: str | None = None
    attempts: int = 0
    queue: str | None = None
    queued_at: datetime | None = None
    agent: str | None = None
    agent_name: str | None = None
    connected_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_by: str | None = None
    hangup_cause: str | None = None
    abandoned: str | None = None

    @property
    def ivr_seconds(self) -> float | None:
        end = self.queued_at or self.ended_at
        if self.started_at and end:
            return max(0.0, (end - self.started_at).total_seconds())
        return None

    @property
    def queue_wait_seconds(self) -> float | None:
        if self.queued_at is None:
            return None
        end = self.connected_at or self.ended_at
        return max(0.0, (end - self.queued_at).total_seconds()) if end else None

    @property
    def talk_seconds(self) -> float | None:
        if self.connected_at and self.ended_at:
            return max(0.0, (self.ended_at - self.connected_at).total_seconds())
        return None


def timeline(events: list[CallEvent]) -> list[CallEvent]:
    """A call's events in the order they happened; ties (one instant) in the call's natural
    order, the IVR's checks by their attempt (the last check decides), then by key, so
    arrival order never shows."""
    return sorted(
        events, key=lambda e: (e.at, _ORDER[e.event], e.data.get("attempt") or 0, e.dedup_key())
    )


def project(call_id: str, events: list[CallEvent]) -> CallRecord:
    """Fold a call's events into its record; the result ignores arrival order and repeats."""
    rec = CallRecord(call_id)
    for e in timeline(events):
        d = e.data
        if e.event == "call_started":
            rec.started_at = rec.started_at or e.at
            rec.caller_number = rec.caller_number or d.get("caller_number")
            rec.channel = rec.channel or d.get("channel")
        elif e.event == "certificate_checked":
            rec.certificate_status = d["status"]  # the last check decides
            rec.certificate_number = d.get("certificate") or rec.certificate_number
            rec.attempts = max(rec.attempts, d.get("attempt", 0))
        elif e.event == "queued":
            rec.queued_at = rec.queued_at or e.at
            rec.queue = rec.queue or d["queue"]
        elif e.event == "agent_connected":
            if rec.connected_at is None:
                rec.connected_at, rec.agent = e.at, d["agent"]
                rec.agent_name = d.get("agent_name")
        elif e.event == "call_ended":
            rec.ended_at = rec.ended_at or e.at
            rec.hangup_by = rec.hangup_by or d.get("hangup_by")
            rec.hangup_cause = rec.hangup_cause or d.get("cause")
            rec.abandoned = rec.abandoned or d.get("abandoned")
    if rec.connected_at is not None:
        rec.abandoned = None  # an answered call was not abandoned, whatever a source guessed
    elif rec.ended_at is not None and rec.abandoned is None and rec.queued_at is not None:
        rec.abandoned = "queue"
    if rec.started_at is None:
        known = [e.at for e in events]
        rec.started_at = min(known) if known else None
    return rec


@dataclass
class Extension:
    at: datetime
    seconds: int
    reason: str
    by: str


@dataclass
class OralWindow:
    """The 10-minute oral answer window of one answered call (clause 4.2).

    Its fate is decided by the call's own instants, never by when a timer happened to run:
    a window is overrun only when no end before its deadline is known. Events of a call may
    arrive long after the fact (a spool flushed after an outage, an AMI reconnect, an
    import), so a timer waits for the later of the deadline and the moment the window was
    recorded here, plus a grace for the events sent along with the opening one; an end that
    proves the call finished in time and arrives later still withdraws an overrun.
    """

    call_id: str
    opened_at: datetime
    deadline_at: datetime
    warn_at: datetime | None
    status: WindowStatus = WindowStatus.OPEN
    policy_id: int | None = None
    length_seconds: int = 600
    warned_at: datetime | None = None
    closed_at: datetime | None = None
    extensions: list[Extension] = field(default_factory=list)
    #: when this service learnt of the window (the opening event's receipt), not the call's time
    recorded_at: datetime | None = None

    @classmethod
    def open(
        cls,
        call_id: str,
        opened_at: datetime,
        length_seconds: int,
        warning_seconds: int,
        policy_id: int | None,
        recorded_at: datetime | None = None,
    ) -> OralWindow:
        deadline = opened_at + timedelta(seconds=length_seconds)
        warn = deadline - timedelta(seconds=warning_seconds) if warning_seconds else None
        return cls(
            call_id,
            opened_at,
            deadline,
            warn,
            policy_id=policy_id,
            length_seconds=length_seconds,
            recorded_at=recorded_at,
        )

    # --- when its timers may fire ------------------------------------------------------------

    @property
    def _learnt_at(self) -> datetime:
        return self.recorded_at or self.opened_at

    def deadline_timer_at(self, grace: timedelta) -> datetime:
        """No earlier than the later of the deadline and the window's recording, plus grace:
        the events sent together with the opening one (its end, say) get there first."""
        return max(self.deadline_at, self._learnt_at) + grace

    def warning_timer_at(self, grace: timedelta) -> datetime | None:
        """The warning at its time, but never before the events that came along had a chance."""
        if self.warn_at is None:
            return None
        return max(self.warn_at, self._learnt_at + grace)

    # --- the decision ------------------------------------------------------------------------

    def decide(
        self, ended_at: datetime | None, now: datetime, grace: timedelta
    ) -> WindowStatus | None:
        """What the window becomes now, from the call's instants; None when nothing changes.

        MET when the call ended by the deadline (from OVERRUN too: that is a withdrawal);
        OVERRUN when it ended later, or when no end is known once the timer is due.
        An agent's ESCALATED and a MET stand.
        """
        if self.status in (WindowStatus.MET, WindowStatus.ESCALATED):
            return None
        if ended_at is not None:
            if ended_at <= self.deadline_at:
                return WindowStatus.MET
            return WindowStatus.OVERRUN if self.status.running else None
        if self.status.running and now >= self.deadline_timer_at(grace):
            return WindowStatus.OVERRUN
        return None

    def may_warn(self, ended_at: datetime | None, now: datetime) -> bool:
        """A warning only for a call still in progress, once, between its time and the
        deadline (past the deadline the overrun itself is the news)."""
        return (
            self.status.running
            and ended_at is None
            and self.warned_at is None
            and self.warn_at is not None
            and self.warn_at <= now < self.deadline_at
        )

    # --- transitions (the repository makes each one conditional between instances) -----------

    def warn(self, now: datetime, ended_at: datetime | None = None) -> bool:
        if not self.may_warn(ended_at, now):
            return False
        self.warned_at = now
        return True

    def extend(self, at: datetime, seconds: int, reason: str, by: str) -> None:
        """More time for the oral answer, with a stated reason (clause 4.2)."""
        if not self.status.running:
            raise Conflict(f"the oral window is already {self.status.value}", code="window_closed")
        if not reason or not reason.strip():
            raise ValidationError(
                "an extension needs a reason",
                code="reason_required",
                fields={"reason": "is required"},
            )
        if not 1 <= seconds <= 3600:
            raise ValidationError(
                "an extension is 1 to 3600 seconds",
                code="bad_extension",
                fields={"seconds": "must be 1-3600"},
            )
        if self.deadline_at <= at:
            raise Conflict("the oral window has already run out", code="window_closed")
        warn_lead = (self.deadline_at - self.warn_at) if self.warn_at else None
        self.deadline_at = self.deadline_at + timedelta(seconds=seconds)
        self.warn_at = self.deadline_at - warn_lead if warn_lead is not None else None
        self.warned_at = None
        self.status = WindowStatus.EXTENDED
        self.extensions.append(Extension(at, seconds, reason.strip(), by))

    def meet(self, at: datetime) -> bool:
        """Closed in time: the call ended, or the agent settled it, by the deadline."""
        if not self.status.running:
            return False
        self.status, self.closed_at = WindowStatus.MET, at
        return True

    def overrun(self) -> bool:
        """Ran out: closed at its deadline, whenever this service learns of it."""
        if not self.status.running:
            return False
        self.status, self.closed_at = WindowStatus.OVERRUN, self.deadline_at
        return True

    def escalate(self, now: datetime) -> bool:
        """The agent turns the call into a written request before the deadline."""
        if not self.status.running:
            return False
        self.status, self.closed_at = WindowStatus.ESCALATED, now
        return True

    def withdraw(self, ended_at: datetime) -> bool:
        """An overrun disproved by a late-known end in time: the window was met after all."""
        if self.status is not WindowStatus.OVERRUN or ended_at > self.deadline_at:
            return False
        self.status, self.closed_at = WindowStatus.MET, ended_at
        return True


@dataclass
class Ticket:
    """A written request: from the portal, or a call escalated past its oral window."""

    source: str
    received_at: datetime
    due_at: datetime
    description: str
    certificate_number: str | None = None
    full_name: str = ""
    organisation: str = ""
    category: str = "other"
    call_id: str | None = None
    status: str = "open"
    answered_at: datetime | None = None
    answer: str | None = None
    warn75_at: datetime | None = None
    warn90_at: datetime | None = None
    warned75_at: datetime | None = None
    warned90_at: datetime | None = None
    escalation_reason: str | None = None
    policy_id: int | None = None
    id: int | None = None
    withdrawn_at: datetime | None = None
    withdrawn_reason: str | None = None
    #: where the ticket lives in the helpdesk, once delivered (Redmine: the issue's id, link)
    helpdesk_ref: str | None = None
    helpdesk_url: str | None = None
    #: where the written answer was recorded: "helpdesk" (its reply) or "here" (our API)
    answer_source: str | None = None
    #: a voicemail ticket's recording: a file name in the service's recordings folder
    recording: str | None = None

    @property
    def withdrawn(self) -> bool:
        return self.status == TicketStatus.WITHDRAWN

    def withdraw(self, now: datetime, reason: str) -> bool:
        """Kept for audit, never deleted; an answered ticket stays answered."""
        if self.withdrawn or self.answered_at is not None:
            return False
        self.status, self.withdrawn_at, self.withdrawn_reason = TicketStatus.WITHDRAWN, now, reason
        return True

    @property
    def deadline_met(self) -> bool | None:
        if self.answered_at is None:
            return None
        return self.answered_at <= self.due_at

    def facts(self, now: datetime) -> dict[str, object]:
        """What a ticket says to the outside as of ``now``, instants still instants: the one
        list of its public fields, which the API and the helpdesk forwarding each render."""
        return {
            "id": self.id,
            "source": self.source,
            "call_id": self.call_id,
            "certificate": self.certificate_number,
            "full_name": self.full_name,
            "organisation": self.organisation,
            "description": self.description,
            "category": self.category,
            "received_at": self.received_at,
            "due_at": self.due_at,
            "warn75_at": self.warn75_at,
            "warn90_at": self.warn90_at,
            "status": self.state_at(now),
            "answered_at": self.answered_at,
            "deadline_met": self.deadline_met,
            "escalation_reason": self.escalation_reason,
            "answer": self.answer,
            "withdrawn_at": self.withdrawn_at,
            "withdrawn_reason": self.withdrawn_reason,
            "helpdesk_url": self.helpdesk_url,
            "answer_source": self.answer_source,
            "has_recording": self.recording is not None,
        }

    def state_at(self, now: datetime) -> str:
        if self.withdrawn:
            return TicketStatus.WITHDRAWN.value
        if self.answered_at is not None:
            return "answered"
        return "overdue" if now > self.due_at else "open"
