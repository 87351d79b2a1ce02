"""Cumulative counters (PLC production counters) turned into increments, with resets detected.

A PLC reports totals since some reset (shift start, recipe change, power cycle). The twin needs what was
added between two readings. Rules, per counter key:
- the first reading of a key is a baseline: it adds nothing (what was counted before we listened is not
  ours to count), unless the key was seeded with an earlier reading (e.g. the last one in the store);
- a value below the previous one is a reset: the counter restarted from zero, so the increment is the
  new value itself;
- a reading older than the last one taken (a late reading overtaken by a newer total) adds nothing: the
  newer total already contains it; at the same timestamp, equal totals are a duplicate and add nothing,
  larger totals add their difference (two counts in one millisecond), smaller ones are ignored.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

__all__ = ["CumulativeCounters"]


class CumulativeCounters:
    """The last reading of each counter key, and the increments that new readings add."""

    __slots__ = ("_last", "resets")

    def __init__(self) -> None:
        self._last: dict[Hashable, tuple[int, tuple[int, ...]]] = {}
        self.resets = 0
        """Resets detected so far."""

    def seed(self, key: Hashable, ts_ms: int, values: Sequence[int]) -> None:
        """Take ``values`` at ``ts_ms`` as the key's last reading (for example the last one stored before a restart)."""
        self._last[key] = (ts_ms, tuple(values))

    def update(self, key: Hashable, ts_ms: int, values: Sequence[int]) -> tuple[int, ...]:
        """The increments ``values`` add to the key's counters since its last reading (zeros if none)."""
        prev = self._last.get(key)
        if prev is None:
            self._last[key] = (ts_ms, tuple(values))
            return (0,) * len(values)
        prev_ts, prev_values = prev
        if ts_ms < prev_ts or (ts_ms == prev_ts and any(v < p for v, p in zip(values, prev_values, strict=True))):
            return (0,) * len(values)
        self._last[key] = (ts_ms, tuple(values))
        # One counter below its last value means the PLC reset them all together (PackTags reset as a set).
        if any(v < p for v, p in zip(values, prev_values, strict=True)):
            self.resets += 1
            return tuple(values)
        return tuple(v - p for v, p in zip(values, prev_values, strict=True))

    def last(self, key: Hashable) -> tuple[int, tuple[int, ...]] | None:
        """The key's last reading ``(ts_ms, values)``, or None."""
        return self._last.get(key)
