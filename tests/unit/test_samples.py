"""The bounded records of measurements: they stay at their bound however many are added."""

import pytest

from callcenter.adapters.metrics import Metrics
from callcenter.domain.samples import FloatRing


def test_a_ring_keeps_the_last_values_in_order_and_no_more():
    ring = FloatRing(5)
    for v in range(3):
        ring.append(float(v))
    assert list(ring) == [0.0, 1.0, 2.0]
    for v in range(3, 1003):
        ring.append(float(v))
    assert len(ring) == 5
    assert list(ring) == [998.0, 999.0, 1000.0, 1001.0, 1002.0]
    assert sorted(ring) == list(ring)
    assert ring.nbytes == 5 * 8
    ring.clear()
    assert list(ring) == [] and len(ring) == 0


def test_a_ring_needs_room():
    with pytest.raises(ValueError):
        FloatRing(0)


async def test_a_summary_keeps_its_last_values_at_8_bytes_each():
    """A summary sampled once a FastAGI session stays at its bound and quantiles the last
    values: 30,000 sessions keep 10,000 doubles (80 kB), not 30,000 float objects."""
    m = Metrics()
    for i in range(30_000):
        m.sample("callcenter_test_seconds", "test", i / 1000)
    samples = m._samples["callcenter_test_seconds"]
    assert len(samples.values) == 10_000
    assert samples.values.nbytes == 80_000
    assert min(samples.values) == 20.0 and max(samples.values) == 29.999
    text = (await m.render()).decode()
    assert 'callcenter_test_seconds{quantile="0.5"} 25.0' in text
    assert "callcenter_test_seconds_count 10000.0" in text
