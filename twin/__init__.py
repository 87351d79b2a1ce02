"""GigaTwin's domain: line descriptions, the simulation engine, events and KPIs (no I/O)."""

from twin.engine import Engine, Observer
from twin.errors import LineError, SnapshotError, TwinError
from twin.events import (
    BufferLevel,
    Event,
    MachineState,
    ProcessValue,
    StateChanged,
    StoreOccupancy,
    UnitsCompleted,
    UnitsLoaded,
    UnitsReleased,
)
from twin.kpis import KpiReducer, RunKpis
from twin.schema import Line, Station, load_line_data
from twin.simulate import SimulationResult, run_once, simulate
from twin.snapshot import LineSnapshot, MachineSnapshot, StationSnapshot, StoreLot
from twin.state import (
    LineOee,
    LineStatus,
    LiveLine,
    MachineStatus,
    ProcessReading,
    ShiftStatus,
    StationStatus,
    StoreStatus,
    line_oee,
)

__all__ = [
    "BufferLevel",
    "Engine",
    "Event",
    "KpiReducer",
    "Line",
    "LineError",
    "LineOee",
    "LineSnapshot",
    "LineStatus",
    "LiveLine",
    "MachineSnapshot",
    "MachineState",
    "MachineStatus",
    "Observer",
    "ProcessReading",
    "ProcessValue",
    "RunKpis",
    "ShiftStatus",
    "SimulationResult",
    "SnapshotError",
    "StateChanged",
    "Station",
    "StationSnapshot",
    "StationStatus",
    "StoreLot",
    "StoreOccupancy",
    "StoreStatus",
    "TwinError",
    "UnitsCompleted",
    "UnitsLoaded",
    "UnitsReleased",
    "line_oee",
    "load_line_data",
    "run_once",
    "simulate",
]
