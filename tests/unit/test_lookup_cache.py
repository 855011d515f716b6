"""The certificate lookups' cache keeps what the last ``ttl`` seconds looked up, no more."""

from callcenter.services.registry import _TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_expired_entries_leave_as_new_ones_come():
    """A week of distinct callers, one every 10 s (more than the cap of 50,000), with a 2-s
    time-to-live: the cache holds the last one, not 50,000 expired certificates."""
    clock = Clock()
    cache = _TtlCache(2.0, clock=clock)
    for i in range(60_000):
        cache.put(f"{i:013d}", None)
        clock.now += 10
    assert len(cache) == 1


def test_entries_within_their_time_are_kept_and_found():
    clock = Clock()
    cache = _TtlCache(2.0, clock=clock)
    for i in range(100):  # 100 lookups within one second
        cache.put(f"n{i}", None)
        clock.now += 0.01
    assert len(cache) == 100
    assert cache.get("n0") == (True, None)
    clock.now += 1.5  # n0 is 2.5 s old, n99 1.5 s
    assert cache.get("n0") == (False, None)
    assert cache.get("n99") == (True, None)
    cache.put("late", None)  # the expired go with the next put
    assert 0 < len(cache) < 101
    assert cache.get("n99") == (True, None) and cache.get("late") == (True, None)


def test_a_burst_is_capped_at_the_size():
    clock = Clock()
    cache = _TtlCache(60.0, size=1_000, clock=clock)
    for i in range(5_000):
        cache.put(str(i), None)
    assert len(cache) == 1_000
    assert cache.get("4999") == (True, None) and cache.get("0") == (False, None)


def test_a_number_put_again_is_kept_for_its_new_time():
    clock = Clock()
    cache = _TtlCache(2.0, clock=clock)
    cache.put("a", None)
    cache.put("b", None)
    clock.now += 1.5
    cache.put("a", None)  # refreshed: now the newest
    clock.now += 1.0  # b expired (2.5 s), a is 1 s old
    cache.put("c", None)
    assert cache.get("a") == (True, None)
    assert cache.get("b") == (False, None)
    assert len(cache) == 2
