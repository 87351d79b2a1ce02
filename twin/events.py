"""The event vocabulary: what happens on a line, simulated or real.

The engine emits these; the live state and the KPI reducer consume them; the telemetry codec
(``connectors.telemetry``) translates them to and from the wire. Times are in hours on the run's clock; for
live telemetry the clock is hours since the Unix epoch (UTC), so ``t = ts_ms / 3_600_000``. Events are immutable
named tuples because the engine makes millions of them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "BufferLevel",
    "Event",
    "MachineState",
    "ProcessValue",
    "StateChanged",
    "StoreOccupancy",
    "UnitsCompleted",
    "UnitsLoaded",
    "UnitsReleased",
]


class MachineState(StrEnum):
    """What a machine is doing."""

    WORKING = "WORKING"
    STARVED = "STARVED"
    """Waiting for material (includes a batch machine waiting for its batch to fill)."""
    BLOCKED = "BLOCKED"
    """Holding finished units because the next buffer is full."""
    DOWN = "DOWN"
    """Broken down: waiting for a repair crew or under repair."""
    SETUP = "SETUP"
    PLANNED_STOP = "PLANNED_STOP"


class StateChanged(NamedTuple):
    """Machine ``machine`` of ``station`` entered ``state`` at ``t`` (``reason``: a failure mode, or empty)."""

    t: float
    station: str
    machine: int
    state: MachineState
    reason: str


class UnitsLoaded(NamedTuple):
    """A machine (or a store) of ``station`` took ``units`` from its input at ``t``."""

    t: float
    station: str
    machine: int
    units: int


class UnitsCompleted(NamedTuple):
    """A machine (or a store) of ``station`` finished ``good + scrap`` units at ``t``; scrap leaves the line at once."""

    t: float
    station: str
    machine: int
    good: int
    scrap: int


class UnitsReleased(NamedTuple):
    """``units`` entered the line at ``t``: taken by its first station from unlimited supply, or arrived to queue before it."""

    t: float
    units: int


class BufferLevel(NamedTuple):
    """The buffer after ``station`` held ``level`` units from ``t`` on."""

    t: float
    station: str
    level: int


class StoreOccupancy(NamedTuple):
    """A delay station held ``dwelling`` units still in their dwell and ``held`` units ready but blocked at its exit.

    ``intake_blocked`` is true while material waits to enter because the store is full.
    """

    t: float
    station: str
    dwelling: int
    held: int
    intake_blocked: bool


class ProcessValue(NamedTuple):
    """Machine ``machine`` of ``station`` measured ``value`` (in ``unit``) of the process signal ``name`` at ``t``.

    Speeds, temperatures, web tension, dew point, vibration, OCV ...: the plant's sensors, or the virtual
    plant's. The engine does not emit these; the KPIs ignore them; the live state keeps the latest.
    """

    t: float
    station: str
    machine: int
    name: str
    value: float
    unit: str


Event = StateChanged | UnitsLoaded | UnitsCompleted | BufferLevel | StoreOccupancy | UnitsReleased | ProcessValue
"""Any event of the vocabulary."""
