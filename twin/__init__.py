"""GigaTwin's domain, with no I/O: line descriptions (``schema``), the event vocabulary (``events``), the simulation
engine (``engine``, ``simulate``, ``snapshot``), the KPI reducer (``kpis``), and the live state rebuilt from events:
current status (``state``, its results and the station-summary rule in ``status``), the retained history with KPI
checkpoints (``history``), shifts and plan (``shifts``), good output over time (``series``) and why the line stops
(``stops``)."""

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
from twin.stops import (
    AttributedStop,
    CauseKind,
    CauseTotal,
    DowntimeEntry,
    DowntimePareto,
    StationDowntime,
    StopAttribution,
    TraceStep,
    attribute_stops,
    downtime_pareto,
)

__all__ = [
    "AttributedStop",
    "BufferLevel",
    "CauseKind",
    "CauseTotal",
    "DowntimeEntry",
    "DowntimePareto",
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
    "StationDowntime",
    "StationSnapshot",
    "StationStatus",
    "StopAttribution",
    "StoreLot",
    "StoreOccupancy",
    "StoreStatus",
    "TraceStep",
    "TwinError",
    "UnitsCompleted",
    "UnitsLoaded",
    "UnitsReleased",
    "attribute_stops",
    "downtime_pareto",
    "line_oee",
    "load_line_data",
    "run_once",
    "simulate",
]
