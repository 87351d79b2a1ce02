"""Where each kind of event goes: the engine makes only the events somebody listens to.

The engine calls an emitter with an event's fields, ``emit(t, station, ...)``. An observer that takes event
objects gets one made from them (once per event, however many such observers there are); a field handler
(:meth:`twin.engine.Engine.subscribe_fields`) gets the fields themselves, so no object is made for it at all:
the KPI reducer takes every event of a run, and a named tuple per event would cost it more than its own work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twin.events import BufferLevel, StateChanged, StoreOccupancy, UnitsCompleted, UnitsLoaded, UnitsReleased

__all__ = ["Emitters", "Subscription"]

Handler = Callable[..., None]
Subscription = tuple[Handler, frozenset[type] | None, bool]
"""A handler, the event types it takes (None: all), and whether it takes their fields rather than objects."""

# tuple.__new__ straight from C: the named tuples' own __new__ is a Python function, one more frame per event
_new = tuple.__new__


def _emitter(kind: type, chain: list[tuple[Handler, bool]]) -> Handler | None:
    """One callable taking the fields of a ``kind`` event and handing them on to each of ``chain`` in turn,
    as an event object (made once) or as fields."""
    if not chain:
        return None
    if all(by_fields for _h, by_fields in chain):
        handlers = [h for h, _b in chain]
        if len(handlers) == 1:
            return handlers[0]

        def fan_out(*fields: Any) -> None:
            for h in handlers:
                h(*fields)

        return fan_out
    if len(chain) == 1:
        h = chain[0][0]

        def one(*fields: Any) -> None:
            h(_new(kind, fields))

        return one

    def mixed(*fields: Any) -> None:
        event: Any = _new(kind, fields)
        for h, by_fields in chain:
            if by_fields:
                h(*fields)
            else:
                h(event)

    return mixed


class Emitters:
    """One callable per event type taking that type's fields (in order), or None where nobody takes that type.

    Handlers are called in the order they subscribed.
    """

    __slots__ = ("buffer", "completed", "loaded", "released", "state", "store")

    def __init__(self, subscriptions: Iterable[Subscription] = ()) -> None:
        subs = list(subscriptions)

        def to(kind: type) -> Handler | None:
            return _emitter(kind, [(h, by_fields) for h, kinds, by_fields in subs if kinds is None or kind in kinds])

        self.state = to(StateChanged)
        self.loaded = to(UnitsLoaded)
        self.completed = to(UnitsCompleted)
        self.buffer = to(BufferLevel)
        self.store = to(StoreOccupancy)
        self.released = to(UnitsReleased)
