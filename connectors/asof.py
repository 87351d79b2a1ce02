"""What the store's telemetry tells about a line as of an instant: the knowledge a forecast starts from.

:func:`knowledge_as_of` replays the line's stored readings of ``[at - lookback, at]`` (``connectors.rebuild``,
through the same codec as live telemetry) into a ``twin.knowledge.KnowledgeBuilder``. The look-back must reach as
far as the longest dwell of the line's stores (14 days for the reference line's aging) for the store's units to
have their entry times; :func:`default_lookback_h` gives that (and at least ``min_hours``). A shorter one is
allowed: the units that entered before it are then spread evenly over their possible dwell, and the forecast says
how many.

:func:`line_clock_ms` is the newest stored reading of the line (any channel): "now" for a forecast as of the store's
present.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from connectors.rebuild import RebuildStats, rebuild
from connectors.stores.base import Store
from connectors.telemetry import Channel, Topics
from twin.counters import CumulativeCounters
from twin.knowledge import KnowledgeBuilder, LineKnowledge
from twin.schema import Line

__all__ = ["AsOf", "default_lookback_h", "knowledge_as_of", "line_clock_ms"]

MS_PER_HOUR = 3_600_000
_CLOCK_CHANNELS = (Channel.STATE, Channel.COUNTS, Channel.BUFFER, Channel.STORE, Channel.INPUT)


class AsOf(NamedTuple):
    """The knowledge of a line at an instant and the replay that gathered it."""

    knowledge: LineKnowledge
    replay: RebuildStats
    lookback_h: float


def default_lookback_h(line: Line, min_hours: float = 48.0) -> float:
    """How far back a forecast reads the store: the longest mean dwell of the line's stores plus a shift (8 h), and
    at least ``min_hours``."""
    dwells = [s.dwell.mean_value for s in line.stations if s.kind == "delay" and s.dwell is not None]
    return max(min_hours, max(dwells, default=0.0) + 8.0)


def line_clock_ms(store: Store, topics: Topics, before_ms: int | None = None) -> int | None:
    """The time of the line's newest stored reading (before ``before_ms`` if given), or None when it has none."""
    newest: int | None = None
    for channel in _CLOCK_CHANNELS:
        for p in store.last(channel.value, site=topics.site, line=topics.line, before_ms=before_ms):
            if newest is None or p.ts_ms > newest:
                newest = p.ts_ms
    return newest


def knowledge_as_of(store: Store, topics: Topics, line: Line, at_ms: int, lookback_h: float) -> AsOf:
    """What the line's stored telemetry of the ``lookback_h`` hours up to ``at_ms`` tells about it at ``at_ms``."""
    if not (lookback_h > 0 and math.isfinite(lookback_h)):
        raise ValueError(f"lookback_h must be a positive number of hours, got {lookback_h}")
    start_ms = at_ms - round(lookback_h * MS_PER_HOUR)
    builder = KnowledgeBuilder(line, start_ms / MS_PER_HOUR)
    stats = rebuild(store, topics, [builder], start_ms=start_ms, end_ms=at_ms + 1, counters=CumulativeCounters())
    return AsOf(builder.at(at_ms / MS_PER_HOUR), stats, lookback_h)
