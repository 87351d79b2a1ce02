"""Longer statistical runs: tighter intervals on the same exact results (``pytest -m slow``)."""

from __future__ import annotations

import pytest

from tests.conftest import make_line
from tests.statistical.exact import Machine, solve_line
from tests.statistical.test_exact_results import assert_in_ci, exp, mm1k_throughput
from twin.simulate import simulate

pytestmark = pytest.mark.slow

R = 30


@pytest.mark.parametrize(("means", "caps"), [([1.0, 0.9, 1.1], [1, 1]), ([0.8, 1.0, 0.9], [0, 2]), ([1.0, 1.0], [4])])
def test_markov_lines_over_long_horizons(means: list[float], caps: list[int]) -> None:
    stations = [{"id": f"S{i}", "cycle_time": exp(m)} for i, m in enumerate(means)]
    for st, cap in zip(stations, caps, strict=False):
        st["buffer_after"] = cap
    reps = simulate(make_line(*stations), hours=20000, warmup=100, replications=R, seed=21, workers=2).replications
    exact = solve_line([Machine(m) for m in means], caps).throughput
    assert_in_ci([r.throughput_per_hour for r in reps], exact, "throughput")


@pytest.mark.parametrize("buffer", [0, 2, 6])
def test_mm1k_over_long_horizons(buffer: int) -> None:
    line = make_line({"id": "A", "cycle_time": exp(1.0), "buffer_after": buffer}, {"id": "B", "cycle_time": exp(0.9)})
    reps = simulate(line, hours=20000, warmup=100, replications=R, seed=22, workers=2).replications
    assert_in_ci([r.throughput_per_hour for r in reps], mm1k_throughput(1.0, 1 / 0.9, buffer + 2), "throughput")
