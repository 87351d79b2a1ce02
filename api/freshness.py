"""How fresh the line's data is: the one rule readiness, the metrics and the dashboard judge staleness by."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["Freshness", "freshness"]


class Freshness(NamedTuple):
    """The age of the newest data of any station (None: none taken yet) and the stations whose data is stale."""

    age_s: float | None
    stale: list[str]


def freshness(seen_at: Mapping[str, float], stale_after_s: float, now: float) -> Freshness:
    """Judged at wall-clock ``now`` from when each station's newest data was taken (``seen_at``): a station is stale
    once that is more than ``stale_after_s`` ago."""
    return Freshness(
        age_s=now - max(seen_at.values()) if seen_at else None,
        stale=sorted(sid for sid, t in seen_at.items() if now - t > stale_after_s),
    )
