"""Calibration: a line's parameters estimated from its own history, against the line file's design values.

:func:`calibrate` takes what a window of the line's events showed (``twin.observations.LineObservations``) and
estimates, per station:

- **each failure mode** (the line file's, and any DOWN reason the line file does not know, as its own mode): its
  time to failure on the mode's basis and its time to repair, each by right-censored maximum likelihood over the
  exponential, Weibull, lognormal and gamma families, the family chosen by AIC, with the 95 % interval of the mean
  and a goodness-of-fit distance (``twin.fitting``). A mode with fewer than ``min_failures`` complete
  time-to-failure observations keeps its design values (``used: design``, and why); its estimate is still shown;
- **the cycle time**: working machine-hours per unit (per batch for batch stations), against the working hours the
  line file implies per unit: the mean cycle time over the speed factor (the mean of its inverse, for a factor
  drawn per cycle), lengthened by the micro-stops a machine makes while WORKING (their mean duration per mean
  operating time between them). No interval: the history gives one total, not the units' spread; the ratio says
  how far it is. A store's failure modes (its faults, positions out of use) are fitted as a machine's are, on the
  calendar basis;
- **scrap**: defective over processed, with the exact Clopper-Pearson 95 % interval.

**Drift.** A parameter is flagged (``drift``: the fitted value over the design value) when its design value lies
outside the fitted 95 % interval *and* the two differ by more than :data:`DRIFT_TOLERANCE` (10 %). Outside the
interval alone is not enough: one parameter in twenty lies outside its 95 % interval by chance, a line has dozens,
and with a year of history a difference of 2 % is significant without mattering to anyone. ``drift`` is None for a
parameter that did not drift, or has no design value.

Times are hours here; :meth:`Calibration.to_dict` gives them in the line file's time unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from twin.distributions import Distribution
from twin.durations import HOURS_PER_UNIT
from twin.fitting import FitError, FitResult, clopper_pearson, fit_censored
from twin.observations import LineObservations, ModeObservations
from twin.schema import Line, Speed, Station

__all__ = [
    "DRIFT_TOLERANCE",
    "MIN_FAILURES",
    "Calibration",
    "CycleCalibration",
    "DurationEstimate",
    "ModeCalibration",
    "ScrapCalibration",
    "StationCalibration",
    "calibrate",
    "calibrated_line",
    "expected_cycle_h",
]

DRIFT_TOLERANCE = 0.10
"""How far (relative) a fitted value must be from its design value, beyond its interval, to be flagged as drift."""
MIN_FAILURES = 30
"""Complete time-to-failure observations a mode needs before its fitted values replace the design values."""


@dataclass(frozen=True)
class DurationEstimate:
    """A fitted duration (hours): the chosen family as a line-file mapping, its mean and the mean's 95 % interval,
    the evidence, the design mean and the drift flag (module docstring)."""

    dist: dict[str, Any]
    family: str
    mean_h: float
    ci95_h: tuple[float, float]
    n_events: int
    n_censored: int
    ks_distance: float
    design_mean_h: float | None
    drift: float | None
    note: str

    @classmethod
    def of(cls, fit: FitResult, design_mean_h: float | None) -> DurationEstimate:
        """The estimate of a fit, compared with ``design_mean_h`` (None: no design value)."""
        lo, hi = fit.ci95
        outside = design_mean_h is not None and math.isfinite(lo) and not (lo <= design_mean_h <= hi)
        return cls(
            dist=fit.best.as_line_dist(),
            family=fit.best.family,
            mean_h=fit.mean,
            ci95_h=(lo, hi),
            n_events=fit.n_events,
            n_censored=fit.n_censored,
            ks_distance=fit.ks_distance,
            design_mean_h=design_mean_h,
            drift=_drift(fit.mean, design_mean_h) if outside else None,
            note=fit.note,
        )


@dataclass(frozen=True)
class ModeCalibration:
    """A failure mode of a station: its fitted time to failure and time to repair (None when nothing could be
    fitted), and whether the fit or the design values are used, and why."""

    name: str
    basis: str
    known: bool
    """Whether the line file has this mode (an unknown DOWN reason is reported as its own mode)."""
    n_failures: int
    n_censored: int
    ttf: DurationEstimate | None
    ttr: DurationEstimate | None
    used: str
    """``fitted`` or ``design``."""
    why: str


@dataclass(frozen=True)
class CycleCalibration:
    """Working machine-hours per unit (per batch for batch stations) against the design: ``design_h`` is the line
    file's mean cycle time, ``expected_h`` the working hours it implies with the station's speed factor and
    micro-stops (module docstring), and ``ratio`` the estimate over ``expected_h``."""

    mean_h: float | None
    design_h: float | None
    units: int
    ratio: float | None
    expected_h: float | None = None


@dataclass(frozen=True)
class ScrapCalibration:
    """Defective over processed, its exact 95 % interval, the design rate and the drift flag."""

    rate: float | None
    ci95: tuple[float, float] | None
    design: float
    processed: int
    drift: float | None


@dataclass(frozen=True)
class StationCalibration:
    """One station's calibration."""

    station: str
    failures: list[ModeCalibration]
    cycle_time: CycleCalibration
    scrap: ScrapCalibration


@dataclass(frozen=True)
class Calibration:
    """A line's calibration over ``[start_h, end_h]`` (module docstring)."""

    line: str
    start_h: float
    end_h: float
    min_failures: int
    stations: dict[str, StationCalibration]

    def flagged(self) -> list[str]:
        """The drifted parameters, as ``station.mode.ttf``, ``station.mode.ttr`` and ``station.scrap``."""
        out = []
        for sid, st in self.stations.items():
            for m in st.failures:
                out += [f"{sid}.{m.name}.{k}" for k, e in (("ttf", m.ttf), ("ttr", m.ttr)) if e is not None and e.drift]
            if st.scrap.drift is not None:
                out.append(f"{sid}.scrap")
        return out

    def to_dict(self, time_unit: str = "h") -> dict[str, Any]:
        """As plain values, durations in ``time_unit`` (the line file's)."""
        per = HOURS_PER_UNIT[time_unit]

        def dur(h: float | None) -> float | None:
            return None if h is None or not math.isfinite(h) else h / per

        def est(e: DurationEstimate | None) -> dict[str, Any] | None:
            if e is None:
                return None
            dist = {k: dur(v) if k in ("mean", "scale") else v for k, v in e.dist.items()}
            return {
                **dist,
                "mean": dur(e.mean_h),
                "ci95": [dur(e.ci95_h[0]), dur(e.ci95_h[1])],
                "design_mean": dur(e.design_mean_h),
                "drift": e.drift,
                "n_events": e.n_events,
                "n_censored": e.n_censored,
                "ks_distance": e.ks_distance,
                "note": e.note,
            }

        return {
            "line": self.line,
            "window": {"start_h": self.start_h, "end_h": self.end_h, "hours": self.end_h - self.start_h},
            "time_unit": time_unit,
            "min_failures": self.min_failures,
            "flagged": self.flagged(),
            "stations": {
                sid: {
                    "failures": [
                        {
                            "name": m.name,
                            "basis": m.basis,
                            "known": m.known,
                            "n_failures": m.n_failures,
                            "n_censored": m.n_censored,
                            "ttf": est(m.ttf),
                            "ttr": est(m.ttr),
                            "used": m.used,
                            "why": m.why,
                        }
                        for m in st.failures
                    ],
                    "cycle_time": {
                        "mean_s": None if st.cycle_time.mean_h is None else st.cycle_time.mean_h * 3600,
                        "design_s": None if st.cycle_time.design_h is None else st.cycle_time.design_h * 3600,
                        "expected_s": None if st.cycle_time.expected_h is None else st.cycle_time.expected_h * 3600,
                        "units": st.cycle_time.units,
                        "ratio": st.cycle_time.ratio,
                    },
                    "scrap": {
                        "rate": st.scrap.rate,
                        "ci95": None if st.scrap.ci95 is None else list(st.scrap.ci95),
                        "design": st.scrap.design,
                        "processed": st.scrap.processed,
                        "drift": st.scrap.drift,
                    },
                }
                for sid, st in self.stations.items()
            },
        }


def _inverse_speed(spec: Station) -> float:
    """The mean of 1 / the station's speed factor: a cycle's length over its ideal, on average."""
    speed = spec.speed
    if not isinstance(speed, Speed):
        return 1.0 / float(speed)
    a, b = speed.low, speed.high
    if b - a < 1e-12:
        return 1.0 / a
    if speed.mode is None:  # uniform on [a, b]
        return math.log(b / a) / (b - a)
    c = speed.mode

    # triangular (a, c, b): E[1/X] = 2 / (b - a) * (b ln(b/c) / (b - c) - a ln(c/a) / (c - a)), each term 1 in its limit
    def term(x: float, y: float, z: float) -> float:  # z ln(y/x) / (y - x), its limit z / x when y -> x
        return z * math.log(y / x) / (y - x) if y - x > 1e-12 else z / x

    return 2.0 / (b - a) * (term(c, b, b) - term(a, c, a))


def expected_cycle_h(spec: Station) -> float | None:
    """The working hours a process station's machine takes per cycle by its line file, losses while WORKING included
    (module docstring); None for a store."""
    if spec.kind != "process" or spec.cycle_time is None:
        return None
    hours = spec.cycle_time.mean_value * _inverse_speed(spec)
    micro = spec.micro_stops
    if micro is not None:
        hours *= 1.0 + micro.duration.mean_value / micro.every.mean_value
    return hours


def _drift(fitted: float, design: float | None) -> float | None:
    """``fitted / design`` when they differ by more than the tolerance (a design of 0 against anything more: inf)."""
    if design is None:
        return None
    if design == 0:
        return math.inf if fitted > 0 else None
    ratio = fitted / design
    return ratio if abs(ratio - 1) > DRIFT_TOLERANCE else None


def _fit(durations: np.ndarray, observed: np.ndarray, design_mean_h: float | None, **kw: Any) -> DurationEstimate | None:
    """The estimate, or None when there is nothing to fit (no complete observation)."""
    try:
        return DurationEstimate.of(fit_censored(durations, observed, **kw), design_mean_h)
    except FitError:
        return None


def _mode(spec: Station, obs: ModeObservations, min_failures: int, **kw: Any) -> ModeCalibration:
    design = next((f for f in spec.failures if f.name == obs.mode), None)
    ttf = _fit(obs.ttf_durations, obs.ttf_observed, None if design is None else design.ttf.mean_value, **kw)
    ttr = _fit(obs.ttr_durations, obs.ttr_observed, None if design is None else design.ttr.mean_value, **kw)
    complete = int(np.count_nonzero(obs.ttf_observed))
    if not obs.known:
        used, why = "design", "not a failure mode of the line file: add it to use it"
    elif ttf is None or ttr is None:
        # the fit's own message gives hours; the result speaks the line file's unit, so it says what is missing
        which = "time to failure" if ttf is None else "time to repair"
        used, why = "design", f"no complete {which} observed in the window: nothing to fit"
    elif complete < min_failures:
        used, why = "design", f"{complete} complete failures, {min_failures} needed"
    else:
        used, why = "fitted", f"{complete} complete failures"
    return ModeCalibration(obs.mode, obs.basis, obs.known, obs.failures, obs.censored, ttf, ttr, used, why)


def calibrate(
    line: Line,
    observations: LineObservations,
    *,
    min_failures: int = MIN_FAILURES,
    bootstrap: int = 200,
    rng: np.random.Generator | None = None,
) -> Calibration:
    """Estimate ``line``'s parameters from ``observations`` (module docstring); ``bootstrap`` samples per fitted
    duration for the intervals, drawn with ``rng`` (``np.random.default_rng(0)`` when None: results repeat)."""
    if min_failures < 1:
        raise ValueError(f"min_failures must be at least 1, got {min_failures}")
    rng = np.random.default_rng(0) if rng is None else rng
    stations: dict[str, StationCalibration] = {}
    for spec in line.stations:
        so = observations.stations.get(spec.id)
        if so is None:
            continue
        modes = [_mode(spec, m, min_failures, bootstrap=bootstrap, rng=rng) for m in so.modes]
        design_cycle = None
        if spec.kind == "process" and spec.cycle_time is not None:
            design_cycle = spec.cycle_time.mean_value
        expected = expected_cycle_h(spec)
        cycle = CycleCalibration(
            mean_h=so.cycle_time_h,
            design_h=design_cycle,
            units=so.cycle_units,
            ratio=so.cycle_time_h / expected if so.cycle_time_h is not None and expected else None,
            expected_h=expected,
        )
        rate, ci, drift = None, None, None
        if so.processed > 0:
            rate = so.scrap / so.processed
            ci = clopper_pearson(so.scrap, so.processed)
            if not (ci[0] <= spec.scrap <= ci[1]):
                drift = _drift(rate, spec.scrap)
        stations[spec.id] = StationCalibration(spec.id, modes, cycle, ScrapCalibration(rate, ci, spec.scrap, so.processed, drift))
    return Calibration(line.name, observations.start_h, observations.end_h, min_failures, stations)


_DISTRIBUTION: TypeAdapter[Any] = TypeAdapter(Distribution)


def calibrated_line(line: Line, calibration: Calibration) -> Line:
    """``line`` with what ``calibration`` fitted and uses: the time to failure and to repair of each failure mode
    whose fit is used, and the scrap rate of each station whose scrap drifted; everything else as designed."""
    stations = []
    for spec in line.stations:
        cal = calibration.stations.get(spec.id)
        if cal is None:
            stations.append(spec)
            continue
        failures = []
        for f in spec.failures:
            m = next((m for m in cal.failures if m.name == f.name and m.used == "fitted"), None)
            if m is None or m.ttf is None or m.ttr is None:
                failures.append(f)
                continue
            ttf = _DISTRIBUTION.validate_python(m.ttf.dist, context={"time_unit": "h"})
            ttr = _DISTRIBUTION.validate_python(m.ttr.dist, context={"time_unit": "h"})
            failures.append(f.model_copy(update={"ttf": ttf, "ttr": ttr}))
        update: dict[str, Any] = {"failures": failures}
        if cal.scrap.drift is not None and cal.scrap.rate is not None:
            update["scrap"] = cal.scrap.rate
        stations.append(spec.model_copy(update=update))
    return line.model_copy(update={"stations": stations})
