"""The last N measurements, kept as 8-byte doubles.

A list or deque of Python floats costs 32 bytes a value (the float object and its pointer),
a ``FloatRing`` 8: the scheduler's two lag records (100,000 each) come to 1.6 MB instead of
6.4 MB per process once full, which takes a few weeks of a support centre's timers.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator


class FloatRing:
    """At most ``maxlen`` floats, the oldest dropped first; iterates oldest to newest."""

    __slots__ = ("_data", "_next", "maxlen")

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self.maxlen = maxlen
        self._data = array("d")
        self._next = 0  # where the next value goes once full (the oldest value)

    def append(self, value: float) -> None:
        if len(self._data) < self.maxlen:
            self._data.append(value)
            return
        self._data[self._next] = value
        self._next = (self._next + 1) % self.maxlen

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[float]:
        d, i = self._data, self._next
        yield from d[i:]
        yield from d[:i]

    def clear(self) -> None:
        self._data = array("d")
        self._next = 0

    @property
    def nbytes(self) -> int:
        """What the values take (the array's buffer, not counting its spare room)."""
        return len(self._data) * self._data.itemsize
