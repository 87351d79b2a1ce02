"""How right forecasts were: what happened after each one, its score, and the scores summed up by horizon.

:class:`Outcome` follows what the line did (an observer of its events): the good units its last station shipped
over time, and when a new failure started at each station (a machine going DOWN that was not DOWN, nor under
that repair behind a planned stop). It forgets
what lies before :meth:`Outcome.forget_before`, so a service can keep it for as long as a forecast waits.

:func:`score` measures one forecast against an outcome once its horizon has passed:

- per hourly step (each whole hour ahead, the last one the horizon): the good units actually shipped from the
  forecast's instant to the step's end, against the step's ``p10``, ``p50`` and ``p90``;
- per station with a ``p_failure``: whether a new failure did start there within the horizon.

:func:`accuracy` sums scores up by **lead**: a step ``h`` hours ahead counts for the lead ``ceil(h)`` (1 for the
first hour, 2 for the second, ...; a horizon of 3.4 h counts for 4):

- ``mape_p50``: the mean of ``|p50 - actual| / actual`` over the steps whose actual is not 0 (a fraction);
- ``coverage_p10_p90``: the share of steps whose actual fell within ``[p10, p90]`` (an honest 80 % interval
  covers about 0.8);
- ``p_failure``, by the lead of the whole horizon and over all: the Brier score of the forecasts, the Brier score
  of the base rate (the share of (forecast, station) pairs with a failure: the forecast that knows nothing), and
  the AUC (the probability that a station that failed had the higher ``p_failure`` than one that did not; 0.5 is
  no skill, NaN when only one class occurred).

Consecutive forecasts of a service overlap (one a minute, each to the shift's end): their scores are not
independent, so ``n`` overstates the evidence; the figures are still each forecast's honest record.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.events import Event, MachineState, StateChanged, UnitsCompleted
from twin.schema import Line

__all__ = ["Outcome", "Score", "accuracy", "auc", "lead_of", "score"]

DOWN, PLANNED_STOP = MachineState.DOWN, MachineState.PLANNED_STOP


class Outcome:
    """What the line did: its end's good output over time and each station's failure starts (module docstring).

    Feed it events (call it, or :meth:`attach` it to an engine); times are hours on the events' clock. Events
    older than the newest one taken are still counted (late telemetry is what happened too)."""

    def __init__(self, line: Line) -> None:
        self.last = line.stations[-1].id
        self._times: list[float] = []  # line-end completions, in time order
        self._cum: list[int] = [0]  # good units up to and including each completion (one leading 0)
        self._failures: dict[str, list[float]] = {s.id: [] for s in line.stations}
        self._down: dict[tuple[str, int], str] = {}  # machines under repair (shown, or behind a planned stop): its mode
        self.clock_h: float | None = None
        """The newest event's time (None before the first)."""

    def attach(self, engine: Any) -> None:
        """Follow an engine's run (``engine.subscribe_fields``)."""
        engine.subscribe_fields(UnitsCompleted, self.completed)
        engine.subscribe_fields(StateChanged, self.state)

    def __call__(self, ev: Event) -> None:
        """Take one event (those that are not completions or machine states are ignored but move the clock)."""
        if type(ev) is UnitsCompleted:
            self.completed(*ev)
        elif type(ev) is StateChanged:
            self.state(*ev)
        else:
            self._tick(ev.t)

    def _tick(self, t: float) -> None:
        if self.clock_h is None or t > self.clock_h:
            self.clock_h = t

    def completed(self, t: float, station: str, machine: int, good: int, scrap: int) -> None:
        """Units completed at ``station`` (counted when it is the line's end)."""
        self._tick(t)
        if station != self.last or good <= 0:
            return
        if not self._times or t >= self._times[-1]:
            self._times.append(t)
            self._cum.append(self._cum[-1] + good)
            return
        i = bisect.bisect_right(self._times, t)  # late: every total after it grows
        self._times.insert(i, t)
        self._cum.insert(i + 1, self._cum[i])
        for k in range(i + 1, len(self._cum)):
            self._cum[k] += good

    def state(self, t: float, station: str, machine: int, state: MachineState, reason: str) -> None:
        """A machine's state: a DOWN of a machine that was not down starts a failure (a repair a planned stop hid and
        shown again when it ends, with the same reason, is the same failure; a store's fault is its failure)."""
        self._tick(t)
        key = (station, machine)
        if state is DOWN:
            if self._down.get(key) != reason and station in self._failures:
                bisect.insort(self._failures[station], t)
            self._down[key] = reason
        elif state is not PLANNED_STOP:
            self._down.pop(key, None)

    def shipped(self, t0: float, t1: float) -> int:
        """Good units the line's end shipped in ``(t0, t1]``."""
        hi = bisect.bisect_right(self._times, t1)
        lo = bisect.bisect_right(self._times, t0)
        return self._cum[hi] - self._cum[lo] if hi > lo else 0

    def failed(self, station: str, t0: float, t1: float) -> bool:
        """Whether a new failure started at ``station`` in ``(t0, t1]``."""
        starts = self._failures.get(station, [])
        i = bisect.bisect_right(starts, t0)
        return i < len(starts) and starts[i] <= t1

    def forget_before(self, t: float) -> None:
        """Drop what happened before ``t`` (no question will be asked about it any more)."""
        cut = bisect.bisect_left(self._times, t)
        if cut:
            del self._times[:cut]
            del self._cum[:cut]  # the first kept total becomes the new leading one
        for starts in self._failures.values():
            del starts[: bisect.bisect_left(starts, t)]


def lead_of(hours_ahead: float) -> int:
    """The lead a step ``hours_ahead`` counts for: its whole hours, rounded up (at least 1)."""
    return max(1, math.ceil(hours_ahead - 1e-9))


@dataclass(frozen=True)
class Score:
    """One forecast against what happened (module docstring). Times are hours on the line's clock."""

    as_of_h: float
    horizon_h: float
    steps: list[dict[str, float]]
    """Per hourly step: ``h`` (hours ahead), ``p10``, ``p50``, ``p90`` and ``actual`` (good units shipped)."""
    stations: dict[str, dict[str, float]]
    """Per station: ``p_failure`` and ``failed`` (1.0 if a new failure started within the horizon, else 0.0)."""

    def to_dict(self) -> dict[str, Any]:
        """As plain values (what a store keeps)."""
        return {"as_of_h": self.as_of_h, "horizon_h": self.horizon_h, "steps": self.steps, "stations": self.stations}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Score:
        """The score :meth:`to_dict` gave; KeyError, TypeError or ValueError if ``d`` is not one (every number is
        checked here, so that a score read back is safe to sum up)."""
        steps = [{k: float(step[k]) for k in ("h", "p10", "p50", "p90", "actual")} for step in d["steps"]]
        stations = {str(sid): {k: float(st[k]) for k in ("p_failure", "failed")} for sid, st in dict(d["stations"]).items()}
        return cls(float(d["as_of_h"]), float(d["horizon_h"]), steps, stations)


def score(
    as_of_h: float,
    horizon_h: float,
    steps: Sequence[tuple[float, float, float, float]],
    p_failure: Mapping[str, float],
    outcome: Outcome,
) -> Score:
    """Score a forecast made at ``as_of_h`` for ``horizon_h`` hours, whose hourly ``steps`` are ``(end_h, p10,
    p50, p90)`` of the cumulative good output, against ``outcome`` (which must have followed the line past the
    horizon)."""
    return Score(
        as_of_h,
        horizon_h,
        [
            {"h": end - as_of_h, "p10": p10, "p50": p50, "p90": p90, "actual": float(outcome.shipped(as_of_h, end))}
            for end, p10, p50, p90 in steps
        ],
        {
            sid: {"p_failure": float(p), "failed": float(outcome.failed(sid, as_of_h, as_of_h + horizon_h))}
            for sid, p in p_failure.items()
        },
    )


def auc(p: np.ndarray, y: np.ndarray) -> float:
    """The area under the ROC curve of scores ``p`` for the classes ``y`` (Mann-Whitney, ties counted half); NaN
    when only one class occurs."""
    y = np.asarray(y, dtype=bool)
    p = np.asarray(p, dtype=float)
    pos, neg = p[y], p[~y]
    if not pos.size or not neg.size:
        return math.nan
    order = np.argsort(p, kind="mergesort")
    sp = p[order]
    ranks = np.empty(p.size)
    # average ranks over ties: each run of equal values gets the mean of its positions
    starts = np.flatnonzero(np.r_[True, sp[1:] != sp[:-1]])
    ends = np.r_[starts[1:], sp.size]
    ranks[order] = np.repeat((starts + ends - 1) / 2 + 1, ends - starts)
    return float((ranks[y].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def _brier(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    if not y.size:
        return {"brier": math.nan, "brier_base_rate": math.nan, "base_rate": math.nan, "auc": math.nan, "pairs": 0.0}
    base = float(y.mean())
    return {
        "brier": float(np.mean((p - y) ** 2)),
        "brier_base_rate": float(np.mean((base - y) ** 2)),
        "base_rate": base,
        "auc": auc(p, y.astype(bool)),
        "pairs": float(y.size),
    }


def accuracy(scores: Iterable[Score]) -> dict[str, Any]:
    """Scores summed up by lead (module docstring): ``by_lead`` (per lead: ``lead``, ``n``, ``mape_p50``,
    ``coverage_p10_p90``, ``actual_mean``), ``p_failure`` (over all: ``brier``, ``brier_base_rate``,
    ``base_rate``, ``auc``, ``pairs``) and ``p_failure_by_lead`` (the same per lead of the whole horizon)."""
    steps: dict[int, list[dict[str, float]]] = {}
    pairs: dict[int, list[tuple[float, float]]] = {}
    n = 0
    for s in scores:
        n += 1
        for step in s.steps:
            steps.setdefault(lead_of(step["h"]), []).append(step)
        for st in s.stations.values():
            pairs.setdefault(lead_of(s.horizon_h), []).append((st["p_failure"], st["failed"]))
    by_lead = []
    for lead in sorted(steps):
        rows = steps[lead]
        actual = np.array([r["actual"] for r in rows])
        p10, p50, p90 = (np.array([r[k] for r in rows]) for k in ("p10", "p50", "p90"))
        nz = actual > 0
        by_lead.append(
            {
                "lead": float(lead),
                "n": float(len(rows)),
                "mape_p50": float(np.mean(np.abs(p50[nz] - actual[nz]) / actual[nz])) if nz.any() else math.nan,
                "coverage_p10_p90": float(np.mean((p10 <= actual) & (actual <= p90))),
                "actual_mean": float(actual.mean()),
            }
        )
    all_pairs = np.array([pq for rows in pairs.values() for pq in rows], dtype=float).reshape(-1, 2)
    return {
        "forecasts": n,
        "by_lead": by_lead,
        "p_failure": _brier(all_pairs[:, 0], all_pairs[:, 1]),
        "p_failure_by_lead": [
            {"lead": float(lead), **_brier(np.array([p for p, _ in rows]), np.array([y for _, y in rows]))}
            for lead, rows in sorted(pairs.items())
        ],
    }
