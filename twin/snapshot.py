"""A line's state at one instant, from which a run can start instead of from empty.

Forecasts start the engine from the live plant's snapshot; the engine can also take a snapshot of
itself. Times are hours. Machines not listed start idle and empty; failure clocks not given are drawn
afresh.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from twin.errors import SnapshotError
from twin.events import MachineState
from twin.schema import Line

__all__ = ["LineSnapshot", "MachineSnapshot", "StationSnapshot", "StoreLot", "trusted"]

M = TypeVar("M", bound=BaseModel)


def trusted(cls: type[M], values: dict[str, Any]) -> M:
    """A ``cls`` holding ``values`` as they are, every field given and known to be valid: what
    ``cls.model_construct(**values)`` makes, at a fifth of its cost (a forecast draws hundreds of machines per
    replication; the whole snapshot is checked once with :meth:`LineSnapshot.check`)."""
    model = object.__new__(cls)
    object.__setattr__(model, "__dict__", values)
    object.__setattr__(model, "__pydantic_fields_set__", set(values))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MachineSnapshot(_Model):
    """One machine: its state, the units in it, the work left on them and the repair left."""

    state: MachineState = MachineState.STARVED
    units: int = Field(default=0, ge=0)
    """Units in the machine: loaded (STARVED on a partial batch), in process (WORKING, DOWN) or finished and held (BLOCKED)."""
    finished: bool = False
    """DOWN or PLANNED_STOP: the units are finished and wait to be handed over (it broke down or stopped while blocked)."""
    work_left_h: float = Field(default=0.0, ge=0)
    repair_left_h: float = Field(default=0.0, ge=0)
    reason: str = ""
    """DOWN: the failure mode under repair."""
    ttf_left_h: dict[str, float] = Field(default_factory=dict)
    """Per failure mode, the time to its next failure (operating hours or calendar hours by its basis)."""
    setup_left_h: float = Field(default=0.0, ge=0)
    """SETUP: the changeover time left."""
    units_since_changeover: int = Field(default=0, ge=0)
    changeover_due: bool = False
    """A scheduled changeover has fallen due and waits for the unit in hand."""
    micro_stop_left_h: float | None = Field(default=None, ge=0)
    """Operating hours to the next micro-stop (none: drawn afresh)."""


class StoreLot(_Model):
    """Units in a delay station and how much of their dwell is left (0 = ready to leave)."""

    units: int = Field(ge=1)
    dwell_left_h: float = Field(ge=0)


class StationSnapshot(_Model):
    """A station: its machines (process stations) or its lots and faults (delay stations)."""

    machines: list[MachineSnapshot] = Field(default_factory=list)
    lots: list[StoreLot] = Field(default_factory=list)
    faults: dict[str, float] = Field(default_factory=dict)
    """Delay stations: per failure mode under repair, the repair time left."""
    ttf_left_h: dict[str, float] = Field(default_factory=dict)
    """Delay stations: per failure mode not under repair, the time to its next fault."""


class LineSnapshot(_Model):
    """The whole line at ``time_h``: buffer levels (keyed by the station they follow: a merge station's inputs are
    the buffers of the stations feeding it) and station states. ``time_h`` is also the calendar's position: the
    shift, break or planned stop the line is in follows from it and the line's calendar."""

    time_h: float = 0.0
    buffers: dict[str, int] = Field(default_factory=dict)
    arrivals_queued: int = Field(default=0, ge=0)
    """Units released into the line and waiting before its first station (lines with an arrival process)."""
    stations: dict[str, StationSnapshot] = Field(default_factory=dict)

    def check(self, line: Line) -> None:
        """Raise :class:`SnapshotError` naming the first place where this state does not fit ``line``."""
        ids = {s.id: s for s in line.stations}
        for sid, level in self.buffers.items():
            if sid not in ids:
                raise SnapshotError(f"buffers.{sid}: no station {sid!r} in line {line.name!r}")
            cap = ids[sid].buffer_after
            if sid == line.stations[-1].id:
                raise SnapshotError(f"buffers.{sid}: the last station has no buffer (it ships)")
            if level < 0 or (cap is not None and level > cap):
                raise SnapshotError(f"buffers.{sid}: level {level} is outside [0, {cap}]")
        for sid, snap in self.stations.items():
            st = ids.get(sid)
            if st is None:
                raise SnapshotError(f"stations.{sid}: no station {sid!r} in line {line.name!r}")
            if st.kind == "delay":
                if snap.machines:
                    raise SnapshotError(f"stations.{sid}.machines: a delay station has lots, not machines")
                store_modes = {f.name for f in st.failures}
                for field, given in (("faults", snap.faults), ("ttf_left_h", snap.ttf_left_h)):
                    unknown_modes = set(given) - store_modes
                    if unknown_modes:
                        raise SnapshotError(f"stations.{sid}.{field}: unknown failure modes {sorted(unknown_modes)}")
                held = sum(lot.units for lot in snap.lots)
                assert st.capacity is not None
                if held > st.capacity:
                    raise SnapshotError(f"stations.{sid}.lots: {held} units exceed the capacity {st.capacity}")
                continue
            if snap.lots or snap.faults:
                raise SnapshotError(f"stations.{sid}.lots: a process station has machines, not lots or store faults")
            if len(snap.machines) > st.machines:
                raise SnapshotError(f"stations.{sid}.machines: {len(snap.machines)} given, the station has {st.machines}")
            most = st.batch_size or st.lot
            modes = {f.name for f in st.failures}
            for i, m in enumerate(snap.machines):
                where = f"stations.{sid}.machines[{i}]"
                if m.units > most:
                    raise SnapshotError(f"{where}.units: {m.units} exceeds the {most} a machine holds")
                if m.state in (MachineState.WORKING, MachineState.BLOCKED) and m.units == 0:
                    raise SnapshotError(f"{where}: a {m.state.value} machine needs units > 0")
                if m.state == MachineState.DOWN and m.reason not in modes:
                    raise SnapshotError(f"{where}.reason: {m.reason!r} is not a failure mode of {sid} ({sorted(modes)})")
                if m.state == MachineState.SETUP and st.changeover is None:
                    raise SnapshotError(f"{where}.state: SETUP, but {sid} has no changeover in the line file")
                if m.state == MachineState.SETUP and m.units:
                    raise SnapshotError(f"{where}.units: a machine in SETUP holds no units (changeovers come between units)")
                unknown = set(m.ttf_left_h) - modes
                if unknown:
                    raise SnapshotError(f"{where}.ttf_left_h: unknown failure modes {sorted(unknown)}")
