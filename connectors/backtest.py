"""How right the forecasts are: the virtual plant as the truth, forecasts from its telemetry, scored against it.

:func:`backtest` runs the virtual plant (``connectors.feed.VirtualPlant``: the line's engine as the truth, with its
process and condition signals) from empty through a warm-up and then ``days`` simulated days. Everything it does
reaches the forecasts only as telemetry: its messages are decoded and turned back into events as the ingest does
(``connectors.telemetry``, :class:`Ingest`), and taken into a ``twin.knowledge.KnowledgeBuilder``, from the first
event on (so the stores' entries are known as the service would know them from a long enough look-back). Every
``every_h`` hours of the measured days it forecasts ``horizon_h`` ahead from what that telemetry says then, and once
the truth has passed the horizon, scores it:

- per whole hour ahead ``h`` (and the horizon): the P50's absolute percentage error against the good units the
  line's end actually shipped by then (MAPE over the forecasts), and the coverage, the share of forecasts whose
  actual output fell within ``[p10, p90]`` (an honest 80 % interval covers about 0.8);
- ``p_failure`` per station against whether a new failure did start there within the horizon: the Brier score
  of the forecasts, the Brier score of the base rate (the share of (forecast, station) pairs with a failure, the
  forecast that knows nothing), and the AUC (the probability that a station that failed had a higher
  ``p_failure`` than one that did not; 0.5 is no skill).

``p_failure`` is scored for two forecasts made at each instant with the same seed: with the **age-only** hazard
(``p_failure``) and with the **condition-signal** hazard (``p_failure_condition``, ``twin.condition``). The
condition-signal model is fitted once, at the end of the warm-up, on the samples the knowledge collected from the
warm-up's telemetry, and not refitted: every forecast scored is made on days the model never saw (held out).
Without a model (too few failures in the warm-up) the condition-signal forecasts are the age-only ones, and
``condition_model`` says why. ``by_hour`` scores the age-only forecasts' output.

The truth and the forecasts use the same line file, so this measures the forecasting (what telemetry tells, what
is drawn given it, and the spread), not the model's fit to a real plant: calibration does that.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectors.feed import VirtualPlant
from connectors.telemetry import EventReadings, Topics, channel_of, decode, encode, reading_events
from twin.counters import CumulativeCounters
from twin.events import Event
from twin.forecast import Forecast, forecast
from twin.knowledge import KnowledgeBuilder
from twin.schema import Line
from twin.scoring import Outcome, accuracy, score

__all__ = ["ORIGIN_MS", "BacktestResult", "Ingest", "Wire", "backtest"]

ORIGIN_MS = 1_700_000_000_000
"""The truth's source clock starts here (2023-11-14T22:13:20Z): any fixed instant would do."""
MS_PER_HOUR = 3_600_000


@dataclass(frozen=True)
class BacktestResult:
    """A backtest's scores (see the module docstring)."""

    line: str
    days: float
    every_h: float
    horizon_h: float
    replications: int
    seed: int
    warmup_h: float
    forecasts: int
    by_hour: list[dict[str, float]]
    """Per hour ahead: ``h``, ``mape_p50`` (a fraction), ``coverage_p10_p90``, ``actual_mean``, ``n``."""
    p_failure: dict[str, float]
    """``brier``, ``brier_base_rate``, ``base_rate``, ``auc``, ``pairs`` (age-only hazard)."""
    compute_s: float
    assumptions: dict[str, Any] = field(default_factory=dict)
    p_failure_condition: dict[str, float] = field(default_factory=dict)
    """The same for the condition-signal hazard (the age-only figures when no model was fitted)."""
    condition_model: dict[str, Any] = field(default_factory=dict)
    """The condition-signal model fitted on the warm-up: ``fitted``, ``samples``, ``positives``, and its
    ``coefficients`` or the ``reason`` there is none."""

    def to_dict(self) -> dict[str, Any]:
        """As plain values."""
        return dict(vars(self))


class Wire:
    """A run's events as telemetry and back, into an observer (the knowledge, a live state), as the virtual plant
    publishes them and the ingest takes them: engine time ``t`` arrives as ``ORIGIN_MS / 3,600,000 + t`` hours."""

    def __init__(self, line: Line, builder: Callable[[Event], None]) -> None:
        self.encoder = EventReadings("plant1", line.name, line.stations[0].id, ORIGIN_MS)
        self.topics = Topics("gigatwin", "plant1", line.name)
        self.counters = CumulativeCounters()
        self.builder = builder
        for spec in line.stations:  # the counters' baselines, as the feed publishes them before anything else
            for r in self.encoder.counters(spec.id, spec.machines if spec.kind == "process" else 1, 0.0):
                list(reading_events(r, self.counters))

    def __call__(self, ev: Event) -> None:
        r = self.encoder(ev)
        if r is None:
            return
        src, ch = self.topics.parse(self.topics.topic(r.source.station, channel_of(r)))
        for twin_event in reading_events(decode(src, ch, encode(r)), self.counters):
            self.builder(twin_event)


class Ingest:
    """A publisher that hands each message on as the ingest would: topic and payload decoded (``connectors.telemetry``)
    into twin events, given to an observer (the virtual plant's messages into the knowledge)."""

    def __init__(self, topics: Topics, observer: Callable[[Event], None]) -> None:
        self.topics = topics
        self.observer = observer
        self.counters = CumulativeCounters()

    def publish(self, topic: str, payload: bytes) -> None:
        """Decode one message and hand on its events."""
        src, ch = self.topics.parse(topic)
        for ev in reading_events(decode(src, ch, payload), self.counters):
            self.observer(ev)


def _accuracy(
    made: list[tuple[float, Forecast]], line: Line, horizon_h: float, truth: Outcome, origin_h: float
) -> dict[str, Any]:
    """The forecasts made at (truth's hour, forecast) scored against the truth (``twin.scoring.accuracy``)."""
    with_failures = [s.id for s in line.stations if s.failures]
    return accuracy(
        [
            score(
                t,
                horizon_h,
                [(step["end"] - origin_h, step["p10"], step["p50"], step["p90"]) for step in f.hourly],  # on the truth's clock
                {sid: f.stations[sid].p_failure for sid in with_failures},
                truth,
            )
            for t, f in made
        ]
    )


def backtest(
    line: Line,
    *,
    days: float,
    every_h: float = 8.0,
    horizon_h: float = 8.0,
    replications: int = 50,
    seed: int = 0,
    warmup_h: float = 504.0,
    executor: Executor | None = None,
    progress: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Run the truth for ``warmup_h + days * 24`` hours and forecast every ``every_h`` hours of the last ``days``
    (see the module docstring)."""
    if not (days > 0 and every_h > 0 and horizon_h > 0 and warmup_h >= 0 and replications >= 1):
        raise ValueError("days, every_h, horizon_h and replications must be positive and warmup_h not negative")
    if horizon_h > days * 24:
        raise ValueError(f"horizon_h ({horizon_h:g}) must fit in the measured {days * 24:g} hours")
    began = time.perf_counter()
    origin_h = ORIGIN_MS / MS_PER_HOUR
    builder = KnowledgeBuilder(line, origin_h, skip_late=True, refit_every=None)  # fitted once, after the warm-up
    truth = Outcome(line)
    topics = Topics("gigatwin", "plant1", line.name)
    plant = VirtualPlant(line, topics=topics, publisher=Ingest(topics, builder), seed=seed, origin_ms=ORIGIN_MS)
    truth.attach(plant.engine)  # the engine runs ahead of what is published: the truth is read only at the end
    end = warmup_h + days * 24
    steps = np.arange(warmup_h, end - horizon_h + 1e-9, every_h)
    plant.run_unpaced(warmup_h)
    fit = builder.condition.fit()
    if progress is not None:
        model = f"coefficients {fit.model.as_dict()}" if fit.model is not None else fit.reason
        progress(f"condition-signal model fitted on {fit.samples:,} warm-up samples ({fit.positives:,} failed): {model}")
    made: list[tuple[float, Forecast]] = []
    made_condition: list[tuple[float, Forecast]] = []
    for k, t in enumerate(steps):
        plant.run_unpaced(float(t))
        known = builder.at(origin_h + float(t))  # it carries the warm-up's fit (the builder does not refit)
        f = forecast(
            line,
            dataclasses.replace(known, condition_fit=None),
            horizon_h,
            replications=replications,
            seed=seed + 1 + k,
            executor=executor,
        )
        made.append((float(t), f))
        if fit.model is not None:  # the same seed: the two differ only where the hazard does
            fc = forecast(line, known, horizon_h, replications=replications, seed=seed + 1 + k, executor=executor)
            made_condition.append((float(t), fc))
        if progress is not None:
            progress(f"forecast {k + 1} of {len(steps)} as of hour {t:g}: p50 {f.good_output['p50']:,.0f}")
    plant.run_unpaced(end)

    summary = _accuracy(made, line, horizon_h, truth, origin_h)
    condition = _accuracy(made_condition, line, horizon_h, truth, origin_h) if fit.model is not None else summary
    by_hour = [
        {
            "h": min(row["lead"], horizon_h),
            "mape_p50": row["mape_p50"],
            "coverage_p10_p90": row["coverage_p10_p90"],
            "actual_mean": row["actual_mean"],
            "n": row["n"],
        }
        for row in summary["by_lead"]
    ]
    return BacktestResult(
        line=line.name,
        days=days,
        every_h=every_h,
        horizon_h=horizon_h,
        replications=replications,
        seed=seed,
        warmup_h=warmup_h,
        forecasts=len(made),
        by_hour=by_hour,
        p_failure=summary["p_failure"],
        compute_s=time.perf_counter() - began,
        assumptions=made[0][1].assumptions if made else {},
        p_failure_condition=condition["p_failure"],
        condition_model=fit.as_dict(),
    )
