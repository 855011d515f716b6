"""`callcenter simulate` reports the rate it really achieved."""

import pytest

from callcenter.telephony.simulator import SimCall, summary


@pytest.mark.parametrize(
    ("calls", "seconds", "shown"),
    [(5, 14.0, "0.36/s, 21.4/min"), (300, 10.0, "30/s"), (1, 60.0, "0.017/s, 1/min")],
)
def test_rate_keeps_its_digits(calls, seconds, shown):
    done = [SimCall.__new__(SimCall) for _ in range(calls)]
    for call in done:
        call.scenario, call.route, call.service_ms = "valid", "QUEUE", 0.0
    first = summary(done, seconds).splitlines()[0]
    assert first == f"{calls} calls in {seconds:.1f} s ({shown})"
