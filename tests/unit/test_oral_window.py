"""The oral window's transitions and its decision, with ``now`` passed in: no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.domain.calls import OralWindow, Ticket, TicketStatus, WindowStatus
from callcenter.domain.errors import Conflict, ValidationError

T0 = datetime(2026, 3, 17, 8, 0, tzinfo=UTC)
GRACE = timedelta(seconds=5)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def window(recorded: float | None = 0) -> OralWindow:
    return OralWindow.open(
        "1.1", T0, 600, 120, 1, recorded_at=None if recorded is None else s(recorded)
    )


def test_open_sets_absolute_deadline_and_warning():
    w = window()
    assert (w.deadline_at, w.warn_at, w.status) == (s(600), s(480), WindowStatus.OPEN)
    assert OralWindow.open("1.2", T0, 600, 0, None).warn_at is None


def test_timers_wait_for_the_later_of_deadline_and_recording_plus_grace():
    live = window(recorded=0)
    assert live.deadline_timer_at(GRACE) == s(605)
    assert live.warning_timer_at(GRACE) == s(480)
    late = window(recorded=3600)  # learnt of an hour after the answer
    assert late.deadline_timer_at(GRACE) == s(3605)
    assert late.warning_timer_at(GRACE) == s(3605)
    assert window(recorded=None).deadline_timer_at(GRACE) == s(605)  # rows from before 0005


@pytest.mark.parametrize(
    ("ended", "now", "expected"),
    [
        (None, 604, None),  # the deadline passed, the grace has not
        (None, 605, WindowStatus.OVERRUN),
        (300, 3600, WindowStatus.MET),
        (600, 3600, WindowStatus.MET),  # ending on the deadline is in time
        (601, 601, WindowStatus.OVERRUN),  # a known late end needs no timer
    ],
)
def test_decide_on_a_running_window(ended, now, expected):
    w = window()
    assert w.decide(None if ended is None else s(ended), s(now), GRACE) is expected


def test_decide_for_a_late_recorded_window_waits_for_its_events():
    w = window(recorded=3600)
    assert w.decide(None, s(3601), GRACE) is None
    assert w.decide(s(240), s(3601), GRACE) is WindowStatus.MET
    assert w.decide(None, s(3605), GRACE) is WindowStatus.OVERRUN


def test_an_overrun_is_withdrawn_by_an_end_in_time_only():
    w = window()
    assert w.overrun() and w.closed_at == s(600)
    assert w.decide(s(700), s(9000), GRACE) is None  # ended late: the overrun stands
    assert w.decide(s(240), s(9000), GRACE) is WindowStatus.MET
    assert not w.withdraw(s(700))
    assert w.withdraw(s(240))
    assert (w.status, w.closed_at) == (WindowStatus.MET, s(240))


@pytest.mark.parametrize("close", ["meet", "escalate"])
def test_met_and_escalated_stand(close):
    w = window()
    assert getattr(w, close)(s(100))
    assert w.decide(s(900), s(9000), GRACE) is None
    assert w.decide(None, s(9000), GRACE) is None
    assert not w.overrun() and not w.withdraw(s(100)) and not w.meet(s(100))


def test_warning_only_while_the_call_goes_on_and_once():
    w = window()
    assert not w.warn(s(479))
    assert not w.warn(s(481), ended_at=s(300))  # the call has ended: no warning
    assert w.warn(s(481)) and w.warned_at == s(481)
    assert not w.warn(s(482))
    late = window(recorded=3600)
    assert not late.warn(s(3605))  # past the deadline the overrun itself is the news


def test_extend_moves_deadline_and_warning_and_rearms_it():
    w = window()
    w.warn(s(480))
    w.extend(s(500), 300, "  нужна проверка  ", "operator")
    assert (w.deadline_at, w.warn_at, w.warned_at) == (s(900), s(780), None)
    assert w.status is WindowStatus.EXTENDED and w.extensions[0].reason == "нужна проверка"
    with pytest.raises(ValidationError):
        w.extend(s(510), 60, " ", "operator")
    with pytest.raises(ValidationError):
        w.extend(s(510), 0, "r", "operator")
    with pytest.raises(Conflict):
        w.extend(s(900), 60, "too late", "operator")
    w.overrun()
    with pytest.raises(Conflict):
        w.extend(s(910), 60, "closed", "operator")


def test_ticket_withdrawal_is_kept_for_audit():
    tk = Ticket(source="call", received_at=s(600), due_at=s(99999), description="x")
    assert tk.withdraw(s(700), "ended in time")
    assert (tk.status, tk.state_at(s(10**6)), tk.withdrawn_reason) == (
        TicketStatus.WITHDRAWN,
        "withdrawn",
        "ended in time",
    )
    assert not tk.withdraw(s(800), "again")
    answered = Ticket(source="call", received_at=s(0), due_at=s(1), description="x")
    answered.answered_at = s(0)
    assert not answered.withdraw(s(5), "too late to withdraw")


@given(
    talk=st.integers(0, 2000),
    recorded=st.integers(0, 7200),
    end_known=st.integers(0, 9000),
)
def test_the_outcome_depends_only_on_the_calls_own_instants(talk, recorded, end_known):
    """Whenever the end becomes known, before or after the timer, the window ends the same."""
    w = window(recorded=recorded)
    fire = w.deadline_timer_at(GRACE)
    ended = s(talk)
    known = s(recorded + end_known)
    if known > fire:  # the timer came first and saw no end
        assert w.decide(None, fire, GRACE) is WindowStatus.OVERRUN
        w.overrun()
    to = w.decide(ended, known, GRACE)
    if to is WindowStatus.MET:
        assert w.withdraw(ended) if w.status is WindowStatus.OVERRUN else w.meet(ended)
    elif to is WindowStatus.OVERRUN:
        assert w.overrun()
    assert w.status is (WindowStatus.MET if talk <= 600 else WindowStatus.OVERRUN)
