"""Condition-signal hazard: how a machine's vibration and drive current raise or lower its risk of failing soon.

The age-only hazard (``twin.residual``) knows a machine's failure clock but not its health. Real plants and the
virtual plant publish **condition signals** (``Signal.condition`` in the line file: vibration, motor current) that
drift up in the hours before a breakdown. This module turns them into a fitted, documented correction of the
age-only hazard, which the forecast's sampler uses (``twin.sampler``).

**Features.** Each condition reading of a machine is standardised by its signal's declared noise,
``z = (value - nominal) / sigma`` (``Signal.sigma``: the line file's ``noise``, else ``(high - low) / 6``), clipped
to +-:data:`Z_CLIP`. Per signal two exponentially weighted means are kept, a fast one (time constant
:data:`LEVEL_TAU_H`, 10 min) and a slow one (:data:`TREND_TAU_H`, 40 min), updated with the time between readings
(any reporting rate works). A machine's features are the largest over its condition signals of

- ``level``: the fast mean, the signal's current level in noise units (10 min of one-a-minute readings bring the
  noise's standard deviation from 1 to about 0.22);
- ``trend``: ``(fast - slow) / (40 min - 10 min)``, in noise units per hour: for a signal rising linearly at ``b``
  per hour the two means lag it by their time constants, so this is ``b``.

The largest over the signals, not their mean: a failing bearing may show in vibration and not in drive current.
Readings while the machine is DOWN are ignored (a stopped machine's vibration and current read 0, which says
nothing of its health), and a new failure starts its features afresh: after a repair the machine is another one.
Features are **recent** when the machine's last reading is at most :data:`STALE_H` old and its signals have run
for at least :data:`MIN_SIGNAL_H` since they (re)started; otherwise the machine has no features.

**Model.** A discrete-time logistic hazard for "a new failure of this machine starts within the next ``w`` hours"
(``w`` = :data:`WINDOW_H`, 2 h: the virtual plant's drift, ``gain x exp(-(t_fail - t) / 1 h)``, is 1.2 noise
standard deviations two hours before a failure and lost in the noise before that)::

    logit P(fail within w) = b0 + b1 logit(p_age) + b2 level + b3 trend

where ``p_age`` is the age-only probability of failing within ``w`` (:class:`AgeOnlyHazard`: ``1 - prod S(a + w) /
S(a)`` over the machine's failure modes at their ages, the equilibrium residual's for an age never seen). With
``(b0, b1, b2, b3) = (0, 1, 0, 0)`` it *is* the age-only hazard; the fit moves away from it only as far as the
data ask. The age-only term keeps what the failure clock knows (a wearing Weibull machine, a machine whose mean
time between failures is an hour or a month) and lets one model serve every station.

**Fit.** :func:`fit_condition_model`: maximum likelihood by Newton's method with a ridge penalty
``ridge / 2 x |b - (0, 1, 0, 0)|^2`` (shrinking towards the age-only model, and keeping the estimate finite when
the signals separate the classes perfectly), from samples that :class:`ConditionMonitor` collects from the events
(the same telemetry the forecast reads, so a service or a backtest fits it from telemetry alone): every
:data:`SAMPLE_EVERY_H` hours, each machine that is not down and has recent features gives a sample of its
features and ``p_age``; it is labelled 1 if a new failure of the machine (a DOWN after another state) starts
within ``w``, else 0 once ``w`` has passed. Samples overlap (one every 15 min, each looking 2 h ahead), so they
are not independent: the estimate is still consistent, but its standard errors are optimistic. Fewer than
:data:`MIN_POSITIVES` failures (or non-failures) among the labelled samples give no model: the forecast stays
age-only and says why.

**Use.** ``twin.sampler`` draws, for a machine that is up with recent features and a fitted model, whether it fails
within ``w`` from the model's probability, then its failure times given that (within ``w``: the age-conditioned
time to failure restricted to ``(0, w]``; beyond: conditioned on surviving ``w``). The ``w`` is counted on each
failure mode's basis (working hours for ``operating`` modes): a machine idle for part of the window fails a little
later on the calendar than the model's probability says.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from twin.residual import expected_within, p_event_within
from twin.schema import FailureMode, Line, Station

__all__ = [
    "LEVEL_TAU_H",
    "MIN_POSITIVES",
    "MIN_SIGNAL_H",
    "RIDGE",
    "SAMPLE_EVERY_H",
    "STALE_H",
    "TREND_TAU_H",
    "WINDOW_H",
    "Z_CLIP",
    "AgeOnlyHazard",
    "ConditionFeatures",
    "ConditionFit",
    "ConditionModel",
    "ConditionMonitor",
    "fit_condition_model",
]

WINDOW_H = 2.0
"""The model's window: the probability it gives is of a new failure within this many hours."""
LEVEL_TAU_H = 10 / 60
"""Time constant of the fast mean (the level), hours."""
TREND_TAU_H = 40 / 60
"""Time constant of the slow mean (the trend is fast less slow, per the difference of the time constants), hours."""
STALE_H = 0.25
"""A machine whose last condition reading is older than this has no recent features, hours."""
MIN_SIGNAL_H = 10 / 60
"""A machine's signals must have run this long since they (re)started for its features to count, hours."""
SAMPLE_EVERY_H = 0.25
"""Training samples are taken at whole multiples of this on the events' clock, hours."""
MIN_POSITIVES = 10
"""Labelled samples with a failure (and without one) needed at least for a model."""
RIDGE = 1.0
"""Penalty on the squared distance of the coefficients from the age-only model's (0, 1, 0, 0)."""
Z_CLIP = 10.0
"""Standardised readings are clipped to +-this (a spike or a sensor fault does not dominate the means)."""
MAX_SAMPLES = 100_000
"""Labelled samples kept (the newest): about eleven days of the reference line's machines."""
REFIT_EVERY = 500
"""New labelled samples after which :meth:`ConditionMonitor.fit_if_due` fits again."""

_P_FLOOR = 1e-9  # p_age is clipped to [floor, 1 - floor] before its logit: a certain or impossible failure is finite
_AGE_ONLY = np.array([0.0, 1.0, 0.0, 0.0])

FloatArray = npt.NDArray[np.float64]


def _logit(p: npt.ArrayLike) -> FloatArray:
    q = np.clip(np.asarray(p, dtype=float), _P_FLOOR, 1.0 - _P_FLOOR)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=float)


def _sigmoid(x: npt.ArrayLike) -> FloatArray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float))), dtype=float)  # no overflow


@dataclass(frozen=True)
class ConditionFeatures:
    """A machine's condition signals summed up at an instant (module docstring)."""

    level: float
    """The largest fast mean of its standardised condition signals (noise standard deviations above nominal)."""
    trend: float
    """The largest rise of its standardised condition signals, per hour."""


@dataclass(frozen=True)
class ConditionModel:
    """A fitted condition-signal hazard: ``logit P(new failure within window_h) = intercept + age_only x
    logit(p_age) + level x level + trend x trend`` (module docstring)."""

    intercept: float
    age_only: float
    level: float
    trend: float
    window_h: float = WINDOW_H

    @property
    def coefficients(self) -> tuple[float, float, float, float]:
        """``(intercept, age_only, level, trend)``."""
        return (self.intercept, self.age_only, self.level, self.trend)

    def p_within(self, p_age: npt.ArrayLike, level: npt.ArrayLike, trend: npt.ArrayLike) -> FloatArray:
        """The probability of a new failure within the window, given the age-only one and the features
        (broadcast)."""
        b0, b1, b2, b3 = self.coefficients
        x = b0 + b1 * _logit(p_age) + b2 * np.asarray(level, dtype=float) + b3 * np.asarray(trend, dtype=float)
        return _sigmoid(x)

    def as_dict(self) -> dict[str, float]:
        """As plain values."""
        return {
            "intercept": self.intercept,
            "age_only": self.age_only,
            "level": self.level,
            "trend": self.trend,
            "window_h": self.window_h,
        }


@dataclass(frozen=True)
class ConditionFit:
    """What fitting gave: a model, or none and why; and what it was fitted on."""

    model: ConditionModel | None
    samples: int
    """Labelled samples."""
    positives: int
    """Of them, those with a new failure within the window."""
    reason: str = ""
    """Why there is no model (empty when there is one)."""
    standard_errors: tuple[float, float, float, float] | None = None
    """Of ``(intercept, age_only, level, trend)``, from the penalised likelihood's curvature (optimistic: the
    samples overlap)."""

    def as_dict(self) -> dict[str, object]:
        """As plain values, for a forecast's assumptions."""
        out: dict[str, object] = {"fitted": self.model is not None, "samples": self.samples, "positives": self.positives}
        if self.model is None:
            out["reason"] = self.reason
        else:
            out["coefficients"] = self.model.as_dict()
        return out


def fit_condition_model(
    p_age: npt.ArrayLike,
    level: npt.ArrayLike,
    trend: npt.ArrayLike,
    failed: npt.ArrayLike,
    *,
    window_h: float = WINDOW_H,
    ridge: float = RIDGE,
    min_positives: int = MIN_POSITIVES,
) -> ConditionFit:
    """The condition-signal hazard fitted to labelled samples (one entry per sample: the age-only probability of a
    failure within ``window_h``, the features, and whether one came), by penalised maximum likelihood (module
    docstring). No model when fewer than ``min_positives`` samples failed or did not."""
    if not ridge >= 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    y = np.asarray(failed, dtype=float)
    cols = [np.asarray(c, dtype=float) for c in (p_age, level, trend)]
    if any(c.shape != y.shape for c in cols) or y.ndim != 1:
        raise ValueError("p_age, level, trend and failed must be one-dimensional and of the same length")
    n, positives = int(y.size), int(y.sum())
    if positives < min_positives or n - positives < min_positives:
        which = "failures" if positives < min_positives else "samples without a failure"
        return ConditionFit(
            None,
            n,
            positives,
            f"{min(positives, n - positives)} labelled {which} within {window_h:g} h of a sample instant, "
            f"{min_positives} needed: age-only",
        )
    x = np.column_stack([np.ones(n), _logit(cols[0]), cols[1], cols[2]])
    penalty = ridge * np.eye(4)

    def objective(b: FloatArray) -> float:
        eta = x @ b
        # log-likelihood sum(y eta - log(1 + e^eta)), written without overflow
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)) - 0.5 * ridge * np.sum((b - _AGE_ONLY) ** 2))

    b = _AGE_ONLY.copy()
    value = objective(b)
    hessian = penalty
    for _ in range(100):
        p = _sigmoid(x @ b)
        grad = x.T @ (y - p) - ridge * (b - _AGE_ONLY)
        hessian = (x * (p * (1.0 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian + 1e-12 * np.eye(4), grad)
        # halve the step until the objective does not fall (Newton can overshoot far from the optimum)
        for _ in range(60):
            trial = b + step
            new = objective(trial)
            if new >= value - 1e-12 * abs(value):
                break
            step = step / 2.0
        b, value = trial, new
        if float(np.max(np.abs(step))) < 1e-10:
            break
    p = _sigmoid(x @ b)
    hessian = (x * (p * (1.0 - p))[:, None]).T @ x + penalty
    se = np.sqrt(np.diag(np.linalg.inv(hessian)))
    model = ConditionModel(float(b[0]), float(b[1]), float(b[2]), float(b[3]), window_h)
    return ConditionFit(model, n, positives, "", (float(se[0]), float(se[1]), float(se[2]), float(se[3])))


class AgeOnlyHazard:
    """The age-only probability that a machine fails within a window (module docstring): what its failure clocks
    say, the offset of the condition-signal model."""

    def __init__(self, window_h: float = WINDOW_H) -> None:
        self.window_h = window_h
        self._equilibrium: dict[tuple[str, str], float] = {}

    def mode_p(self, station: str, mode: FailureMode, age: float | None) -> float:
        """P(the mode fails within the window | its age); for an age never seen, the equilibrium residual's
        ``E[min(T, w)] / E[T]``."""
        if age is not None:
            return p_event_within(mode.ttf, max(age, 0.0), self.window_h)
        key = (station, mode.name)
        p = self._equilibrium.get(key)
        if p is None:
            mean = mode.ttf.mean_value
            p = min(expected_within(mode.ttf, 0.0, self.window_h) / mean, 1.0) if mean > 0 else 1.0
            self._equilibrium[key] = p
        return p

    def p_within(self, spec: Station, ages: Mapping[str, float | None]) -> float:
        """P(at least one of the station's failure modes fails within the window), the modes independent."""
        survive = 1.0
        for mode in spec.failures:
            survive *= 1.0 - self.mode_p(spec.id, mode, ages.get(mode.name))
        return 1.0 - survive


class _Signal:
    __slots__ = ("fast", "last", "slow")

    def __init__(self, z: float, t: float) -> None:
        self.fast = z
        self.slow = z
        self.last = t


class _MachineSignals:
    __slots__ = ("first", "last", "pending", "signals")

    def __init__(self) -> None:
        self.first = math.nan  # when its signals (re)started
        self.last = -math.inf  # its newest reading
        self.signals: dict[str, _Signal] = {}
        self.pending: deque[tuple[float, float, float, float]] = deque()  # (instant, p_age, level, trend), oldest first


class ConditionMonitor:
    """Follows a line's condition signals per machine and collects the labelled samples the model is fitted on
    (module docstring). ``twin.knowledge.KnowledgeBuilder`` owns one and tells it of readings, failures and sample
    instants (it knows the machines' states and ages)."""

    def __init__(
        self,
        line: Line,
        *,
        window_h: float = WINDOW_H,
        sample_every_h: float = SAMPLE_EVERY_H,
        max_samples: int = MAX_SAMPLES,
        refit_every: int | None = REFIT_EVERY,
    ) -> None:
        if not (window_h > 0 and sample_every_h > 0 and max_samples > 0):
            raise ValueError("window_h, sample_every_h and max_samples must be positive")
        self.window_h = window_h
        self.sample_every_h = sample_every_h
        self.refit_every = refit_every
        """New labelled samples after which :meth:`fit_if_due` fits again (None: only :meth:`fit` does)."""
        # per (station, signal name): (nominal, 1 / sigma) of the condition signals of stations that can fail
        self._scale: dict[tuple[str, str], tuple[float, float]] = {
            (s.id, name): (sig.nominal, 1.0 / sig.sigma)
            for s in line.stations
            if s.kind == "process" and s.failures
            for name, sig in s.signals.items()
            if sig.condition and sig.sigma > 0
        }
        self.stations = frozenset(sid for sid, _ in self._scale)
        """The stations whose machines have condition signals (and failure modes)."""
        self._machines: dict[tuple[str, int], _MachineSignals] = {}
        self._samples = np.empty((max_samples, 4))  # ring buffer of (p_age, level, trend, failed)
        self._count = 0  # labelled samples taken in all (the newest max_samples are kept)
        self._next_instant = -math.inf
        self._fitted_at = 0  # _count at the last fit
        self.latest: ConditionFit | None = None
        """The latest fit (None before the first)."""

    # -- readings and failures ----------------------------------------------------------------------------------
    def value(self, t: float, station: str, machine: int, name: str, value: float) -> None:
        """A reading of a machine that is not down (others are ignored: not a condition signal, or a station that
        cannot fail)."""
        scale = self._scale.get((station, name))
        if scale is None:
            return
        z = (value - scale[0]) * scale[1]
        z = Z_CLIP if z > Z_CLIP else -Z_CLIP if z < -Z_CLIP else z
        key = (station, machine)
        m = self._machines.get(key)
        if m is None:
            m = self._machines[key] = _MachineSignals()
        if m.first != m.first:
            m.first = t
        m.last = t
        s = m.signals.get(name)
        if s is None:
            m.signals[name] = _Signal(z, t)
            return
        dt = t - s.last
        if dt > 0:
            s.fast += (z - s.fast) * -math.expm1(-dt / LEVEL_TAU_H)
            s.slow += (z - s.slow) * -math.expm1(-dt / TREND_TAU_H)
            s.last = t

    def failed(self, t: float, station: str, machine: int) -> None:
        """A new failure of the machine started at ``t``: its pending samples of the last window are labelled
        failed, and its signals start afresh."""
        m = self._machines.get((station, machine))
        if m is None:
            return
        self._expire(m, t)
        while m.pending:
            _, p_age, level, trend = m.pending.popleft()
            self._keep(p_age, level, trend, 1.0)
        m.signals.clear()
        m.first = math.nan

    def features(self, station: str, machine: int, now_h: float) -> ConditionFeatures | None:
        """The machine's recent features at ``now_h`` (None when it has none: module docstring)."""
        m = self._machines.get((station, machine))
        if m is None or m.first != m.first or m.last < now_h - STALE_H or now_h - m.first < MIN_SIGNAL_H:
            return None
        level = trend = -math.inf
        fresh = now_h - STALE_H
        for s in m.signals.values():
            if s.last >= fresh:
                level = max(level, s.fast)
                trend = max(trend, (s.fast - s.slow) / (TREND_TAU_H - LEVEL_TAU_H))
        return ConditionFeatures(level, trend)

    # -- samples ------------------------------------------------------------------------------------------------
    def instant_before(self, t: float) -> float | None:
        """The latest sample instant before ``t`` not yet sampled, if one is due (the events up to it are all in
        when one at ``t`` comes): the caller then samples at it (:meth:`take`, after :meth:`expire`). After a gap in
        the events, only the last instant in it is sampled."""
        if t <= self._next_instant:
            return None
        k = math.ceil(t / self.sample_every_h) - 1
        instant = k * self.sample_every_h
        self._next_instant = instant + self.sample_every_h
        return instant

    def expire(self, now_h: float) -> None:
        """Label failed-free every pending sample whose window ended by ``now_h`` (the events up to it are in)."""
        for m in self._machines.values():
            if m.pending:
                self._expire(m, now_h)

    def _expire(self, m: _MachineSignals, now_h: float) -> None:
        w = self.window_h
        while m.pending and m.pending[0][0] + w < now_h:
            _, p_age, level, trend = m.pending.popleft()
            self._keep(p_age, level, trend, 0.0)

    def take(self, instant: float, station: str, machine: int, p_age: float, features: ConditionFeatures) -> None:
        """A sample of a machine that is up at ``instant``, to be labelled once its window has passed."""
        self._machines[(station, machine)].pending.append((instant, p_age, features.level, features.trend))

    def _keep(self, p_age: float, level: float, trend: float, failed: float) -> None:
        row = self._samples[self._count % self._samples.shape[0]]
        row[0], row[1], row[2], row[3] = p_age, level, trend, failed
        self._count += 1

    @property
    def labelled(self) -> int:
        """Labelled samples kept."""
        return min(self._count, self._samples.shape[0])

    def samples(self) -> FloatArray:
        """The labelled samples kept, as rows ``(p_age, level, trend, failed)`` (oldest first)."""
        n, cap = self._count, self._samples.shape[0]
        if n <= cap:
            return self._samples[:n].copy()
        cut = n % cap
        return np.concatenate([self._samples[cut:], self._samples[:cut]])

    # -- fitting ------------------------------------------------------------------------------------------------
    def fit(self, *, ridge: float = RIDGE, min_positives: int = MIN_POSITIVES) -> ConditionFit:
        """Fit the model to the labelled samples kept (:func:`fit_condition_model`), and keep it as
        :attr:`latest`."""
        rows = self.samples()
        self.latest = fit_condition_model(
            rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], window_h=self.window_h, ridge=ridge, min_positives=min_positives
        )
        self._fitted_at = self._count
        return self.latest

    def fit_if_due(self) -> ConditionFit | None:
        """Fit again when ``refit_every`` samples have been labelled since the last fit, or when there is no model
        yet and new samples have been labelled (a fit that finds too few failures is cheap); the latest fit."""
        new = self._count - self._fitted_at
        stale = self.latest is None or self.latest.model is None or new >= (self.refit_every or 0)
        if self.refit_every is not None and new > 0 and stale:
            self.fit()
        return self.latest
