"""What-ifs: a line's scenarios against its baseline, run in pairs with common random numbers.

Replication ``i`` of the baseline and of every scenario runs with the same seed (and, from the live plant, the same
sampled starting state), so the engine's named random streams give the stations a scenario does not touch the same
draws; the difference scenario - baseline is taken per replication and summarised with a Student-t 95 % interval
(the *paired* interval; the unpaired one, from the two samples' variances, is given next to it to show what the
pairing saved).

Two starting points: steady state (each variant warmed up on its own for ``warmup`` hours, then measured for
``hours``), or a starting snapshot per replication (the live plant now: no warm-up). Scenario times (planned stops,
outages) count from the start of the measured window.

Replications run on any ``concurrent.futures.Executor`` (a process pool here, a Dask cluster's executor elsewhere):
each task is a few replications (up to :data:`CHUNK`) of every variant, each replication with its own seed and
starting state, so the result does not depend on the executor nor on how the replications are split into tasks.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats  # type: ignore[import-untyped]

from twin.distributions import named_stream
from twin.engine import Engine
from twin.errors import SnapshotError
from twin.knowledge import LineKnowledge
from twin.kpis import KpiReducer, RunKpis, initial_wip
from twin.sampler import sample_snapshots
from twin.scenario import Scenario, ScenarioError, apply_scenario
from twin.schema import Line
from twin.simulate import SimulationResult, replication_seeds
from twin.snapshot import LineSnapshot

__all__ = ["Delta", "WhatIfResult", "compare", "paired_delta", "starts_from"]

BASELINE = "baseline"


@dataclass(frozen=True)
class Delta:
    """A scenario's difference to the baseline in one figure: the mean over replications and its 95 % intervals."""

    mean: float
    ci95: float
    """Half-width of the paired Student-t interval (replication i of both runs with the same random numbers)."""
    ci95_unpaired: float
    """Half-width of the interval the same runs would give if they had not been paired (Welch)."""

    @property
    def significant(self) -> bool:
        """The paired interval excludes zero."""
        return abs(self.mean) > self.ci95

    def to_dict(self) -> dict[str, float]:
        """As JSON-ready data."""
        return {"mean": self.mean, "ci95": self.ci95, "ci95_unpaired": self.ci95_unpaired}


def paired_delta(scenario: Sequence[float], baseline: Sequence[float]) -> Delta:
    """The mean of the per-replication differences ``scenario[i] - baseline[i]`` with its paired and unpaired 95 %
    half-widths (0 with one replication; NaN figures are left out pairwise)."""
    pairs = [(s, b) for s, b in zip(scenario, baseline, strict=True) if not (math.isnan(s) or math.isnan(b))]
    if not pairs:
        return Delta(math.nan, math.nan, math.nan)
    s = np.array([p[0] for p in pairs], dtype=float)
    b = np.array([p[1] for p in pairs], dtype=float)
    d = s - b
    n = len(d)
    if n < 2:
        return Delta(float(d.mean()), 0.0, 0.0)
    t = float(stats.t.ppf(0.975, n - 1))
    paired = t * float(d.std(ddof=1)) / math.sqrt(n)
    vs, vb = float(s.var(ddof=1)) / n, float(b.var(ddof=1)) / n
    se = math.sqrt(vs + vb)
    if se > 0:
        dof = (vs + vb) ** 2 / ((vs * vs) / (n - 1) + (vb * vb) / (n - 1)) if vs > 0 and vb > 0 else n - 1
        unpaired = float(stats.t.ppf(0.975, dof)) * se
    else:
        unpaired = 0.0
    return Delta(float(d.mean()), paired, unpaired)


@dataclass(frozen=True)
class _Variant:
    name: str
    line: Line
    outages: tuple[tuple[str, float, float, str], ...]


def _run(variant: _Variant, hours: float, warmup: float, seed: tuple[int, ...], start: LineSnapshot | None) -> RunKpis:
    engine = Engine(variant.line, seed, start, outages=variant.outages)
    t0 = engine.start_time
    reducer = KpiReducer(variant.line, t0 + warmup, t0 + warmup + hours, begin_h=t0, wip0=initial_wip(start))
    reducer.seed_buffers(start)
    reducer.attach(engine)
    engine.run(t0 + warmup + hours)
    return reducer.result()


_Replication = tuple[tuple[int, ...], LineSnapshot | None]
"""A replication's seed and starting state (None: from empty, warmed up)."""

CHUNK = 5
"""The most replications in one executor task: a task's lines are sent and unpickled once for all of them (and a Dask
task costs its scheduler and worker some milliseconds), while a what-if of 100 keeps 20 tasks to spread."""


def _chunk_size(replications: int) -> int:
    """Replications per executor task: up to :data:`CHUNK`, keeping at least 20 tasks when there are that many."""
    return max(1, min(CHUNK, replications // 20))


def _replicate(job: tuple[list[_Variant], float, float, list[_Replication]]) -> list[list[RunKpis]]:
    """Replications of every variant, each with its seed and starting state (a task for any executor): per
    replication, the runs of every variant in order."""
    variants, hours, warmup, replications = job
    # As in twin.forecast: the cyclic garbage collector would walk what lives already (the job's lines and snapshots,
    # in this process the caller's heap) again and again while an engine allocates; so that is frozen, collection is
    # off for the runs, and one collection after each run frees its engine (reference cycles) walking only it.
    # About a tenth of a replication of the reference line; the runs' results do not depend on it.
    collecting = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        out = []
        for seed, start in replications:
            runs = []
            for v in variants:
                runs.append(_run(v, hours, warmup, seed, start))
                gc.collect()
            out.append(runs)
        return out
    finally:
        gc.unfreeze()
        if collecting:
            gc.enable()


def _figures(r: RunKpis, line: Line) -> dict[str, float]:
    """The figures a what-if compares, flat: line figures and per station ``<station>.<figure>``."""
    out = {
        "throughput_per_hour": r.throughput_per_hour,
        "good": float(r.good),
        "scrap_rate": r.scrap_rate,
        "wip_mean": r.wip_mean,
        "lead_time_mean_h": r.lead_time_mean_h,
    }
    span = r.end_h - r.start_h
    for spec in line.stations:
        st = r.stations[spec.id]
        units = spec.machines if spec.kind == "process" else 1
        out[f"{spec.id}.down_h"] = st.state_fractions.get("down", 0.0) * units * span
        out[f"{spec.id}.oee"] = st.oee
        out[f"{spec.id}.availability"] = st.availability
        out[f"{spec.id}.throughput_per_hour"] = st.throughput_per_hour
    return out


@dataclass
class WhatIfResult:
    """The baseline's and each scenario's replicated KPIs, and each scenario's paired differences."""

    line: Line
    hours: float
    warmup: float
    seed: int
    start: str
    """``steady_state`` or ``snapshot`` (the live plant's sampled state)."""
    runs: dict[str, list[RunKpis]]
    scenarios: dict[str, Scenario]
    lines: dict[str, Line]
    """Each variant's line (the baseline's is ``line``)."""
    parameters: str = "line-file"
    deltas: dict[str, dict[str, Delta]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        base = [_figures(r, self.line) for r in self.runs[BASELINE]]
        for name in self.scenarios:
            figs = [_figures(r, self.line) for r in self.runs[name]]
            self.deltas[name] = {k: paired_delta([f[k] for f in figs], [b[k] for b in base]) for k in base[0]}

    def kpis(self, name: str) -> dict[str, Any]:
        """The simulate JSON of one variant (``baseline`` or a scenario's name)."""
        config = self.lines[name].config_hash()
        return SimulationResult(self.line.name, config, self.seed, self.hours, self.warmup, self.runs[name]).to_dict()

    def bottleneck_votes(self, name: str) -> dict[str, int]:
        """In how many replications each station was the bottleneck."""
        votes: dict[str, int] = {}
        for r in self.runs[name]:
            votes[r.bottleneck] = votes.get(r.bottleneck, 0) + 1
        return votes

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data: ``baseline`` (the simulate JSON's KPIs), ``scenarios.<name>`` with ``kpis``, ``delta``
        (line figures, and per station ``down_h``, ``oee``, ``availability``, ``throughput_per_hour``, each
        ``{mean, ci95, ci95_unpaired}``), ``bottleneck_votes`` and ``scenario_hash``."""
        out: dict[str, Any] = {
            "line": self.line.name,
            "config_hash": self.line.config_hash(),
            "parameters": self.parameters,
            "start": self.start,
            "hours": self.hours,
            "warmup": self.warmup,
            "replications": len(self.runs[BASELINE]),
            "seed": self.seed,
            "baseline": self.kpis(BASELINE),
            "scenarios": {},
        }
        for name, scenario in self.scenarios.items():
            line_delta: dict[str, Any] = {}
            stations: dict[str, dict[str, Any]] = {}
            for key, d in self.deltas[name].items():
                if "." in key:
                    sid, fig = key.split(".", 1)
                    stations.setdefault(sid, {})[fig] = d.to_dict()
                else:
                    line_delta[key] = d.to_dict()
            out["scenarios"][name] = {
                "scenario_hash": scenario.scenario_hash(),
                "description": scenario.description,
                "kpis": self.kpis(name),
                "delta": {**line_delta, "stations": stations},
                "bottleneck_votes": self.bottleneck_votes(name),
            }
        return out


def starts_from(line: Line, knowledge: LineKnowledge, replications: int, seed: int, hours: float) -> list[LineSnapshot]:
    """One starting state per replication drawn from what the live plant's telemetry says (``knowledge``), as the
    forecasts draw them (``twin.sampler``), for a what-if "from now" of ``hours``; the same seed draws the same
    states."""
    rng = named_stream(seed, "whatif/starts")
    return [s.snapshot for s in sample_snapshots(line, knowledge, rng, replications, horizon_h=hours)]


def compare(
    line: Line,
    scenarios: Iterable[Scenario],
    hours: float,
    *,
    warmup: float = 0.0,
    replications: int = 30,
    seed: int = 0,
    starts: Sequence[LineSnapshot] | None = None,
    executor: Executor | None = None,
    progress: Callable[[int, int], None] | None = None,
    parameters: str = "line-file",
    source: Callable[[Scenario], str] | None = None,
) -> WhatIfResult:
    """Run ``scenarios`` against ``line`` in pairs (module docstring). ``starts``: one starting snapshot per
    replication (the live plant's sampled states; no warm-up then), else steady state after ``warmup``.
    ``progress(done, total)`` is called as replications finish. Raises :class:`ScenarioError` for a scenario that
    does not fit the line (or the plant's state), naming the scenario's file (``source``) and field."""
    scenarios = list(scenarios)
    if hours <= 0 or not math.isfinite(hours):
        raise ValueError(f"hours must be a positive number, got {hours}")
    if warmup < 0 or not math.isfinite(warmup):
        raise ValueError(f"warmup cannot be negative, got {warmup}")
    if replications < 2:
        raise ValueError(f"a paired interval needs at least 2 replications, got {replications}")
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names) or BASELINE in names:
        raise ValueError(f"scenario names must differ from each other and from {BASELINE!r}: {names}")
    if starts is not None:
        if len(starts) != replications:
            raise ValueError(f"one starting snapshot per replication: {len(starts)} for {replications}")
        warmup = 0.0
    window_start = (starts[0].time_h if starts else 0.0) + warmup
    variants = [_Variant(BASELINE, line, ())]
    for sc in scenarios:
        where = source(sc) if source is not None else sc.name
        applied = apply_scenario(sc, line, window_start, hours, where)
        if starts is not None:
            try:
                starts[0].check(applied.line)
            except SnapshotError as exc:
                raise ScenarioError(where, [("changes", f"the scenario's line does not fit the plant's state: {exc}")]) from None
        variants.append(_Variant(sc.name, applied.line, applied.outages))
    seeds = replication_seeds(seed, replications)
    pairs: list[_Replication] = [(s, starts[i] if starts is not None else None) for i, s in enumerate(seeds)]
    results: list[list[RunKpis] | None] = [None] * replications
    done = 0
    if executor is None:
        for i, pair in enumerate(pairs):
            (results[i],) = _replicate((variants, hours, warmup, [pair]))
            done += 1
            if progress is not None:
                progress(done, replications)
    else:
        size = _chunk_size(replications)
        chunks = [range(i, min(i + size, replications)) for i in range(0, replications, size)]
        futures = {executor.submit(_replicate, (variants, hours, warmup, [pairs[i] for i in c])): c for c in chunks}
        try:
            for fut in as_completed(futures):
                chunk = futures[fut]
                for i, runs_i in zip(chunk, fut.result(), strict=True):
                    results[i] = runs_i
                done += len(chunk)
                if progress is not None:
                    progress(done, replications)
        except BaseException:
            # stopped (the progress callback raised, Ctrl-C, a task failed): the tasks not started are not run
            for fut in futures:
                fut.cancel()
            raise
    runs: dict[str, list[RunKpis]] = {v.name: [] for v in variants}
    for per in results:
        assert per is not None
        for v, r in zip(variants, per, strict=True):
            runs[v.name].append(r)
    return WhatIfResult(
        line=line,
        hours=hours,
        warmup=warmup,
        seed=seed,
        start="snapshot" if starts is not None else "steady_state",
        runs=runs,
        scenarios={s.name: s for s in scenarios},
        lines={v.name: v.line for v in variants},
        parameters=parameters,
    )
