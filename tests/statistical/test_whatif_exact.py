"""Paired what-ifs against exact differences: lines of exponential machines whose steady-state throughput their
Markov chain gives exactly (``exact.solve_line``), changed by a scenario (a bigger buffer, halved repair times, one
more machine's worth of speed). The paired interval of the difference must contain the exact difference, and it
must be clearly narrower than the interval the same runs would give unpaired.

Statistics as in ``test_exact_results``: R replications with a fixed seed, the exact difference inside the t
interval of the mean per-replication difference at 99.9 % per assertion.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.statistical.exact import Machine, solve_line
from tests.statistical.test_exact_results import SEED, assert_in_ci, line_of
from twin.scenario import load_scenario_data
from twin.whatif import BASELINE, compare

R = 12
M = Machine


CASES = [
    pytest.param(
        [M(1.0), M(1.1)],
        [1],
        {"station": "S0", "set": {"buffer_after": 4}},
        [M(1.0), M(1.1)],
        [4],
        id="2st-buffer-1-to-4",
    ),
    pytest.param(
        [M(1.0, 8.0, 2.0), M(0.9)],
        [2],
        {"station": "S0", "scale": {"failures.*.ttr": 0.5}},
        [M(1.0, 8.0, 1.0), M(0.9)],
        [2],
        id="2st-halved-mttr",
    ),
    pytest.param(
        [M(1.0), M(1.2, 10.0, 2.0, "calendar"), M(0.9)],
        [1, 1],
        {"station": "S1", "scale": {"cycle_time": 0.8}},
        [M(1.0), M(0.96, 10.0, 2.0, "calendar"), M(0.9)],
        [1, 1],
        id="3st-faster-middle",
    ),
]


@pytest.mark.parametrize(("before", "caps", "change", "after", "caps_after"), CASES)
def test_the_paired_interval_contains_the_exact_difference(
    before: list[Machine], caps: list[int], change: dict[str, Any], after: list[Machine], caps_after: list[int]
) -> None:
    line = line_of(before, caps)
    exact = solve_line(after, caps_after).throughput - solve_line(before, caps).throughput
    scenario = load_scenario_data({"name": "change", "changes": [change]})
    result = compare(line, [scenario], hours=6000.0, warmup=100.0, replications=R, seed=SEED)
    base = [r.throughput_per_hour for r in result.runs[BASELINE]]
    changed = [r.throughput_per_hour for r in result.runs["change"]]
    assert_in_ci([c - b for c, b in zip(changed, base, strict=True)], exact, f"paired difference (exact {exact:.5f})")
    delta = result.deltas["change"]["throughput_per_hour"]
    # the pairing: the same random numbers in both runs make the difference far less noisy than either run (1.9x to
    # 2.8x narrower here: 4 to 8 times fewer replications for the same interval). With 12 replications the ratio of
    # two sample deviations is itself uncertain by ~25 %: the bound is well below what pairing gives, and far above
    # the 1x of independent runs.
    assert delta.ci95_unpaired > 1.5 * delta.ci95, f"pairing gain only {delta.ci95_unpaired / delta.ci95:.2f}x"


def test_a_scenario_that_changes_nothing_differs_by_exactly_zero_in_every_replication() -> None:
    line = line_of([M(1.0, 8.0, 2.0), M(0.9), M(1.1, 20.0, 1.0, "calendar")], [2, 1])
    same = load_scenario_data({"name": "same", "changes": [{"station": "S1", "scale": {"cycle_time": 1.0}}]})
    result = compare(line, [same], hours=500.0, warmup=50.0, replications=6, seed=SEED)
    assert [r.good for r in result.runs["same"]] == [r.good for r in result.runs[BASELINE]]
    for key, d in result.deltas["same"].items():
        assert (d.mean, d.ci95) == (0.0, 0.0), key
