"""The simulator against results derived exactly: renewal-reward, M/M/1/K, M/M/1 (with and without
breakdowns), the Markov chains of small lines, and the binomial law of scrap.

Every statistical assertion runs R independent replications with a fixed seed and requires the exact value
inside the confidence interval of the replication mean, ``t((1 + LEVEL)/2, R−1) · s / √R`` (scrap counts:
the exact Clopper-Pearson interval), at LEVEL = 99.9 % per assertion. The default run makes about 70
assertions, so this keeps the chance that a correct simulator fails any of them after a change of random
streams near 1 − 0.999^70 ≈ 7 % (at 99 % per assertion it would be about 50 %). The tolerance comes from the
statistics alone: a biased simulator still fails. Horizons are long against the lines' relaxation times, so
the start-up bias is small against these intervals; warm-ups remove most of it.

If one fails, first find out whether the simulator or the derivation is wrong (run the ``slow`` variant, or
a longer run with another seed); never widen the interval to make it pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from scipy import stats

from tests.conftest import make_line
from tests.statistical.exact import Basis, Machine, mg1_breakdowns_wip, mm1_breakdowns, mm1k, solve_line
from twin.kpis import RunKpis
from twin.schema import Line
from twin.simulate import simulate

R = 12
LEVEL = 0.999
SEED = 20240611


def exp(mean: float) -> dict[str, Any]:
    return {"dist": "exponential", "mean": mean}


def runs(line: Line, hours: float, warmup: float = 0.0, replications: int = R, seed: int = SEED) -> list[RunKpis]:
    return simulate(line, hours=hours, warmup=warmup, replications=replications, seed=seed).replications


def assert_in_ci(samples: Sequence[float], exact: float, what: str) -> None:
    """``exact`` lies in the LEVEL t confidence interval of the mean of the replications' ``samples``."""
    arr = np.asarray(samples, dtype=float)
    assert not np.isnan(arr).any(), f"{what}: a replication gave NaN"
    half = float(stats.t.ppf((1 + LEVEL) / 2, len(arr) - 1)) * float(arr.std(ddof=1)) / math.sqrt(len(arr))
    mean = float(arr.mean())
    assert abs(mean - exact) <= half, f"{what}: simulated {mean:.5f} ± {half:.5f} ({LEVEL:.1%} CI), exact {exact:.5f}"


def assert_binomial(successes: int, trials: int, p: float, what: str) -> None:
    """``p`` lies in the exact (Clopper-Pearson) LEVEL confidence interval of ``successes`` in ``trials``."""
    ci = stats.binomtest(successes, trials).proportion_ci(confidence_level=LEVEL, method="exact")
    assert ci.low <= p <= ci.high, (
        f"{what}: {successes}/{trials} = {successes / trials:.5f}, {LEVEL:.1%} CI [{ci.low:.5f}, {ci.high:.5f}], exact {p:.5f}"
    )


def failure(mttf: float, mttr: float, basis: str) -> dict[str, Any]:
    return {"name": "f", "ttf": exp(mttf), "ttr": exp(mttr), "basis": basis}


# -- the exact results themselves (no simulation) -------------------------------------------------------------


@pytest.mark.parametrize(("mu_mean", "buffer"), [(0.8, 0), (0.8, 3), (1.0, 1), (1.3, 2)])
def test_line_chain_reproduces_mm1k(mu_mean: float, buffer: int) -> None:
    """The general line chain, for two exponential stations, is the M/M/1/K queue with K = b + 2."""
    sol = solve_line([Machine(1.0), Machine(mu_mean)], [buffer])
    p = mm1k(1.0, 1.0 / mu_mean, buffer + 2)
    assert sol.throughput == pytest.approx(1.0 - p[-1], rel=1e-9)
    assert sol.fractions[0]["blocked"] == pytest.approx(p[-1], rel=1e-9)
    assert sol.fractions[1]["starved"] == pytest.approx(p[0], rel=1e-9)
    assert sol.buffer_levels[0] == pytest.approx(mm1k_buffer_level(p), rel=1e-9, abs=1e-12)


def test_breakdown_chain_reproduces_the_mg1_formula_and_mm1() -> None:
    """The truncated chain of M/M/1 with operating-basis breakdowns gives the Pollaczek-Khinchine value, and
    without failures the M/M/1 value ρ/(1−ρ); the calendar basis is down MTTR/(MTTF+MTTR) of the time."""
    assert mm1_breakdowns(0.5, 1.0, 9.0, 1.0, "operating").wip == pytest.approx(mg1_breakdowns_wip(0.5, 1.0, 9.0, 1.0), rel=1e-8)
    assert mm1_breakdowns(0.6, 1.0, 1e12, 1.0, "calendar").wip == pytest.approx(0.6 / 0.4, rel=1e-8)
    assert mm1_breakdowns(0.5, 1.0, 9.0, 1.0, "calendar").down == pytest.approx(0.1, rel=1e-9)


@pytest.mark.parametrize("basis", ["operating", "calendar"])
def test_line_chain_downtime_balance(basis: Basis) -> None:
    """In the line chain, downtime obeys its renewal-reward balance: on the calendar basis a machine is down
    MTTR/(MTTF+MTTR) of the time whatever it does; on the operating basis MTTR/MTTF per working hour."""
    machines = [Machine(1.0, 10.0, 2.0, basis), Machine(0.9, 8.0, 1.0, basis), Machine(1.1, 20.0, 3.0, basis)]
    sol = solve_line(machines, [1, 0])
    for m, frac in zip(machines, sol.fractions, strict=True):
        assert m.mttf is not None
        assert m.mttr is not None
        expected = m.mttr / (m.mttf + m.mttr) if basis == "calendar" else frac["working"] * m.mttr / m.mttf
        assert frac["down"] == pytest.approx(expected, rel=1e-9)
        assert sum(frac.values()) == pytest.approx(1.0, rel=1e-12)


# -- 1. one machine with failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cycle", "ttf", "ttr", "basis"),
    [
        (1.0, exp(9.0), exp(1.0), "operating"),
        (1.0, exp(9.0), exp(1.0), "calendar"),
        (exp(0.5), exp(4.0), exp(0.8), "operating"),
        (exp(0.5), exp(4.0), exp(0.8), "calendar"),
        (0.25, {"dist": "weibull", "shape": 2.0, "mean": 6.0}, {"dist": "lognormal", "mean": 1.5, "cv": 0.5}, "operating"),
    ],
)
def test_single_machine_with_failures(cycle: Any, ttf: dict[str, Any], ttr: dict[str, Any], basis: str) -> None:
    """A single machine, never starved (unlimited supply) nor blocked (it ships), is always working while up.

    Operating basis: the failure clock runs only while working, which here is all the time it is up, so up
    periods last TTF_k (drawn afresh after each repair) and alternate with repairs TTR_k: an alternating
    renewal process, up a fraction A = MTTF/(MTTF+MTTR) of the time (renewal-reward; only the means matter,
    whatever the distributions). Work is done at rate 1 while up and a unit needs c on average (the
    interrupted unit resumes its remaining work), so throughput = A/c. Equivalently, c operating hours per
    unit carry c/MTTF failures of MTTR each: throughput = 1/(c + c·MTTR/MTTF), the same number.

    Calendar basis: the engine draws the next time to failure when a repair ends and counts it in calendar
    time; as the machine is working whenever it is up, that is the same alternating renewal process, and
    the same formula holds exactly here. (The bases differ once the machine idles: see the M/M/1 test below.)
    """
    line = make_line({"id": "M", "cycle_time": cycle, "failures": [{"name": "f", "ttf": ttf, "ttr": ttr, "basis": basis}]})
    spec = line.stations[0]
    assert spec.cycle_time is not None
    c = spec.cycle_time.mean_value
    mttf, mttr = spec.failures[0].ttf.mean_value, spec.failures[0].ttr.mean_value
    reps = runs(line, hours=5000)
    assert_in_ci([r.throughput_per_hour for r in reps], 1.0 / (c + c * mttr / mttf), "throughput")
    assert_in_ci([r.stations["M"].availability for r in reps], mttf / (mttf + mttr), "availability")


@pytest.mark.parametrize(
    ("basis", "lam", "hours"),
    [
        ("operating", 0.5, 20000),
        ("calendar", 0.5, 20000),
        pytest.param("operating", 0.75, 200000, marks=pytest.mark.slow),
        pytest.param("calendar", 0.75, 200000, marks=pytest.mark.slow),
    ],
)
def test_queue_with_breakdowns(basis: Basis, lam: float, hours: float) -> None:
    """Poisson arrivals (rate λ) at one Exp(μ = 1/h) machine with Exp(MTTF = 9 h) failures and
    Exp(MTTR = 1 h) repairs; here the machine idles, and the two bases differ.

    - throughput = λ (stable: λ·E[T] < 1); working fraction = λ/μ (each unit needs Exp(μ) of work).
    - down fraction: operating basis, failures come at rate 1/MTTF per working hour and last MTTR, so
      (λ/μ)·MTTR/MTTF; calendar basis, up periods of mean MTTF in calendar time alternate with repairs
      whatever the machine does, so MTTR/(MTTF+MTTR).
    - mean WIP: operating basis, exactly M/G/1 (Pollaczek-Khinchine, see ``mg1_breakdowns_wip``), and
      the Markov chain of (units, up/down) agrees; calendar basis, that chain.
    """
    mu, mttf, mttr = 1.0, 9.0, 1.0
    line = make_line(
        {"id": "M", "cycle_time": exp(1.0 / mu), "failures": [failure(mttf, mttr, basis)]},
        arrival={"interarrival": exp(1.0 / lam), "lot": 1},
    )
    exact = mm1_breakdowns(lam, mu, mttf, mttr, basis, nmax=400 if lam < 0.6 else 1200)
    down = lam / mu * mttr / mttf if basis == "operating" else mttr / (mttf + mttr)
    assert exact.down == pytest.approx(down, rel=1e-9)
    if basis == "operating":
        assert exact.wip == pytest.approx(mg1_breakdowns_wip(lam, mu, mttf, mttr), rel=1e-8)
    reps = runs(line, hours=hours, warmup=200)
    assert_in_ci([r.throughput_per_hour for r in reps], lam, "throughput")
    assert_in_ci([r.stations["M"].state_fractions["working"] for r in reps], lam / mu, "working fraction")
    assert_in_ci([r.stations["M"].state_fractions["down"] for r in reps], down, "down fraction")
    assert_in_ci([r.wip_mean for r in reps], exact.wip, "mean WIP")


# -- 2. two stations = M/M/1/K ----------------------------------------------------------------------------------


def mm1k_throughput(lam: float, mu: float, k: int) -> float:
    """λ(1 − P_K) of M/M/1/K."""
    return lam * (1.0 - mm1k(lam, mu, k)[-1])


def mm1k_buffer_level(p: list[float]) -> float:
    """Mean buffer level for N ~ M/M/1/K (K = b + 2): the buffer holds N − 1 units for 1 ≤ N ≤ b + 1 and b
    (full, with the first machine blocked) at N = b + 2."""
    b = len(p) - 3
    return sum((n - 1) * p[n] for n in range(1, b + 2)) + b * p[b + 2]


@pytest.mark.parametrize(
    ("buffer", "mu_mean", "hours"),
    [
        (0, 0.8, 4000),
        (1, 0.8, 4000),
        (3, 0.8, 4000),
        (0, 1.0, 4000),
        (1, 1.0, 4000),
        (3, 1.0, 4000),
        pytest.param(10, 1.0, 40000, marks=pytest.mark.slow),
        pytest.param(6, 1.25, 40000, marks=pytest.mark.slow),
    ],
)
def test_two_stations_are_an_mm1k_queue(buffer: int, mu_mean: float, hours: float) -> None:
    """A never-starved Exp(λ) first station feeding a buffer of b and an Exp(μ) second station, blocking
    after service. N = units in the buffer + in the second machine + 1 if the first is blocked moves up by 1
    at rate λ while N < b + 2 (the first machine works unless blocked, i.e. unless N = b + 2) and down by 1 at
    rate μ while N > 0 (the second machine works unless starved, i.e. unless N = 0): M/M/1/K with K = b + 2.
    So throughput = λ(1 − P_K) = μ(1 − P_0), the first machine is blocked P_K of the time, and the mean
    buffer level follows from P (``mm1k_buffer_level``). ρ = 1 uses the limit P_n = 1/(K+1)."""
    lam, mu = 1.0, 1.0 / mu_mean
    line = make_line({"id": "A", "cycle_time": exp(1.0 / lam), "buffer_after": buffer}, {"id": "B", "cycle_time": exp(mu_mean)})
    p = mm1k(lam, mu, buffer + 2)
    reps = runs(line, hours=hours, warmup=50)
    assert_in_ci([r.throughput_per_hour for r in reps], mm1k_throughput(lam, mu, buffer + 2), "throughput")
    assert_in_ci([r.stations["A"].state_fractions["blocked"] for r in reps], p[-1], "blocked fraction of A")
    assert_in_ci([r.buffers["A"].mean_level for r in reps], mm1k_buffer_level(p), "mean buffer level")


# -- 3. M/M/1 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lam", "hours", "warmup"),
    [(0.5, 10000, 100), pytest.param(0.8, 100000, 500, marks=pytest.mark.slow)],
)
def test_mm1_queue_with_poisson_arrivals(lam: float, hours: float, warmup: float) -> None:
    """Poisson arrivals (rate λ, lots of 1) queue without limit for one Exp(μ = 1/h) machine: M/M/1, so
    output = λ, utilisation ρ = λ/μ, mean WIP (queue and machine) L = ρ/(1−ρ) and, by Little's law, mean
    lead time W = L/λ = 1/(μ−λ)."""
    mu = 1.0
    rho = lam / mu
    line = make_line({"id": "M", "cycle_time": exp(1.0 / mu)}, arrival={"interarrival": exp(1.0 / lam), "lot": 1})
    reps = runs(line, hours=hours, warmup=warmup)
    assert_in_ci([r.throughput_per_hour for r in reps], lam, "throughput")
    assert_in_ci([r.stations["M"].state_fractions["working"] for r in reps], rho, "utilisation")
    assert_in_ci([r.wip_mean for r in reps], rho / (1 - rho), "mean WIP")
    assert_in_ci([r.lead_time_mean_h for r in reps], 1.0 / (mu - lam), "lead time")


# -- 4. small lines against their Markov chain ---------------------------------------------------------------------

M = Machine
LINES = [
    pytest.param([M(1.0), M(1.0)], [0], 5000, id="2st-b0"),
    pytest.param([M(1.0), M(1.2)], [2], 5000, id="2st-b2"),
    pytest.param([M(1.0), M(0.9), M(1.1)], [1, 1], 5000, id="3st-b1-b1"),
    pytest.param([M(0.8), M(1.0), M(0.9)], [0, 2], 5000, id="3st-b0-b2"),
    pytest.param([M(1.0), M(1.0), M(1.0)], [2, 0], 5000, id="3st-b2-b0"),
    pytest.param([M(1.0, 10.0, 2.0), M(0.9)], [1], 10000, id="2st-b1-operating-failures"),
    pytest.param([M(1.0), M(0.9, 8.0, 1.0, "calendar"), M(1.1)], [1, 0], 10000, id="3st-b1-b0-calendar-failures"),
    pytest.param(
        [M(0.8, 10.0, 2.0, "calendar"), M(1.0, 12.0, 1.5, "operating"), M(0.9, 6.0, 1.0, "calendar")],
        [0, 2],
        10000,
        id="3st-b0-b2-mixed-failures",
    ),
    pytest.param(
        [M(1.0, 10.0, 2.0, "calendar"), M(0.9, 8.0, 1.0, "calendar"), M(1.1, 20.0, 3.0, "operating"), M(1.0)],
        [1, 0, 2],
        50000,
        id="4st-mixed-failures",
        marks=pytest.mark.slow,
    ),
]


def line_of(machines: list[Machine], caps: list[int]) -> Line:
    """The line of ``machines`` (stations S0, S1, ...) with buffers of ``caps`` between them, as the chain has them."""
    stations: list[dict[str, Any]] = []
    for i, m in enumerate(machines):
        st: dict[str, Any] = {"id": f"S{i}", "cycle_time": exp(m.cycle)}
        if m.mttf is not None and m.mttr is not None:
            st["failures"] = [failure(m.mttf, m.mttr, m.basis)]
        if i < len(caps):
            st["buffer_after"] = caps[i]
        stations.append(st)
    return make_line(*stations)


@pytest.mark.parametrize(("machines", "caps", "hours"), LINES)
def test_small_lines_match_their_markov_chain(machines: list[Machine], caps: list[int], hours: float) -> None:
    """Lines of single exponential machines, some with exponential failures, and small buffers (0 = direct
    hand-off): every duration is exponential, so (each machine's status, each buffer's level) is a
    continuous-time Markov chain. Statuses: working, blocked, starved, and down with a unit in work; on the
    calendar basis also down while blocked, down while starved (still taking the next unit) and down empty
    (its blocked unit was taken during the repair). Its stationary distribution (π Q = 0, Σ π = 1) gives
    the exact throughput (π-weighted completion rate of the last machine), mean buffer levels and the
    fraction of time each machine spends in each state (``exact.solve_line``)."""
    line = line_of(machines, caps)
    exact = solve_line(machines, caps)
    reps = runs(line, hours=hours, warmup=100)
    assert_in_ci([r.throughput_per_hour for r in reps], exact.throughput, "throughput")
    for k, level in enumerate(exact.buffer_levels):
        if caps[k] > 0:
            assert_in_ci([r.buffers[f"S{k}"].mean_level for r in reps], level, f"mean level of buffer S{k}")
        else:
            assert all(r.buffers[f"S{k}"].mean_level == 0.0 for r in reps), f"a direct hand-off S{k} never holds a unit"
    for i, m in enumerate(machines):
        if m.mttf is None:
            continue
        # where failures interact with blocking and starving: the states of the machines that fail
        for state in ("blocked", "starved", "down"):
            if exact.fractions[i][state] > 0:
                assert_in_ci(
                    [r.stations[f"S{i}"].state_fractions[state] for r in reps],
                    exact.fractions[i][state],
                    f"{state} fraction of S{i}",
                )


# -- 5. yield through scrap ----------------------------------------------------------------------------------------


def test_yield_through_scrap() -> None:
    """Each unit is scrapped at station i with probability p_i, independently of everything else, so it
    ships with probability Π(1 − p_i): out of n units, the good ones are Binomial(n, Π(1 − p_i)), and the
    scrapped ones at station i Binomial(n_i, p_i) given the n_i units it completes.

    Constant cycles of 1, 0.5 and 0.25 h (exact in binary floating point) with unlimited buffers: the
    first station loads a unit every hour, on the hour; the unit loaded at t leaves as scrap at t + 1,
    t + 1.5 or t + 1.75, or ships at t + 1.75. A window starting at 2.875 h and lasting 5,000 h holds all
    the exits of the units loaded at 2, 3, ..., 5001 h and none of any other, and starts 5,000 units: good
    output per started unit and the scrap rate are exactly binomial proportions out of 5,000 units per
    replication (the counts are checked first)."""
    scrap = [0.05, 0.1, 0.2]
    line = make_line(
        {"id": "A", "cycle_time": 1.0, "scrap": scrap[0]},
        {"id": "B", "cycle_time": 0.5, "scrap": scrap[1]},
        {"id": "C", "cycle_time": 0.25, "scrap": scrap[2]},
    )
    n = 5000
    reps = runs(line, hours=n, warmup=2.875)
    for r in reps:
        assert r.started == n, "units started in the window"
        assert r.good + r.scrapped == n, "units leaving in the window"
    survive = math.prod(1 - p for p in scrap)
    good = sum(r.good for r in reps)
    assert_binomial(good, n * len(reps), survive, "good output per started unit")
    scrapped = round(sum(r.scrap_rate * (r.good + r.scrapped) for r in reps))
    assert_binomial(scrapped, n * len(reps), 1 - survive, "scrap rate")
    for sid, p in zip("ABC", scrap, strict=True):
        bad = sum(r.stations[sid].scrapped for r in reps)
        done = sum(r.stations[sid].good + r.stations[sid].scrapped for r in reps)
        assert_binomial(bad, done, p, f"scrap probability at {sid}")
