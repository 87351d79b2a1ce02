"""Where each kind of event goes: the engine makes only the events somebody listens to."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twin.events import BufferLevel, StateChanged, StoreOccupancy, UnitsCompleted, UnitsLoaded, UnitsReleased

__all__ = ["Emitters", "Subscription"]

Handler = Callable[[Any], None]
Subscription = tuple[Handler, frozenset[type] | None]
"""An observer and the event types it takes (None: all)."""


def _fan(handlers: list[Handler]) -> Handler | None:
    if not handlers:
        return None
    if len(handlers) == 1:
        return handlers[0]

    def fan_out(event: Any) -> None:
        for h in handlers:
            h(event)

    return fan_out


class Emitters:
    """One callable per event type, or None where no observer takes that type."""

    __slots__ = ("buffer", "completed", "loaded", "released", "state", "store")

    def __init__(self, subscriptions: Iterable[Subscription] = ()) -> None:
        subs = list(subscriptions)

        def to(kind: type) -> Handler | None:
            return _fan([h for h, kinds in subs if kinds is None or kind in kinds])

        self.state = to(StateChanged)
        self.loaded = to(UnitsLoaded)
        self.completed = to(UnitsCompleted)
        self.buffer = to(BufferLevel)
        self.store = to(StoreOccupancy)
        self.released = to(UnitsReleased)
