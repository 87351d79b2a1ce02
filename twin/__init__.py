"""GigaTwin's domain: line descriptions, the simulation engine, events and KPIs (no I/O)."""

from twin.engine import Engine, Observer
from twin.errors import LineError, SnapshotError, TwinError
from twin.events import BufferLevel, Event, MachineState, ProcessValue, StateChanged, StoreOccupancy, UnitsCompleted, UnitsLoaded, UnitsReleased
from twin.kpis import KpiReducer, RunKpis
from twin.schema import Line, Station, load_line_data
from twin.simulate import SimulationResult, run_once, simulate
from twin.snapshot import LineSnapshot, MachineSnapshot, StationSnapshot, StoreLot

__all__ = [
    "BufferLevel",
    "Engine",
    "Event",
    "KpiReducer",
    "Line",
    "LineError",
    "LineSnapshot",
    "MachineSnapshot",
    "MachineState",
    "Observer",
    "ProcessValue",
    "RunKpis",
    "SimulationResult",
    "SnapshotError",
    "StateChanged",
    "Station",
    "StationSnapshot",
    "StoreLot",
    "StoreOccupancy",
    "TwinError",
    "UnitsCompleted",
    "UnitsLoaded",
    "UnitsReleased",
    "load_line_data",
    "run_once",
    "simulate",
]
