"""The public surface is what we mean it to be."""

from __future__ import annotations

import twin


def test_twin_exports_exactly_its_public_names() -> None:
    assert sorted(twin.__all__) == sorted(
        [
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
            "UnitsReleased",
            "UnitsCompleted",
            "UnitsLoaded",
            "load_line_data",
            "run_once",
            "simulate",
        ]
    )
    for name in twin.__all__:
        assert getattr(twin, name).__doc__, f"twin.{name} has no docstring"
