"""The line's bottleneck by the shifting-bottleneck method: exact on hand-made active periods, and on engine runs of
a line whose bottleneck is known, the same station over every window long enough for the method."""

from __future__ import annotations

import pytest

from tests.conftest import FAIL, make_line, record
from twin.kpis import KpiReducer, bottleneck_shares

# B is slower than its neighbours and the only one that fails: the line's bottleneck.
LINE = make_line(
    {"id": "A", "cycle_time": {"dist": "exponential", "mean": 0.8}, "buffer_after": 4},
    {"id": "B", "cycle_time": {"dist": "exponential", "mean": 1.0}, "failures": [FAIL], "buffer_after": 4},
    {"id": "C", "cycle_time": {"dist": "exponential", "mean": 0.8}},
)


def test_each_moment_goes_to_the_station_in_the_longest_active_period() -> None:
    # A active 0-4 (4 h), B 2-10 (8 h): A alone until 2, then B (the longer) through the overlap and after;
    # nobody is active 10-12, and C's short period inside B's goes to B
    periods = {"A": [(0.0, 4.0)], "B": [(2.0, 10.0)], "C": [(5.0, 6.0)]}
    shares = bottleneck_shares(periods, 0.0, 12.0)
    assert shares == pytest.approx({"A": 2 / 12, "B": 8 / 12, "C": 0.0})
    # a window cut inside: only the moments in it count, against its length
    assert bottleneck_shares(periods, 3.0, 5.0) == pytest.approx({"A": 0.0, "B": 1.0, "C": 0.0})


def test_the_known_bottleneck_holds_still_over_windows_with_enough_active_periods() -> None:
    _, events = record(LINE, 1370.0, seed=2)
    for k in range(6):
        w0, w1 = 50.0 + 220.0 * k, 270.0 + 220.0 * k
        reducer = KpiReducer(LINE, w0, w1)
        for e in events:
            if e.t > w1:
                break
            reducer(e)
        kpis = reducer.result(shares=True)
        assert kpis.active_periods >= 100, "too few active periods for the method: a longer window is needed"
        top = max(kpis.bottleneck_shares, key=lambda sid: kpis.bottleneck_shares[sid])
        assert top == "B", f"[{w0}, {w1}]: {kpis.bottleneck_shares}"
        assert kpis.bottleneck_shares["B"] > 0.5
        assert sum(kpis.bottleneck_shares.values()) <= 1 + 1e-9
