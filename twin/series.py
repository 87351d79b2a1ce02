"""Good output over time, from the events: how many good units the line shipped per interval.

:class:`OutputSeries` observes ``UnitsCompleted`` events of the line's last station and adds their good units
to fixed buckets of ``bucket_h`` hours by event time, so late events land where they belong. It keeps the
last ``keep_h`` hours (by the latest event time) and answers any coarser interval that is a whole number of
buckets.
"""

from __future__ import annotations

import math

from twin.events import Event, UnitsCompleted
from twin.schema import Line

__all__ = ["OutputSeries"]


class OutputSeries:
    """Good units shipped per bucket of ``bucket_h`` hours over the last ``keep_h`` hours; call it with each event."""

    def __init__(self, line: Line, *, bucket_h: float = 1 / 60, keep_h: float = 48.0) -> None:
        if not bucket_h > 0:
            raise ValueError(f"bucket_h must be positive, got {bucket_h}")
        if not keep_h >= bucket_h:
            raise ValueError(f"keep_h ({keep_h}) must hold at least one bucket ({bucket_h} h)")
        self.station = line.stations[-1].id
        self.bucket_h = bucket_h
        self.keep_h = keep_h
        self._good: dict[int, int] = {}
        self._latest = -math.inf
        self._oldest = -(2**62)  # no bucket below this index is kept
        self._prune_step = max(1, round(keep_h / bucket_h / 8))

    def __call__(self, event: Event) -> None:
        """Take one event (only the last station's completions count)."""
        if type(event) is not UnitsCompleted or event.station != self.station:
            return
        k = math.floor(event.t / self.bucket_h)
        if event.t > self._latest:
            self._latest = event.t
            oldest = math.floor((event.t - self.keep_h) / self.bucket_h)
            if oldest - self._oldest > self._prune_step:  # drop in steps: O(1) per event on average
                self._good = {b: n for b, n in self._good.items() if b >= oldest}
                self._oldest = oldest
        if k >= self._oldest:
            self._good[k] = self._good.get(k, 0) + event.good

    def series(self, start_h: float, end_h: float, every_h: float) -> list[tuple[float, int]]:
        """``(interval start, good units)`` for every interval of ``every_h`` (rounded up to whole buckets) aligned to the
        epoch, from the one holding ``start_h`` to the one holding ``end_h``; intervals without output count 0."""
        if not end_h > start_h:
            raise ValueError(f"end_h ({end_h}) must be after start_h ({start_h})")
        step = self._step(every_h)
        first = math.floor(start_h / self.bucket_h) // step * step
        last = math.floor(end_h / self.bucket_h) // step * step
        if (last - first) // step > 10_000:
            raise ValueError(f"every_h: {every_h} h makes more than 10,000 intervals between start_h and end_h")
        good = self._good
        out = []
        for k in range(first, last + 1, step):
            out.append((k * self.bucket_h, sum(good.get(b, 0) for b in range(k, k + step))))
        return out

    def _step(self, every_h: float) -> int:
        return max(1, math.ceil(round(every_h / self.bucket_h, 9)))

    def interval_h(self, every_h: float) -> float:
        """The interval :meth:`series` uses when asked for ``every_h``: a whole number of buckets, at least one."""
        return self._step(every_h) * self.bucket_h
