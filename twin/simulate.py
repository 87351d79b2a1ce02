"""Simulate a line: independent replications, a discarded warm-up, KPIs with 95 % confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.engine import Engine
from twin.kpis import KpiReducer, RunKpis, initial_wip
from twin.schema import Line
from twin.snapshot import LineSnapshot

__all__ = ["SimulationResult", "replication_seeds", "run_once", "simulate"]

# Two-sided 95 % Student t quantiles; beyond the table the normal quantile is within 0.5 %.
_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def _t95(dof: int) -> float:
    if dof in _T95:
        return _T95[dof]
    if dof > 120:
        return 1.960
    # conservative: the quantile of the next smaller tabulated degrees of freedom
    return _T95[max(k for k in _T95 if k < dof)]


def _mean_ci(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    n = len(arr)
    mean = float(arr.mean())
    if n < 2:
        return {"mean": mean, "ci95": 0.0}
    half = _t95(n - 1) * float(arr.std(ddof=1)) / math.sqrt(n)
    return {"mean": mean, "ci95": half}


def replication_seeds(seed: int, replications: int) -> list[tuple[int, int]]:
    """The entropy of each replication: independent streams derived from one seed."""
    return [(seed, i) for i in range(replications)]


def run_once(
    line: Line,
    hours: float,
    seed: int | tuple[int, ...] = 0,
    warmup: float = 0.0,
    start: LineSnapshot | None = None,
) -> RunKpis:
    """One replication: run ``warmup + hours`` from ``start`` (or empty) and return the KPIs of the last ``hours``."""
    if hours <= 0:
        raise ValueError(f"hours must be positive, got {hours}")
    if warmup < 0:
        raise ValueError(f"warmup cannot be negative, got {warmup}")
    engine = Engine(line, seed, start)
    t0 = engine.start_time
    reducer = KpiReducer(line, t0 + warmup, t0 + warmup + hours, begin_h=t0, wip0=initial_wip(start))
    reducer.seed_buffers(start)
    reducer.attach(engine)
    engine.run(t0 + warmup + hours)
    return reducer.result()


# Set once per worker process by the pool's initializer, so a large starting snapshot is sent to each
# worker once rather than with every replication.
_WORKER_JOB: tuple[Line, float, float, LineSnapshot | None] | None = None


def _init_worker(line: Line, hours: float, warmup: float, start: LineSnapshot | None) -> None:
    global _WORKER_JOB
    _WORKER_JOB = (line, hours, warmup, start)


def _run_seed(seed: tuple[int, int]) -> RunKpis:
    assert _WORKER_JOB is not None, "replication worker started without its job"
    line, hours, warmup, start = _WORKER_JOB
    return run_once(line, hours, seed, warmup, start)


@dataclass(frozen=True)
class SimulationResult:
    """Replicated KPIs of a line, with what is needed to reproduce them."""

    line: str
    config_hash: str
    seed: int
    hours: float
    warmup: float
    replications: list[RunKpis]

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready data (means across replications, throughput with its 95 % CI half-width)."""
        reps = self.replications
        first = reps[0]
        stations: dict[str, Any] = {}
        for sid in first.stations:
            per = [r.stations[sid] for r in reps]
            fractions = {k: float(np.mean([p.state_fractions.get(k, 0.0) for p in per])) for k in per[0].state_fractions}
            stations[sid] = {
                "state_fractions": fractions,
                "throughput_per_hour": float(np.mean([p.throughput_per_hour for p in per])),
                "scrapped": float(np.mean([p.scrapped for p in per])),
                "availability": float(np.mean([p.availability for p in per])),
                "performance": float(np.mean([p.performance for p in per])),
                "quality": float(np.mean([p.quality for p in per])),
                "oee": float(np.mean([p.oee for p in per])),
                "active_period_mean_h": float(np.mean([p.active_period_mean_h for p in per])),
            }
        buffers = {
            sid: {"mean_level": float(np.mean([r.buffers[sid].mean_level for r in reps])), "capacity": b.capacity}
            for sid, b in first.buffers.items()
        }
        votes: dict[str, int] = {}
        for r in reps:
            votes[r.bottleneck] = votes.get(r.bottleneck, 0) + 1
        lead = [r.lead_time_mean_h for r in reps if not math.isnan(r.lead_time_mean_h)]
        return {
            "line": self.line,
            "config_hash": self.config_hash,
            "seed": self.seed,
            "hours": self.hours,
            "warmup": self.warmup,
            "replications": len(reps),
            "throughput_per_hour": _mean_ci([r.throughput_per_hour for r in reps]),
            "good": _mean_ci([r.good for r in reps]),
            "scrap_rate": _mean_ci([r.scrap_rate for r in reps])["mean"],
            "wip_mean": _mean_ci([r.wip_mean for r in reps])["mean"],
            "lead_time_mean_h": float(np.mean(lead)) if lead else None,
            "bottleneck": max(votes, key=lambda k: votes[k]),
            "bottleneck_method": "average active period (Roser, Nakano, Tanaka 2001)",
            "bottleneck_votes": votes,
            "stations": stations,
            "buffers": buffers,
        }


def simulate(
    line: Line,
    hours: float,
    warmup: float = 0.0,
    replications: int = 1,
    seed: int = 0,
    start: LineSnapshot | None = None,
    workers: int = 1,
) -> SimulationResult:
    """Run ``replications`` independent replications of ``line`` and collect their KPIs.

    Replication ``i`` uses entropy ``(seed, i)``, so the same seed gives the same result, and two lines
    that differ in one station share every other random stream (common random numbers).
    ``workers > 1`` runs replications in that many processes.
    """
    if replications < 1:
        raise ValueError(f"replications must be at least 1, got {replications}")
    seeds = replication_seeds(seed, replications)
    if workers > 1 and replications > 1:
        workers = min(workers, replications)
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(line, hours, warmup, start)) as pool:
            runs = list(pool.map(_run_seed, seeds, chunksize=max(1, replications // (4 * workers))))
    else:
        runs = [run_once(line, hours, s, warmup, start) for s in seeds]
    return SimulationResult(
        line=line.name, config_hash=line.config_hash(), seed=seed, hours=hours, warmup=warmup, replications=runs
    )
