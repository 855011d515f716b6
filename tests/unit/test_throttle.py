"""The backoff rule and the throttle's counters, with time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.domain.errors import TooManyAttempts
from callcenter.domain.throttle import BackoffRule, Throttle

T0 = datetime(2026, 3, 17, 8, 0, tzinfo=UTC)


def test_the_delays_double_after_the_free_failures_up_to_the_cap():
    rule = BackoffRule(free=5, base_seconds=1, cap_seconds=60)
    assert [rule.wait(n) for n in range(1, 12)] == [0, 0, 0, 0, 2, 4, 8, 16, 32, 60, 60]


def test_admit_refuses_until_the_wait_is_over_and_reports_the_first_refusal_only():
    throttle = Throttle(BackoffRule(free=2, base_seconds=1, cap_seconds=60))
    throttle.admit(("k",), T0)
    throttle.admit(("k",), T0)  # the second failure: the next try waits 2 s
    refusals = []
    for _ in range(3):
        with pytest.raises(TooManyAttempts) as info:
            throttle.admit(("k",), T0 + timedelta(seconds=1))
        refusals.append((info.value.retry_after, info.value.first_refusal))
    assert refusals == [(1, True), (1, False), (1, False)]
    assert throttle.failures("k", T0) == 2  # refused tries are not counted
    throttle.admit(("k",), T0 + timedelta(seconds=2))
    with pytest.raises(TooManyAttempts) as info:
        throttle.admit(("k",), T0 + timedelta(seconds=3))
    assert info.value.retry_after == 3 and info.value.first_refusal  # 4 s from the 3rd


def test_forgive_and_reset_and_forgetting():
    rule = BackoffRule(free=1, base_seconds=1, cap_seconds=10, forget_seconds=100)
    throttle = Throttle(rule)
    throttle.admit(("a", "b"), T0)
    throttle.forgive("a")
    assert throttle.retry_after("a", T0) == 0 and throttle.retry_after("b", T0) == 2
    throttle.reset("b")
    assert throttle.retry_after("b", T0) == 0
    throttle.admit(("c",), T0)
    assert throttle.failures("c", T0 + timedelta(seconds=101)) == 1
    assert throttle.failures("c", T0 + timedelta(seconds=102)) == 0  # forgotten


def test_memory_is_bounded_under_a_flood_of_keys():
    throttle = Throttle(BackoffRule(), max_keys=100)
    for i in range(1000):
        throttle.admit((f"addr-{i}",), T0 + timedelta(seconds=i))
    assert len(throttle._counts) <= 100
    assert throttle.failures("addr-999", T0 + timedelta(seconds=999)) == 1


@given(st.lists(st.floats(min_value=0, max_value=5000), min_size=1, max_size=60))
def test_no_more_attempts_get_through_than_the_rule_allows(gaps):
    """Whatever the timing of the tries, the admitted ones respect the rule's delays."""
    rule = BackoffRule(free=3, base_seconds=1, cap_seconds=30, forget_seconds=10**9)
    throttle = Throttle(rule)
    now, admitted = T0, []
    for gap in gaps:
        now += timedelta(seconds=gap)
        try:
            throttle.admit(("k",), now)
            admitted.append(now)
        except TooManyAttempts as exc:
            assert 1 <= exc.retry_after <= 30
    for n in range(1, len(admitted)):
        assert (admitted[n] - admitted[n - 1]).total_seconds() >= rule.wait(n)


def _best_attack(rule: BackoffRule, hours: int) -> list[int]:
    """Tries admitted per hour to a guesser who comes back the moment ``retry_after`` says."""
    throttle, now, admitted = Throttle(rule), T0, []
    while now < T0 + timedelta(hours=hours):
        try:
            throttle.admit(("k",), now)
            admitted.append(now)
        except TooManyAttempts as exc:
            now += timedelta(seconds=exc.retry_after)
    return [
        sum(1 for t in admitted if timedelta(hours=h) <= t - T0 < timedelta(hours=h + 1))
        for h in range(hours)
    ]


def test_the_rates_the_readme_promises():
    """README, "Guessing and throttling": the numbers there are these."""
    from callcenter.services.auth import ADDRESS_BACKOFF, LOGIN_BACKOFF
    from callcenter.services.tickets import PORTAL_BACKOFF

    assert _best_attack(LOGIN_BACKOFF, 3) == [16, 4, 4]
    assert _best_attack(ADDRESS_BACKOFF, 3) == [31, 4, 4]
    assert _best_attack(PORTAL_BACKOFF, 3) == [83, 60, 60]


def test_an_attempt_admitted_after_a_later_one_is_not_refused_below_the_allowance():
    """Logins from one address wait their turn holding the time they came in, so a later
    attempt can be admitted first: its ``now`` must not count as negative time elapsed."""
    t = Throttle(BackoffRule(free=5))
    t0 = T0
    t.admit(("login:anna",), t0 + timedelta(seconds=2))  # came in later, admitted first
    t.admit(("login:anna",), t0)  # came in earlier: one failure of five, no wait
    t.admit(("login:anna",), t0 + timedelta(seconds=1))
    assert t.failures("login:anna", t0 + timedelta(seconds=2)) == 3
    assert t.retry_after("login:anna", t0) == 0.0
