"""Forecasts from the live plant: replications of the line started from what telemetry knows, with their spread.

:func:`forecast` runs ``replications`` engine runs of ``horizon_h`` hours, each from its own starting state drawn
by ``twin.sampler`` given a :class:`~twin.knowledge.LineKnowledge` (so the uncertainty of what the wire does not
say, repair and work left, failure clocks, is in the spread), and summarises them:

- ``good_output``: good units the line's end ships from the knowledge's instant to the horizon (mean, standard
  deviation and the 10th, 50th and 90th percentiles over the replications), and ``hourly``, the same percentiles
  of the cumulative output at each whole hour (the fan chart);
- ``plan``: the plan's units by the horizon (``plan_per_hour`` times the line's working hours within it, unless a
  target is given: ``twin.shifts.working_hours``, no plan outside its calendar's shifts, in breaks, on holidays or
  in the line's planned stops) and the share of replications that reach it (``p_meet``);
- per station: ``p_failure``, the share of replications in which at least one of its machines starts a new failure
  within the horizon (the repairs under way at the start are not new); ``expected_downtime_h``, the mean
  machine-hours down within the horizon, the repairs under way included (a repair behind a planned stop counts as
  the stop, as the machine shows it); ``p_down_at_horizon``, the share in which at least one of its machines is
  down at the horizon (and ``machines_down_at_horizon``, their mean number); ``repair_left_h``, the 50th and 90th
  percentiles of the time until every machine down at the start is repaired (null when none is); ``p_bottleneck``,
  the share in which it is the bottleneck by the active-period method. A store's faults count as its failures
  (one "machine" per failure mode, as ``twin.stops`` counts them), its faults under repair at the start in
  ``repair_left_h``.

Failure times come from the machines' ages (the age-only hazard), or, for machines with recent condition signals,
from the condition-signal hazard model (``twin.condition``) when one is fitted: the knowledge's
(:attr:`~twin.knowledge.LineKnowledge.condition_fit`, fitted from the same telemetry), or one given. The result's
``assumptions`` say which per station (``hazard``: ``condition-signal`` or ``age-only``) and what model
(``condition_model``: its coefficients and what it was fitted on, or why there is none).

Replications are drawn in chunks of :data:`CHUNK`: chunk ``c`` draws its starting states with the stream
``(seed, c)`` and replication ``i`` runs the engine with ``(seed, i)``, so a forecast depends only on its seed and
its replications, not on how many processes ran it. An ``executor`` (a process pool made once by the caller,
with the spawn or forkserver start method in a threaded service) runs the chunks in parallel.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.condition import ConditionModel
from twin.distributions import named_stream
from twin.engine import Engine
from twin.events import MachineState, StateChanged, UnitsCompleted
from twin.knowledge import LineKnowledge
from twin.kpis import ActivePeriods
from twin.sampler import SamplingNotes, sample_snapshots
from twin.schema import Line
from twin.shifts import working_hours

__all__ = ["CHUNK", "MAX_HORIZON_H", "MIN_HORIZON_H", "Forecast", "StationForecast", "forecast"]

CHUNK = 25
"""Replications whose starting states are drawn together (one stream per chunk)."""
MIN_HORIZON_H = 1 / 60
"""The shortest horizon a forecast takes: a minute (a shorter one says nothing, and a vanishing one no window)."""
MAX_HORIZON_H = 7 * 24.0
"""The longest horizon a forecast takes: a week."""
DOWN, PLANNED_STOP = MachineState.DOWN, MachineState.PLANNED_STOP


@dataclass(frozen=True)
class _Run:
    """What one replication contributes to the summary."""

    cumulative: np.ndarray  # good units shipped by the end of each hourly step
    failed: frozenset[str]  # stations with a new failure within the horizon
    downtime_h: dict[str, float]  # machine-hours down within the horizon
    down_at_end: dict[str, int]  # machines down at the horizon
    repair_left_h: dict[str, float]  # per station with machines down at the start: the longest repair left
    bottleneck: str


class _Watch:
    """Follows one replication's line end and machine states (field handlers, for speed)."""

    def __init__(self, line: Line, t0: float, steps: np.ndarray) -> None:
        self.t0 = t0
        self.steps = steps
        self.last = line.stations[-1].id
        self.times: list[float] = []
        self.goods: list[int] = []
        self.down_since: dict[tuple[str, int], float] = {}
        self.repairing: dict[tuple[str, int], str] = {}  # under repair (shown, or behind a planned stop): the mode
        self.downtime: dict[str, float] = {}
        self.failed: set[str] = set()

    def completed(self, t: float, station: str, machine: int, good: int, scrap: int) -> None:
        if station == self.last and good:
            self.times.append(t)
            self.goods.append(good)

    def state(self, t: float, station: str, machine: int, state: MachineState, reason: str) -> None:
        key = (station, machine)
        since = self.down_since.pop(key, None)
        if since is not None:
            self.downtime[station] = self.downtime.get(station, 0.0) + (t - since)
        if state is DOWN:
            self.down_since[key] = t
            # the repairs under way at the start are restored at t0, and one a planned stop hid is shown again
            # with its reason as the stop ends: neither is a new failure
            if t > self.t0 and self.repairing.get(key) != reason:
                self.failed.add(station)
            self.repairing[key] = reason
        elif state is not PLANNED_STOP:
            self.repairing.pop(key, None)

    def result(self, end: float, repair_left: dict[str, float], bottleneck: str) -> _Run:
        downtime = dict(self.downtime)
        down_at_end: dict[str, int] = {}
        for (station, _), since in self.down_since.items():
            downtime[station] = downtime.get(station, 0.0) + (end - since)
            down_at_end[station] = down_at_end.get(station, 0) + 1
        cum = np.cumsum(self.goods) if self.goods else np.zeros(0, dtype=np.int64)
        idx = np.searchsorted(np.asarray(self.times), self.steps, side="right")
        cumulative = np.where(idx > 0, cum[np.maximum(idx - 1, 0)] if cum.size else 0, 0)
        return _Run(cumulative, frozenset(self.failed), downtime, down_at_end, repair_left, bottleneck)


def _chunk(
    line: Line,
    knowledge: LineKnowledge,
    horizon_h: float,
    seed: int,
    chunk: int,
    count: int,
    condition_model: ConditionModel | None = None,
) -> tuple[list[_Run], SamplingNotes]:
    """Replications ``chunk * CHUNK`` to ``chunk * CHUNK + count - 1`` (a module-level function: run in a pool)."""
    t0 = knowledge.time_h
    end = t0 + horizon_h
    steps = t0 + np.minimum(np.arange(1, math.ceil(horizon_h - 1e-9) + 1, dtype=float), horizon_h)
    rng = named_stream((seed, chunk), "forecast/snapshots")
    starts = sample_snapshots(line, knowledge, rng, count, condition_model, horizon_h)
    runs = []
    # The cyclic garbage collector would walk the knowledge and the sampled snapshots (hundreds of thousands of
    # objects) again and again while the engines allocate: a third of a replication of the reference line. So what
    # lives now is frozen (left out of collections), collection is off for the chunk, and one collection then frees
    # the replications' engines (reference cycles, about 7,500 objects each) walking only them.
    collecting = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        for j, start in enumerate(starts):
            snapshot = start.snapshot
            engine = Engine(line, (seed, chunk * CHUNK + j), snapshot)
            watch = _Watch(line, t0, steps)
            engine.subscribe_fields(UnitsCompleted, watch.completed)
            engine.subscribe_fields(StateChanged, watch.state)
            periods = ActivePeriods(line, t0, end)  # the bottleneck is all a forecast needs of the KPIs
            periods.attach(engine)
            engine.run(end)
            repair_left = {
                sid: max([m.repair_left_h for m in st.machines if m.state is DOWN] + list(st.faults.values()))
                for sid, st in snapshot.stations.items()
                if st.faults or any(m.state is DOWN for m in st.machines)
            }
            runs.append(watch.result(end, repair_left, periods.bottleneck()))
            del engine, watch, periods
            gc.collect()  # only this replication's engine: the rest is frozen
    finally:
        gc.collect()
        gc.unfreeze()
        if collecting:
            gc.enable()
    return runs, starts[0].notes


@dataclass(frozen=True)
class StationForecast:
    """A station's risks within the horizon (see the module docstring)."""

    p_failure: float
    expected_downtime_h: float
    p_down_at_horizon: float
    machines_down_at_horizon: float
    repair_left_h: dict[str, float] | None
    p_bottleneck: float


@dataclass(frozen=True)
class Forecast:
    """A forecast's summary over its replications (see the module docstring). Times are hours on the knowledge's
    clock."""

    as_of_h: float
    horizon_h: float
    replications: int
    seed: int
    compute_s: float
    good_output: dict[str, float]
    hourly: list[dict[str, float]]
    plan: dict[str, float]
    stations: dict[str, StationForecast]
    assumptions: dict[str, object] = field(default_factory=dict)
    parameters: str = "line-file"

    def to_dict(self, time: Callable[[float], Any] = float) -> dict[str, Any]:
        """As plain values; ``time`` turns an hour on the clock into what the caller shows (e.g. ISO 8601)."""
        return {
            "as_of": time(self.as_of_h),
            "horizon_h": self.horizon_h,
            "replications": self.replications,
            "seed": self.seed,
            "parameters": self.parameters,
            "compute_s": self.compute_s,
            "good_output": dict(self.good_output),
            "hourly": [{**h, "end": time(h["end"])} for h in self.hourly],
            "plan": dict(self.plan),
            "stations": {sid: vars(s).copy() for sid, s in self.stations.items()},
            "assumptions": dict(self.assumptions),
        }


def _quantiles(values: np.ndarray) -> dict[str, float]:
    p10, p50, p90 = np.quantile(values, [0.1, 0.5, 0.9])
    return {"p10": float(p10), "p50": float(p50), "p90": float(p90)}


def forecast(
    line: Line,
    knowledge: LineKnowledge,
    horizon_h: float,
    *,
    replications: int = 200,
    seed: int = 0,
    plan_per_hour: float = 0.0,
    plan_target: float | None = None,
    executor: Executor | None = None,
    condition_model: ConditionModel | None = None,
    parameters: str = "line-file",
) -> Forecast:
    """Forecast ``line`` from ``knowledge`` over ``horizon_h`` hours with ``replications`` runs (see the module
    docstring); in ``executor`` when given, else in this process. ``condition_model``: the condition-signal hazard
    to use instead of the knowledge's fitted one (without either, failure times are age-only); ``parameters``: what
    ``line``'s values are, as the result says (``line-file``, or ``calibrated`` from the plant's history)."""
    if not (MIN_HORIZON_H <= horizon_h <= MAX_HORIZON_H):
        raise ValueError(
            f"horizon_h must be at least a minute ({MIN_HORIZON_H:.4g} h) and at most {MAX_HORIZON_H:g} h (a week), "
            f"got {horizon_h}"
        )
    if replications < 1:
        raise ValueError(f"replications must be at least 1, got {replications}")
    started = time.perf_counter()
    fit = knowledge.condition_fit
    model = condition_model if condition_model is not None else fit.model if fit is not None else None
    if condition_model is not None:
        model_notes: dict[str, object] = {"fitted": True, "given": True, "coefficients": condition_model.as_dict()}
    elif fit is not None:
        model_notes = fit.as_dict()
    else:
        model_notes = {"fitted": False, "reason": "no condition-signal model was fitted: age-only"}
    chunks = [(c, min(CHUNK, replications - c * CHUNK)) for c in range(math.ceil(replications / CHUNK))]
    if executor is None:
        parts = [_chunk(line, knowledge, horizon_h, seed, c, n, model) for c, n in chunks]
    else:
        futures = [executor.submit(_chunk, line, knowledge, horizon_h, seed, c, n, model) for c, n in chunks]
        parts = [f.result() for f in futures]
    runs = [run for part, _ in parts for run in part]
    notes = parts[0][1]
    t0 = knowledge.time_h
    cumulative = np.stack([r.cumulative for r in runs]).astype(float)
    total = cumulative[:, -1]
    steps = t0 + np.minimum(np.arange(1, cumulative.shape[1] + 1, dtype=float), horizon_h)
    hourly = [{"end": float(end), **_quantiles(cumulative[:, k])} for k, end in enumerate(steps)]
    target = plan_per_hour * working_hours(line, t0, t0 + horizon_h) if plan_target is None else plan_target
    n = len(runs)
    stations: dict[str, StationForecast] = {}
    for spec in line.stations:
        sid = spec.id
        repairs = np.array([r.repair_left_h[sid] for r in runs if sid in r.repair_left_h])
        stations[sid] = StationForecast(
            p_failure=sum(sid in r.failed for r in runs) / n,
            expected_downtime_h=float(np.mean([r.downtime_h.get(sid, 0.0) for r in runs])),
            p_down_at_horizon=sum(r.down_at_end.get(sid, 0) > 0 for r in runs) / n,
            machines_down_at_horizon=float(np.mean([r.down_at_end.get(sid, 0) for r in runs])),
            repair_left_h=None if repairs.size == 0 else {k: v for k, v in _quantiles(repairs).items() if k in ("p50", "p90")},
            p_bottleneck=sum(r.bottleneck == sid for r in runs) / n,
        )
    return Forecast(
        as_of_h=t0,
        horizon_h=horizon_h,
        replications=n,
        seed=seed,
        compute_s=time.perf_counter() - started,
        good_output={"mean": float(total.mean()), "sd": float(total.std(ddof=1)) if n > 1 else 0.0, **_quantiles(total)},
        hourly=hourly,
        plan={"target": float(target), "p_meet": float(np.mean(total >= target)) if target > 0 else 1.0},
        stations=stations,
        assumptions={**notes.as_dict(), "condition_model": model_notes},
        parameters=parameters,
    )
