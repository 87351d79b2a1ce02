"""The line description: a serial production line as validated, typed data.

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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from twin.distributions import Distribution
from twin.durations import TimeUnit, to_hours
from twin.errors import LineError

__all__ = ["Arrival", "FailureMode", "Line", "Signal", "Station", "load_line_data"]


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
            if self.failures:
                raise ValueError("failures of delay stations are not modelled yet")
            if self.machines != 1:
                raise ValueError("a delay station has no machines; give capacity")
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
    """A serial production line: stations in flow order, each feeding the next through its buffer."""

    name: str = Field(min_length=1)
    time_unit: TimeUnit = "s"
    description: str = ""
    stations: tuple[Station, ...] = Field(min_length=1)
    repair_crews: dict[str, int] = Field(default_factory=dict)
    arrival: Arrival | None = None
    """None: the first station never starves."""

    @model_validator(mode="after")
    def _references(self) -> Line:
        ids = [s.id for s in self.stations]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"station ids repeat: {dupes}")
        for i, st in enumerate(self.stations):
            for j, mode in enumerate(st.failures):
                if mode.crew is not None and mode.crew not in self.repair_crews:
                    raise ValueError(
                        f"stations[{i}].failures[{j}].crew: {mode.crew!r} is not one of repair_crews {sorted(self.repair_crews)}"
                    )
        last = self.stations[-1]
        if last.buffer_after is not None:
            raise ValueError(f"stations[{len(ids) - 1}].buffer_after: the last station ships to an unbounded sink; leave it out")
        for name, count in self.repair_crews.items():
            if count < 1:
                raise ValueError(f"repair_crews.{name}: needs at least 1 member, got {count}")
        return self

    def station(self, station_id: str) -> Station:
        """The station with this id (``KeyError`` naming it otherwise)."""
        for st in self.stations:
            if st.id == station_id:
                return st
        raise KeyError(f"no station {station_id!r} in line {self.name!r}")

    def config_hash(self) -> str:
        """A short hash of the validated description: equal for equal lines, whatever the file's layout."""
        data = self.model_dump(mode="json")
        for st in data["stations"]:
            # A line without signals keeps the hash it had before stations could carry signals.
            if not st["signals"]:
                del st["signals"]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


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
            problems.append((_format_loc(tuple(err["loc"])), msg))
        raise LineError(source, problems) from None
