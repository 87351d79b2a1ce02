"""The public surface is what we mean it to be."""

from __future__ import annotations

import twin


def test_twin_exports_exactly_its_public_names() -> None:
    assert sorted(twin.__all__) == sorted(
        [
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
            "UnitsReleased",
            "UnitsCompleted",
            "UnitsLoaded",
            "attribute_stops",
            "downtime_pareto",
            "line_oee",
            "load_line_data",
            "run_once",
            "simulate",
        ]
    )
    for name in twin.__all__:
        assert getattr(twin, name).__doc__, f"twin.{name} has no docstring"
