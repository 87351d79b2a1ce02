"""A two-input merge (an assembly station taking one anode and one cathode unit per unit it makes) against its
Markov chain (``exact.solve_merge``): throughput, the merge machine's starved time per input, buffer levels and
the feeding machines' blocked time.

Same statistics as ``test_exact_results``: R independent replications with a fixed seed, the exact value inside
the replication mean's t interval at 99.9 % per assertion (the tolerance comes from the statistics alone).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.statistical.exact import solve_merge
from tests.statistical.test_exact_results import SEED, R, assert_in_ci, exp
from twin.engine import Engine
from twin.events import MachineState, StateChanged
from twin.kpis import KpiReducer
from twin.schema import Line, load_line_data


def merge_line(means: tuple[float, float, float], caps: tuple[int, int]) -> Line:
    """Anode and cathode machines A and C feeding the merge S through buffers of ``caps``."""
    return load_line_data(
        {
            "name": "merge",
            "time_unit": "h",
            "stations": [
                {"id": "A", "cycle_time": exp(means[0]), "buffer_after": caps[0]},
                {"id": "C", "cycle_time": exp(means[1]), "buffer_after": caps[1], "inputs": []},
                {"id": "S", "cycle_time": exp(means[2]), "inputs": ["A", "C"]},
            ],
        }
    )


class _StarvedBy:
    """Time the merge station's machine spends STARVED, per reason (the short input), after ``warmup``."""

    def __init__(self, warmup: float) -> None:
        self.warmup = warmup
        self.since: float | None = None
        self.reason = ""
        self.hours: dict[str, float] = {}

    def __call__(self, e: Any) -> None:
        if not isinstance(e, StateChanged) or e.station != "S":
            return
        self.close(e.t)
        if e.state is MachineState.STARVED:
            self.since, self.reason = e.t, e.reason
        else:
            self.since = None

    def close(self, t: float) -> None:
        if self.since is not None:
            begin = max(self.since, self.warmup)
            if t > begin:
                self.hours[self.reason] = self.hours.get(self.reason, 0.0) + t - begin
            self.since = t


CASES = [
    pytest.param((1.0, 0.9, 0.8), (2, 1), 6000, id="balanced-b2-b1"),
    pytest.param((0.8, 1.25, 0.6), (1, 3), 6000, id="slow-cathode-b1-b3"),
    pytest.param((1.0, 1.0, 1.1), (0, 2), 6000, id="hand-off-and-b2-merge-slowest"),
]


@pytest.mark.parametrize(("means", "caps", "hours"), CASES)
def test_a_two_input_merge_matches_its_markov_chain(
    means: tuple[float, float, float], caps: tuple[int, int], hours: float
) -> None:
    """Exponential cycle times and small buffers make (units before the merge per input, merge busy) a Markov
    chain; the simulator must land on its throughput, the starved fraction per input (the engine names the short
    input as the STARVED reason), the mean buffer levels and the feeders' blocked fractions."""
    line = merge_line(means, caps)
    exact = solve_merge(1 / means[0], 1 / means[1], 1 / means[2], caps)
    warmup = 100.0
    throughput, starved_a, starved_c, level_a, level_c, blocked_a, blocked_c = ([] for _ in range(7))
    for r in range(R):
        engine = Engine(line, seed=(SEED, r))
        starved = _StarvedBy(warmup)
        reducer = KpiReducer(line, start_h=warmup, end_h=hours)
        engine.subscribe(starved, kinds=[StateChanged])
        reducer.attach(engine)
        engine.run(hours)
        starved.close(hours)
        kpis = reducer.result()
        span = hours - warmup
        throughput.append(kpis.throughput_per_hour)
        starved_a.append(starved.hours.get("A", 0.0) / span)
        starved_c.append(starved.hours.get("C", 0.0) / span)
        assert set(starved.hours) <= {"A", "C"}, f"a merge names the short input when starved: {sorted(starved.hours)}"
        level_a.append(kpis.buffers["A"].mean_level)
        level_c.append(kpis.buffers["C"].mean_level)
        blocked_a.append(kpis.stations["A"].state_fractions["blocked"])
        blocked_c.append(kpis.stations["C"].state_fractions["blocked"])
    assert_in_ci(throughput, exact.throughput, "throughput")
    assert_in_ci(starved_a, exact.starved[0], "merge starved on input A")
    assert_in_ci(starved_c, exact.starved[1], "merge starved on input C")
    for k, (levels, cap) in enumerate(((level_a, caps[0]), (level_c, caps[1]))):
        if cap:
            assert_in_ci(levels, exact.buffer_levels[k], f"mean level of buffer {'AC'[k]}")
        else:
            assert all(v == 0.0 for v in levels), "a direct hand-off never holds a unit"
    assert_in_ci(blocked_a, exact.blocked[0], "A blocked")
    assert_in_ci(blocked_c, exact.blocked[1], "C blocked")


def test_the_merge_chain_reduces_to_a_tandem_line_when_one_input_never_limits() -> None:
    """A check of the solver itself: with a feeder far faster than the others, the merge behaves as the
    two-station line of the other feeder (throughput of M/M/1/K with the blocked unit as one more place)."""
    from tests.statistical.exact import Machine, solve_line

    merge = solve_merge(1.0, 1e6, 1 / 0.8, (2, 1))
    tandem = solve_line([Machine(1.0), Machine(0.8)], [2])
    assert merge.throughput == pytest.approx(tandem.throughput, rel=1e-4)
    assert merge.starved[1] == pytest.approx(0.0, abs=1e-5)
