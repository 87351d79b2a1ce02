"""The line description: a production line as validated, typed data.

A line is a tree of stations flowing into its final station: each station takes from its ``inputs`` (by
default the station listed before it; ``inputs: []`` starts a branch from the line's supply) and feeds exactly
one station, through its ``buffer_after``. A merge station (a stacker taking anode and cathode sheets) names
several inputs and consumes ``per_unit`` of each per unit it makes. Stations are listed in flow order: every
input is listed before the station it feeds, and the final station last.

A line file (YAML, loaded by ``connectors.linefile``) validates into a :class:`Line`. Durations are
stored in hours whatever the file's ``time_unit``. Errors name the source, the field path and what is
wrong (:class:`LineError`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from twin.calendar import Calendar, PlannedStop
from twin.distributions import Distribution
from twin.durations import TimeUnit, to_hours
from twin.errors import LineError

__all__ = [
    "Arrival",
    "Calendar",
    "Changeover",
    "FailureMode",
    "Line",
    "MicroStops",
    "PlannedStop",
    "Signal",
    "Speed",
    "Station",
    "StationInput",
    "load_line_data",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FailureMode(_Model):
    """One way a machine breaks down: time to failure, time to repair, and what clock drives failures."""

    name: str = Field(min_length=1)
    ttf: Distribution
    ttr: Distribution
    basis: Literal["operating", "calendar"] = "operating"
    """``operating``: the failure clock runs only while the machine works; ``calendar``: always."""
    crew: str | None = None
    """The repair crew whose member the repair needs (``Line.repair_crews``); none = always repaired at once."""
    positions: int | None = Field(default=None, ge=1)
    """Delay stations only: the storage positions a fault takes out of use until repaired (none = all of them).
    A store's failure clock always runs (its basis is the calendar)."""


_SIGNAL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Signal(_Model):
    """A process signal a station's sensors report: its unit, nominal value and normal range.

    The virtual plant draws it as nominal + Gaussian noise; a ``condition`` signal (vibration, motor current)
    also drifts upward before the machine breaks down.
    """

    unit: str
    normal: tuple[float, float]
    """``[low, high]``: the range the signal stays in while the process runs normally."""
    nominal: float
    noise: float | None = Field(default=None, ge=0)
    """Standard deviation of the measurement; none = (high - low) / 6, so ~99.7 % of values fall in the normal range."""
    condition: bool = False
    """A machine-health signal that rises in the hours before a failure (one value per machine)."""

    # normal is declared before nominal so that the nominal check can see it and report under "nominal".
    @field_validator("normal")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"[low, high] must be finite numbers, got [{low}, {high}]")
        if low > high:
            raise ValueError(f"[low, high] needs low <= high, got [{low}, {high}]")
        return value

    @field_validator("nominal")
    @classmethod
    def _inside(cls, value: float, info: ValidationInfo) -> float:
        normal = info.data.get("normal")
        if normal is not None and not normal[0] <= value <= normal[1]:
            raise ValueError(f"{value} is outside the normal range [{normal[0]}, {normal[1]}]")
        return value

    @property
    def sigma(self) -> float:
        """The noise's standard deviation (the default when ``noise`` is not given)."""
        if self.noise is not None:
            return self.noise
        return (self.normal[1] - self.normal[0]) / 6.0


class Arrival(_Model):
    """Material released into the first station: lots of ``lot`` units every ``interarrival``."""

    interarrival: Distribution
    lot: int = Field(default=1, ge=1)


class StationInput(_Model):
    """One input of a station: the station that feeds it and how many of its units one unit made consumes."""

    station: str = Field(min_length=1)
    per_unit: int = Field(default=1, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # "inputs: [A_NOTCH, C_NOTCH]" is the common case: one of each per unit
        return {"station": value} if isinstance(value, str) else value


class Speed(_Model):
    """A speed factor drawn per cycle: uniform on ``[low, high]``, or triangular with ``mode`` if given."""

    low: float = Field(gt=0, le=1)
    high: float = Field(gt=0, le=1)
    mode: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Speed:
        if self.low > self.high:
            raise ValueError(f"needs low <= high, got low {self.low}, high {self.high}")
        if self.mode is not None and not self.low <= self.mode <= self.high:
            raise ValueError(f"mode {self.mode} is outside [low, high] = [{self.low}, {self.high}]")
        return self

    @property
    def mean(self) -> float:
        """The mean speed factor."""
        if self.mode is None:
            return (self.low + self.high) / 2.0
        return (self.low + self.mode + self.high) / 3.0


class MicroStops(_Model):
    """Short stops while working (a jammed part cleared, a sensor reset): ``every`` is the operating time between
    them, ``duration`` how long each lasts. They are performance losses, not breakdowns: the machine stays WORKING
    through them and makes less in its working time, as OEE practice counts stops this short."""

    every: Distribution
    duration: Distribution

    @model_validator(mode="after")
    def _short(self) -> MicroStops:
        if self.every.mean_value <= 0:
            raise ValueError("every: the mean time between micro-stops must be positive")
        if self.duration.mean_value > MICRO_STOP_MAX_H:
            raise ValueError(
                f"duration: a mean of {self.duration.mean_value * 60:g} min is not a micro-stop "
                f"(at most {MICRO_STOP_MAX_H * 60:g} min); model a stop this long as a failure mode"
            )
        return self


MICRO_STOP_MAX_H = 5.0 / 60.0
"""The longest mean micro-stop (5 min): longer stops are breakdowns, counted in availability."""


class Changeover(_Model):
    """A format or chemistry change: after every ``every_units`` units a machine made, or on the schedule
    ``schedule`` (the station's machines change over after the unit in hand), the machine is in SETUP for
    ``duration``."""

    name: str = Field(default="changeover", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    duration: Distribution
    every_units: int | None = Field(default=None, ge=1)
    schedule: PlannedStop | None = None
    """When changeovers fall due: its ``start`` and ``every`` (its ``duration`` is ignored: the setup takes ``duration``)."""

    @model_validator(mode="before")
    @classmethod
    def _schedule_needs_no_duration(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("schedule"), dict):
            sched = dict(value["schedule"])
            sched.setdefault("duration", "1s")
            sched.setdefault("name", value.get("name", "changeover"))
            value = {**value, "schedule": sched}
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> Changeover:
        if (self.every_units is None) == (self.schedule is None):
            raise ValueError("give every_units (a changeover per so many units) or schedule (at set times), one of them")
        return self


class Station(_Model):
    """A step of the line: a group of identical parallel machines (``kind: process``) or a storage step (``kind: delay``)."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = ""
    kind: Literal["process", "delay"] = "process"
    machines: int = Field(default=1, ge=1)
    cycle_time: Distribution | None = None
    """Per unit, or per batch when ``batch_size`` is given."""
    batch_size: int | None = Field(default=None, ge=1)
    batch_timeout: float | None = None
    """Start a partial batch this long after its first unit was loaded; none = wait for a full batch."""
    lot: int = Field(default=1, ge=1)
    """Units a machine takes and passes on together (a roll, a magazine, a tray); cycle time stays per unit."""
    capacity: int | None = Field(default=None, ge=1)
    """Delay stations: units the store holds at most."""
    dwell: Distribution | None = None
    """Delay stations: how long a unit stays at least (FIFO release)."""
    failures: tuple[FailureMode, ...] = ()
    scrap: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Probability that a unit is scrapped, decided when its processing ends."""
    buffer_after: int | None = Field(default=None, ge=0)
    """Units that can wait after this station (not counting units in machines); 0 = direct hand-off; none = unbounded."""
    signals: dict[str, Signal] = Field(default_factory=dict)
    """Process signals by name (an identifier such as ``line_speed_m_min``): what the station's sensors report."""
    inputs: tuple[StationInput, ...] | None = None
    """The stations it takes from; none = the station listed before it (the first: the line's supply); [] = the
    line's supply (the start of a branch)."""
    speed: float | Speed = Field(default=1.0)
    """The actual rate's share of the ideal (cycle_time): 0.9 runs at 90 %; a range draws one factor per cycle."""
    micro_stops: MicroStops | None = None
    changeover: Changeover | None = None
    planned_stops: tuple[PlannedStop, ...] = ()
    """The station's own planned stops (preventive maintenance), on top of the line's calendar and planned stops."""

    @field_validator("speed")
    @classmethod
    def _speed(cls, value: float | Speed) -> float | Speed:
        if isinstance(value, float | int) and not 0 < value <= 1:
            raise ValueError(f"a speed factor is in (0, 1], got {value}")
        return value

    @property
    def speed_mean(self) -> float:
        """The mean speed factor (1 = the ideal rate)."""
        return self.speed.mean if isinstance(self.speed, Speed) else float(self.speed)

    @field_validator("signals")
    @classmethod
    def _signal_names(cls, value: dict[str, Signal]) -> dict[str, Signal]:
        bad = [name for name in value if not _SIGNAL_NAME.match(name)]
        if bad:
            raise ValueError(f"signal names must be identifiers (letters, digits, _; not starting with a digit), got {bad}")
        return value

    @field_validator("batch_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        return to_hours(value, (info.context or {}).get("time_unit", "h"))

    @model_validator(mode="after")
    def _kind_fields(self) -> Station:
        if self.kind == "process":
            if self.cycle_time is None:
                raise ValueError("a process station needs cycle_time")
            for extra in ("capacity", "dwell"):
                if getattr(self, extra) is not None:
                    raise ValueError(f"{extra} is only for kind: delay")
            if self.batch_size is not None and self.lot != 1:
                raise ValueError("give batch_size (a batch process) or lot (transfer lots), not both")
            if self.batch_timeout is not None and self.batch_size is None:
                raise ValueError("batch_timeout needs batch_size")
        else:
            if self.capacity is None or self.dwell is None:
                raise ValueError("a delay station needs capacity and dwell")
            for extra in ("cycle_time", "batch_size", "batch_timeout"):
                if getattr(self, extra) is not None:
                    raise ValueError(f"{extra} is not for kind: delay")
            if self.machines != 1:
                raise ValueError("a delay station has no machines; give capacity")
            for extra in ("micro_stops", "changeover"):
                if getattr(self, extra) is not None:
                    raise ValueError(f"{extra} is not for kind: delay (a store has no machines)")
            if self.speed != 1.0:
                raise ValueError("speed is not for kind: delay (a store's pace is its dwell)")
            if self.planned_stops:
                raise ValueError("planned_stops are not for kind: delay: material in a store keeps its clock")
            for j, f in enumerate(self.failures):
                if f.crew is not None:
                    raise ValueError(f"failures[{j}].crew: store faults are repaired without a crew")
                if f.positions is not None and self.capacity is not None and f.positions > self.capacity:
                    raise ValueError(f"failures[{j}].positions: {f.positions} exceeds the capacity {self.capacity}")
        if self.kind == "process":
            for j, f in enumerate(self.failures):
                if f.positions is not None:
                    raise ValueError(f"failures[{j}].positions is only for kind: delay")
        names = [f.name for f in self.failures]
        if len(set(names)) != len(names):
            raise ValueError(f"failure mode names repeat: {names}")
        return self

    @property
    def ideal_rate(self) -> float:
        """Units per hour the whole station makes with no losses (all machines working)."""
        if self.kind == "delay":
            assert self.capacity is not None and self.dwell is not None
            return self.capacity / self.dwell.mean_value
        assert self.cycle_time is not None
        per_cycle = self.batch_size or 1
        return self.machines * per_cycle / self.cycle_time.mean_value


class Line(_Model):
    """A production line: stations in flow order, a tree of branches flowing into the last one (module docstring)."""

    name: str = Field(min_length=1)
    time_unit: TimeUnit = "s"
    description: str = ""
    stations: tuple[Station, ...] = Field(min_length=1)
    repair_crews: dict[str, int] = Field(default_factory=dict)
    arrival: Arrival | None = None
    """None: the stations that start branches never starve; else material arrives before the first station."""
    calendar: Calendar | None = None
    """None: the line works round the clock."""
    planned_stops: tuple[PlannedStop, ...] = ()
    """Planned stops of the whole line (every process station stops; stores keep their clock)."""
    _inputs: dict[str, tuple[StationInput, ...]] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _references(self) -> Line:
        ids = [s.id for s in self.stations]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"station ids repeat: {dupes}")
        self._check_flow(ids)
        for i, st in enumerate(self.stations):
            for j, mode in enumerate(st.failures):
                if mode.crew is not None and mode.crew not in self.repair_crews:
                    raise ValueError(
                        f"stations[{i}].failures[{j}].crew: {mode.crew!r} is not one of repair_crews {sorted(self.repair_crews)}"
                    )
        last = self.stations[-1]
        if self.arrival is not None and len(self.branch_starts) > 1:
            raise ValueError(
                f"arrival: released material enters one station, but the line has {len(self.branch_starts)} "
                f"branches starting at {list(self.branch_starts)}; leave arrival out"
            )
        if last.buffer_after is not None:
            raise ValueError(f"stations[{len(ids) - 1}].buffer_after: the last station ships to an unbounded sink; leave it out")
        for name, count in self.repair_crews.items():
            if count < 1:
                raise ValueError(f"repair_crews.{name}: needs at least 1 member, got {count}")
        return self

    def _check_flow(self, ids: list[str]) -> None:
        index = {sid: i for i, sid in enumerate(ids)}
        fed_by: dict[str, tuple[int, int]] = {}  # station -> (consumer index, input index)
        edges: dict[str, list[str]] = {sid: [] for sid in ids}
        for i, st in enumerate(self.stations):
            if st.inputs is None:
                continue
            names = [inp.station for inp in st.inputs]
            for k, inp in enumerate(st.inputs):
                where = f"stations[{i}].inputs[{k}]"
                if inp.station not in index:
                    raise ValueError(f"{where}.station: {inp.station!r} is not a station of this line ({', '.join(ids)})")
                if inp.station == st.id:
                    raise ValueError(f"{where}.station: {st.id} cannot take from itself (a cycle in the flow)")
                if names.count(inp.station) > 1:
                    raise ValueError(f"{where}.station: {inp.station!r} is named twice; give per_unit instead")
                if inp.station in fed_by:
                    other, k2 = fed_by[inp.station]
                    raise ValueError(
                        f"{where}.station: {inp.station!r} is already consumed by stations[{other}].inputs[{k2}] "
                        f"({ids[other]}); a station feeds exactly one station"
                    )
                fed_by[inp.station] = (i, k)
                edges[st.id].append(inp.station)
        for i, st in enumerate(self.stations):
            if st.kind == "delay" and st.inputs is not None and (len(st.inputs) > 1 or any(x.per_unit != 1 for x in st.inputs)):
                raise ValueError(
                    f"stations[{i}].inputs: a store (kind: delay) takes from one station, one unit per unit; "
                    "merge in a process station before it"
                )
        # the default input: the station listed before, unless that one feeds a station named explicitly
        for i, st in enumerate(self.stations):
            if st.inputs is None and i > 0:
                prev = ids[i - 1]
                if prev not in fed_by:
                    fed_by[prev] = (i, 0)
                    edges[st.id].append(prev)
        # a cycle: follow inputs; flow order: inputs listed before the station they feed
        state: dict[str, int] = {}

        def visit(sid: str, path: list[str]) -> None:
            state[sid] = 1
            for up in edges[sid]:
                if state.get(up) == 1:
                    cycle = [*path[path.index(up) :], up] if up in path else [sid, up]
                    raise ValueError(f"stations[{index[path[0]]}].inputs: a cycle in the flow: {' <- '.join(cycle)}")
                if up not in state:
                    visit(up, [*path, up])
            state[sid] = 2

        for sid in ids:
            if sid not in state:
                visit(sid, [sid])
        for i, st in enumerate(self.stations):
            for k, up in enumerate(edges[st.id]):
                if index[up] > i:
                    raise ValueError(
                        f"stations[{i}].inputs[{k}].station: {up!r} is listed after {st.id}; list stations in flow order "
                        "(every input before the station it feeds)"
                    )
        final = ids[-1]
        for i, sid in enumerate(ids[:-1]):
            if sid not in fed_by:
                raise ValueError(
                    f"stations[{i}]: {sid} feeds no station (only the last station, {final}, ships); "
                    f"name it in the inputs of the station it feeds"
                )

    @property
    def inputs(self) -> dict[str, tuple[StationInput, ...]]:
        """Each station's inputs, resolved (the default: the station listed before; () = the line's supply)."""
        if self._inputs is not None:
            return self._inputs
        out: dict[str, tuple[StationInput, ...]] = {}
        fed = {inp.station for st in self.stations if st.inputs is not None for inp in st.inputs}
        for i, st in enumerate(self.stations):
            if st.inputs is not None:
                out[st.id] = st.inputs
            elif i == 0 or self.stations[i - 1].id in fed:
                out[st.id] = ()
            else:
                out[st.id] = (StationInput(station=self.stations[i - 1].id),)
        self._inputs = out
        return out

    @property
    def consumer(self) -> dict[str, str]:
        """The station each station feeds (every station but the last)."""
        return {inp.station: sid for sid, ins in self.inputs.items() for inp in ins}

    @property
    def branch_starts(self) -> tuple[str, ...]:
        """The stations that take from the line's supply, in flow order."""
        return tuple(sid for sid, ins in self.inputs.items() if not ins)

    @property
    def is_serial(self) -> bool:
        """True for one chain of stations (no merges)."""
        return len(self.branch_starts) == 1

    def path_to_end(self, station_id: str) -> list[str]:
        """The stations from ``station_id`` to the last one, in flow order (both included)."""
        consumer = self.consumer
        path = [station_id]
        while path[-1] in consumer:
            path.append(consumer[path[-1]])
        return path

    def station(self, station_id: str) -> Station:
        """The station with this id (``KeyError`` naming it otherwise)."""
        for st in self.stations:
            if st.id == station_id:
                return st
        raise KeyError(f"no station {station_id!r} in line {self.name!r}")

    def config_hash(self) -> str:
        """A short hash of the validated description: equal for equal lines, whatever the file's layout."""
        data = self.model_dump(mode="json")
        # A line that does not use a field added later keeps the hash it had before the field existed.
        unused: dict[str, Any] = {"calendar": None, "planned_stops": []}
        for key, value in unused.items():
            if data[key] == value:
                del data[key]
        unused_here: dict[str, Any] = {
            "signals": {},
            "inputs": None,
            "speed": 1.0,
            "micro_stops": None,
            "changeover": None,
            "planned_stops": [],
        }
        for st in data["stations"]:
            for key, value in unused_here.items():
                if st[key] == value:
                    del st[key]
            for f in st["failures"]:
                if f["positions"] is None:
                    del f["positions"]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_NAMED = re.compile(r"^((?:[A-Za-z_][A-Za-z0-9_]*)(?:\[\d+\])*(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])*)*): (.+)$", re.S)


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    # pydantic puts union tags and validator names in the path; users know only their file's keys.
    skip_tags = {"constant", "exponential", "lognormal", "weibull", "gamma", "uniform", "triangular", "empirical"}
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in skip_tags or "[" in part:
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def load_line_data(data: Any, source: str = "<data>") -> Line:
    """Validate a parsed line file into a :class:`Line`; raises :class:`LineError` naming ``source`` and each field path."""
    if not isinstance(data, dict):
        raise LineError(source, [("(top level)", f"expected a mapping, got {type(data).__name__}")])
    unit = data.get("time_unit", "s")
    if unit not in ("s", "min", "h", "d"):
        raise LineError(source, [("time_unit", f"must be one of s, min, h, d; got {unit!r}")])
    try:
        return Line.model_validate(data, context={"time_unit": unit})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            where = _format_loc(tuple(err["loc"]))
            # checks across fields name the field they found wrong first: report it as the path
            named = _NAMED.match(msg)
            if named is not None:
                where = named.group(1) if where == "(top level)" else f"{where}.{named.group(1)}"
                msg = named.group(2)
            problems.append((where, msg))
        raise LineError(source, problems) from None
