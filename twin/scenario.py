"""What-if scenarios: named changes to a line, validated like line files, applied to make the scenario's line.

A scenario file (YAML, loaded by ``connectors.scenariofile``)::

    name: faster_stacker_repairs
    description: Halve the stacker's repair times (second shift of fitters)
    changes:
      - {station: STACK, scale: {failures.*.ttr: 0.5}}     # scale a parameter (a distribution's location)
      - {station: FORM, set: {machines: 240}}
      - {station: CALSLIT_C, set: {buffer_after: 48}}
      - {repair_crews: {fitters: 3}}
      - {station: COAT_C, planned_stop: {start: 24h, duration: 8h}}
      - {station: CALSLIT_C, down: {at: 0h, for: 4h, reason: roll_change}}

Kinds of change, one per entry:

- ``scale``: multiply parameters of ``station`` by a factor > 0. A path names a field (``cycle_time``, ``dwell``,
  ``buffer_after``, ``scrap``, ``machines``) or a failure mode's ``ttf``/``ttr`` (``failures.*.ttr`` for every mode,
  ``failures.jam.ttr`` for one, by name), ``changeover.duration``, ``micro_stops.every`` and the like. A distribution
  is scaled in its location (mean, scale, value, low/mode/high, samples: its shape, cv and sigma are kept); a count
  is rounded to the nearest whole number.
- ``set``: give fields of ``station`` new values (dotted paths as for ``scale``), e.g. ``machines: 240``,
  ``buffer_after: 48``, ``failures.jam.ttr: {dist: lognormal, mean: 10min, sigma: 0.8}``.
- ``repair_crews``: the line's crews, added or resized.
- ``planned_stop``: a planned stop of ``station`` (or of the whole line without ``station``): ``start`` after the
  start of the measured window, ``duration``, optionally ``every``, ``name``, ``after_batch``.
- ``down``: ``station`` goes down ``at`` after the start of the measured window ``for`` some hours, with a
  ``reason`` (its machines DOWN: an unplanned stop, counted in availability).

Durations in a scenario are hours when bare numbers, or carry their unit (``"90s"``, ``"20min"``, ``"4h"``, ``"2d"``).
Times (``start``, ``at``) are measured from the start of the measured window: "now" for a what-if from the live
plant, the end of the warm-up for one from steady state; they must fall inside the horizon.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from twin.durations import to_hours
from twin.errors import LineError, TwinError
from twin.schema import Line, load_line_data

__all__ = ["AppliedScenario", "Change", "Scenario", "ScenarioError", "apply_scenario", "load_scenario_data"]

_LOCATION = ("mean", "scale", "value", "low", "mode", "high")
_COUNTS = ("machines", "buffer_after", "batch_size", "lot", "capacity", "every_units", "positions")
_DURATION_FIELDS = ("batch_timeout", "duration", "every")


class ScenarioError(TwinError, ValueError):
    """A scenario is invalid or does not fit its line; ``problems`` lists (field path, what is wrong)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {path}: {msg}" for path, msg in problems]
        super().__init__("invalid scenario\n  " + "\n  ".join(lines))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlannedStopChange(_Model):
    """A planned stop added by a scenario, timed from the start of the measured window."""

    start: float = Field(ge=0)
    duration: float = Field(gt=0)
    every: float | None = Field(default=None, gt=0)
    name: str = Field(default="whatif_stop", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    after_batch: bool = False

    @model_validator(mode="before")
    @classmethod
    def _hours(cls, value: Any) -> Any:
        return _durations_to_hours(value, ("start", "duration", "every"))


class DownChange(_Model):
    """A station down from ``at`` (after the start of the measured window) for ``for_h`` hours, for ``reason``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    at: float = Field(ge=0)
    for_h: float = Field(gt=0, alias="for")
    reason: str = Field(default="whatif_outage", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")

    @model_validator(mode="before")
    @classmethod
    def _hours(cls, value: Any) -> Any:
        return _durations_to_hours(value, ("at", "for"))


def _durations_to_hours(value: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for key in keys:
        if out.get(key) is not None:
            out[key] = to_hours(out[key], "h")
    return out


class Change(_Model):
    """One change of a scenario (module docstring): exactly one of its kinds, with ``station`` where it needs one."""

    station: str | None = None
    scale: dict[str, float] | None = None
    set: dict[str, Any] | None = None
    repair_crews: dict[str, int] | None = None
    planned_stop: PlannedStopChange | None = None
    down: DownChange | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Change:
        kinds = [k for k in ("scale", "set", "repair_crews", "planned_stop", "down") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"give one of scale, set, repair_crews, planned_stop, down; got {kinds or 'none'}")
        kind = kinds[0]
        if kind in ("scale", "set", "down") and self.station is None:
            raise ValueError(f"{kind} needs a station")
        if kind == "repair_crews" and self.station is not None:
            raise ValueError("repair_crews belong to the line: leave station out")
        if self.scale is not None:
            for path, factor in self.scale.items():
                if not (factor > 0 and math.isfinite(factor)):
                    raise ValueError(f"scale.{path}: a factor must be a finite number > 0, got {factor}")
        if self.repair_crews is not None:
            for crew, n in self.repair_crews.items():
                if n < 1:
                    raise ValueError(f"repair_crews.{crew}: needs at least 1 member, got {n}")
        return self

    @property
    def kind(self) -> Literal["scale", "set", "repair_crews", "planned_stop", "down"]:
        """Which kind of change this is."""
        for k in ("scale", "set", "repair_crews", "planned_stop", "down"):
            if getattr(self, k) is not None:
                return k
        raise AssertionError("validated: one kind")  # pragma: no cover


class Scenario(_Model):
    """A named set of changes to a line."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    changes: tuple[Change, ...] = ()

    def scenario_hash(self) -> str:
        """A short hash of the validated scenario: equal for equal scenarios, whatever the file's layout."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AppliedScenario:
    """A scenario made concrete for one run: the scenario's line, and its outages on the run's clock."""

    scenario: Scenario
    line: Line
    outages: tuple[tuple[str, float, float, str], ...]
    """``(station, at_h, hours, reason)`` for :class:`twin.engine.Engine`."""


def _walk(node: Any, parts: list[str], where: str) -> list[tuple[Any, str | int, str]]:
    """The (container, key, path) places a dotted path names in ``node``: ``*`` for every item, a failure mode's
    name for that mode."""
    head, rest = parts[0], parts[1:]
    targets: list[tuple[Any, str | int, str]] = []
    if isinstance(node, list):
        if head == "*":
            keys: list[str | int] = list(range(len(node)))
        elif head.isdigit() and int(head) < len(node):
            keys = [int(head)]
        else:
            keys = [i for i, item in enumerate(node) if isinstance(item, dict) and item.get("name") == head]
        if not keys:
            names = [item.get("name") for item in node if isinstance(item, dict)]
            raise KeyError(f"{where}: no item {head!r} (items: {names or 'none'})")
    elif isinstance(node, dict):
        if head == "*":
            keys = list(node)
        elif head in node:
            keys = [head]
        else:
            raise KeyError(f"{where}: no field {head!r} here (fields: {', '.join(sorted(node))})")
    else:
        raise KeyError(f"{where}: {head!r} is below a value, not a field")
    for key in keys:
        path = f"{where}.{key}" if where else str(key)
        if rest:
            if node[key] is None:
                raise KeyError(f"{path}: not set in the line, nothing to change below it")
            targets.extend(_walk(node[key], rest, path))
        else:
            targets.append((node, key, path))
    return targets


def _scaled(value: Any, factor: float, field: str, path: str) -> Any:
    if isinstance(value, dict) and "dist" in value:
        out = dict(value)
        for key in _LOCATION:
            if out.get(key) is not None:
                out[key] = out[key] * factor
        if out.get("samples") is not None:
            out["samples"] = [v * factor for v in out["samples"]]
        return out
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KeyError(f"{path}: {value!r} is not a number or a distribution; it cannot be scaled")
    if field in _COUNTS:
        return max(round(value * factor), 0)
    return value * factor


def apply_scenario(
    scenario: Scenario, base: Line, window_start_h: float, horizon_h: float, source: str = "<scenario>"
) -> AppliedScenario:
    """``base`` with ``scenario``'s changes, for a measured window from ``window_start_h`` lasting ``horizon_h`` hours
    (planned stops and outages are timed from its start and must fall in it). Each change is applied and the line
    validated after it, so an error names the change (``changes[i]``) and the line field it broke."""
    data = base.model_dump(mode="json", by_alias=True)
    data["time_unit"] = "h"  # the dump holds hours
    line = base
    outages: list[tuple[str, float, float, str]] = []
    ids = [s.id for s in base.stations]
    for i, change in enumerate(scenario.changes):
        where = f"changes[{i}]"
        stations = data["stations"]
        st_index = None
        if change.station is not None:
            if change.station not in ids:
                raise ScenarioError(
                    source,
                    [(f"{where}.station", f"{change.station!r} is not a station of line {base.name!r} ({', '.join(ids)})")],
                )
            st_index = ids.index(change.station)
        kind = change.kind
        try:
            if kind == "scale":
                assert change.scale is not None and st_index is not None
                for path, factor in change.scale.items():
                    for node, key, _p in _walk(stations[st_index], path.split("."), ""):
                        field = path.split(".")[-1] if path.split(".")[-1] != "*" else str(key)
                        node[key] = _scaled(node[key], factor, field, f"{where}.scale.{path}")
            elif kind == "set":
                assert change.set is not None and st_index is not None
                for path, value in change.set.items():
                    parts = path.split(".")
                    if len(parts) == 1:
                        if parts[0] not in stations[st_index]:
                            raise KeyError(
                                f"no field {parts[0]!r} in a station (fields: {', '.join(sorted(stations[st_index]))})"
                            )
                        stations[st_index][parts[0]] = _hours_if_duration(parts[0], value)
                    else:
                        for node, key, _p in _walk(stations[st_index], parts, ""):
                            node[key] = _hours_if_duration(str(parts[-1]), value)
            elif kind == "repair_crews":
                assert change.repair_crews is not None
                data["repair_crews"] = {**data["repair_crews"], **change.repair_crews}
            elif kind == "planned_stop":
                ps = change.planned_stop
                assert ps is not None
                if ps.start >= horizon_h:
                    raise ScenarioError(
                        source, [(f"{where}.planned_stop.start", f"{ps.start:g} h is not inside the horizon of {horizon_h:g} h")]
                    )
                start = dt.datetime.fromtimestamp((window_start_h + ps.start) * 3600.0, dt.UTC)
                stop = {
                    "name": ps.name,
                    "start": start.isoformat(),
                    "duration": ps.duration,
                    "every": ps.every,
                    "after_batch": ps.after_batch,
                }
                if st_index is None:
                    data["planned_stops"] = [*data["planned_stops"], stop]
                else:
                    if stations[st_index]["kind"] != "process":
                        raise ScenarioError(
                            source,
                            [(f"{where}.station", f"{change.station} is a store: it keeps its clock through planned stops")],
                        )
                    stations[st_index]["planned_stops"] = [*stations[st_index]["planned_stops"], stop]
            else:
                down = change.down
                assert down is not None and st_index is not None and change.station is not None
                if stations[st_index]["kind"] != "process":
                    raise ScenarioError(
                        source, [(f"{where}.station", f"{change.station} is a store: only process stations go down")]
                    )
                if down.at >= horizon_h:
                    raise ScenarioError(
                        source, [(f"{where}.down.at", f"{down.at:g} h is not inside the horizon of {horizon_h:g} h")]
                    )
                outages.append((change.station, window_start_h + down.at, down.for_h, down.reason))
        except ScenarioError:
            raise
        except KeyError as exc:
            raise ScenarioError(source, [(f"{where}.{kind}", str(exc.args[0]))]) from None
        except ValueError as exc:
            raise ScenarioError(source, [(f"{where}.{kind}", str(exc))]) from None
        try:
            line = load_line_data(copy.deepcopy(data), source=f"{source} {where}")
        except LineError as exc:
            raise ScenarioError(source, [(f"{where} -> line {path}", msg) for path, msg in exc.problems]) from None
    return AppliedScenario(scenario, line, tuple(outages))


def _hours_if_duration(field: str, value: Any) -> Any:
    # a bare number for a duration field is hours (the dump the scenario edits holds hours)
    if field in _DURATION_FIELDS and isinstance(value, str):
        return to_hours(value, "h")
    return value


def load_scenario_data(data: Any, source: str = "<data>") -> Scenario:
    """Validate a parsed scenario file into a :class:`Scenario`; raises :class:`ScenarioError` naming ``source``
    and each field path."""
    if not isinstance(data, dict):
        raise ScenarioError(source, [("(top level)", f"expected a mapping, got {type(data).__name__}")])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ""
            for part in err["loc"]:
                loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
            problems.append((loc or "(top level)", err["msg"].removeprefix("Value error, ")))
        raise ScenarioError(source, problems) from None
