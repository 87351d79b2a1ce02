"""The simulator against results derived exactly: renewal-reward, M/M/1/K, M/M/1 and Markov chains of small lines.

Each test runs R independent replications with a fixed seed and requires the exact value inside the 99 %
confidence interval of the replication mean, ``t(0.995, R-1) * s / sqrt(R)``: a tolerance from the
statistics, so a biased simulator fails and an unbiased one passes 99 times in 100 per assertion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from scipy import stats

from tests.conftest import make_line
from tests.statistical.markov import solve_line
from twin.schema import Line
from twin.simulate import simulate

R = 12


def exp(mean: float) -> dict[str, object]:
    return {"dist": "exponential", "mean": mean}


def assert_in_ci(samples: Sequence[float], exact: float, what: str) -> None:
    arr = np.asarray(samples, dtype=float)
    half = stats.t.ppf(0.995, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr))
    assert abs(arr.mean() - exact) <= half, f"{what}: simulated {arr.mean():.5f} ± {half:.5f} (99 % CI), exact {exact:.5f}"


def runs(line: Line, hours: float, warmup: float = 0.0, seed: int = 1) -> list:
    return simulate(line, hours=hours, warmup=warmup, replications=R, seed=seed, workers=2).replications


@pytest.mark.parametrize("basis", ["operating", "calendar"])
@pytest.mark.parametrize("cycle", [1.0, exp(1.0)])
def test_single_machine_with_failures(basis: str, cycle: object) -> None:
    """Never starved or blocked, the machine works whenever it is up: up periods Exp(MTTF) and repairs
    Exp(MTTR) alternate (for either basis, since it is always working), so by renewal-reward
    throughput = rate × MTTF / (MTTF + MTTR); the interrupted unit's remaining work changes nothing."""
    mttf, mttr = 9.0, 1.0
    line = make_line(
        {"id": "M", "cycle_time": cycle, "failures": [{"name": "f", "ttf": exp(mttf), "ttr": exp(mttr), "basis": basis}]}
    )
    reps = runs(line, hours=4000)
    assert_in_ci([r.throughput_per_hour for r in reps], 1.0 * mttf / (mttf + mttr), "throughput")
    assert_in_ci([r.stations["M"].availability for r in reps], mttf / (mttf + mttr), "availability")


def mm1k_throughput(lam: float, mu: float, k: int) -> float:
    rho = lam / mu
    p_full = 1.0 / (k + 1) if math.isclose(rho, 1.0) else rho**k * (1 - rho) / (1 - rho ** (k + 1))
    return lam * (1 - p_full)


@pytest.mark.parametrize("buffer", [0, 1, 3])
@pytest.mark.parametrize("mu_mean", [0.8, 1.0])
def test_two_stations_are_an_mm1k_queue(buffer: int, mu_mean: float) -> None:
    """A never-starved exponential first station (rate λ) feeding a buffer of b and an exponential second
    station (rate μ), blocking after service: units in buffer + second machine + the blocked one form a
    birth-death chain on 0..b+2, i.e. M/M/1/K with K = b + 2, so throughput = λ (1 − P_K)."""
    lam, mu = 1.0, 1.0 / mu_mean
    line = make_line({"id": "A", "cycle_time": exp(1.0), "buffer_after": buffer}, {"id": "B", "cycle_time": exp(mu_mean)})
    reps = runs(line, hours=3000, warmup=50)
    assert_in_ci([r.throughput_per_hour for r in reps], mm1k_throughput(lam, mu, buffer + 2), "throughput")


def test_mm1_queue_with_poisson_arrivals() -> None:
    """Poisson arrivals (λ = 0.5) into one exponential machine (μ = 1): L = ρ/(1−ρ) = 1, W = 1/(μ−λ) = 2, output = λ."""
    line = make_line({"id": "M", "cycle_time": exp(1.0)}, arrival={"interarrival": exp(2.0), "lot": 1})
    reps = runs(line, hours=8000, warmup=100)
    assert_in_ci([r.throughput_per_hour for r in reps], 0.5, "throughput")
    assert_in_ci([r.wip_mean for r in reps], 1.0, "mean WIP")
    assert_in_ci([r.lead_time_mean_h for r in reps], 2.0, "lead time")
    assert_in_ci([r.stations["M"].state_fractions["working"] for r in reps], 0.5, "utilisation")


@pytest.mark.parametrize(
    ("means", "caps"),
    [
        ([1.0, 1.0], [0]),
        ([1.0, 1.2], [2]),
        ([1.0, 0.9, 1.1], [1, 1]),
        ([0.8, 1.0, 0.9], [0, 2]),
        ([1.0, 1.0, 1.0], [2, 0]),
    ],
)
def test_small_lines_match_their_markov_chain(means: list[float], caps: list[int]) -> None:
    """Two- and three-station exponential lines with small buffers against the exact stationary distribution."""
    stations = [{"id": f"S{i}", "cycle_time": exp(m)} for i, m in enumerate(means)]
    for st, cap in zip(stations, caps, strict=False):
        st["buffer_after"] = cap
    line = make_line(*stations)
    exact_tp, exact_levels = solve_line(means, caps)
    reps = runs(line, hours=3000, warmup=50)
    assert_in_ci([r.throughput_per_hour for r in reps], exact_tp, "throughput")
    for k, level in enumerate(exact_levels):
        assert_in_ci([r.buffers[f"S{k}"].mean_level for r in reps], level, f"mean level of buffer S{k}")


def test_yield_through_scrap() -> None:
    """Each unit survives station i with probability 1 − p_i, independently: good output per started
    unit = Π(1 − p_i), so the scrap rate is 1 − Π(1 − p_i)."""
    scrap = [0.05, 0.1, 0.2]
    line = make_line(
        {"id": "A", "cycle_time": 1.0, "scrap": scrap[0], "buffer_after": None},
        {"id": "B", "cycle_time": 0.5, "scrap": scrap[1], "buffer_after": None},
        {"id": "C", "cycle_time": 0.4, "scrap": scrap[2]},
    )
    reps = runs(line, hours=5000)
    survive = math.prod(1 - p for p in scrap)
    assert_in_ci([r.good / r.started for r in reps], survive, "good per started unit")
    assert_in_ci([r.scrap_rate for r in reps], 1 - survive, "scrap rate")
