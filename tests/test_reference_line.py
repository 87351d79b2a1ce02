"""The reference battery-cell line lands where the published back-of-envelope analysis says.

Expectations from ``shared/reference/battery_line.md`` section 4: formation-limited, about 2,650-2,790 good
cells/h at maturity with ~8.4 % scrap; the ramp-up profile about 2,000-2,230 good cells/h with ~23 % scrap and
the constraint moved upstream to the cathode coater (or stacking, which is close behind).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from connectors.linefile import read_line
from tests.conftest import LINES
from twin.engine import Engine
from twin.schema import Line
from twin.simulate import simulate

MATURE = LINES / "reference_cell_line.yaml"
RAMP_UP = LINES / "reference_cell_line_rampup.yaml"
WARMUP_H = 504.0  # 3 weeks: the 14-day aging store must fill before cells ship
WEEK_H = 168.0
REPLICATIONS = 4


def _yield(line: Line) -> float:
    return math.prod(1.0 - s.scrap for s in line.stations)


def _measured_week(path: Path, seed: int) -> dict[str, Any]:
    """One warm-up, then independent replications of a week from the same warm state."""
    line = read_line(path)
    engine = Engine(line, seed)
    engine.run(WARMUP_H)
    return simulate(line, hours=WEEK_H, replications=REPLICATIONS, seed=seed, start=engine.snapshot(), workers=2).to_dict()


def _formation_bound(line: Line) -> float:
    """Good cells/h if formation ran at its ideal rate times its availability, scrap from formation onward deducted."""
    form = line.station("FORM")
    downtime_per_hour = 0.0
    for mode in form.failures:
        downtime_per_hour += mode.ttr.mean_value / mode.ttf.mean_value
    after = line.stations[[s.id for s in line.stations].index("FORM") :]
    return form.ideal_rate / (1.0 + downtime_per_hour) * _yield(line.model_copy(update={"stations": after}))


def test_reference_line_matches_the_note_on_paper() -> None:
    mature, ramp = read_line(MATURE), read_line(RAMP_UP)
    assert len(mature.stations) == 14
    assert [s.id for s in ramp.stations] == [s.id for s in mature.stations]
    assert _yield(mature) == pytest.approx(0.916, abs=0.003)
    assert _yield(ramp) == pytest.approx(0.77, abs=0.01)
    assert mature.station("FORM").ideal_rate == pytest.approx(3030, rel=0.01)
    assert mature.station("STACK").ideal_rate == pytest.approx(3313, rel=0.01)
    assert mature.station("AGE").ideal_rate == pytest.approx(3274, rel=0.01)
    # the note's back of the envelope: formation caps good output at ~2,790 cells/h
    assert _formation_bound(mature) == pytest.approx(2790, rel=0.01)


def test_mature_line_is_formation_limited_at_the_published_rate() -> None:
    result = _measured_week(MATURE, seed=11)
    tp, ci = result["throughput_per_hour"]["mean"], result["throughput_per_hour"]["ci95"]
    # within its 95 % interval: no faster than formation allows, no slower than the note's 2,650
    assert tp - ci <= _formation_bound(read_line(MATURE))
    assert tp + ci >= 2650
    assert result["bottleneck"] == "FORM"
    assert result["scrap_rate"] == pytest.approx(0.084, abs=0.01)
    fractions = result["stations"]["FORM"]["state_fractions"]
    assert fractions["starved"] < 0.05  # the wetting store keeps formation fed
    assert fractions["blocked"] < 0.01


def test_ramp_up_line_falls_to_the_published_range() -> None:
    result = _measured_week(RAMP_UP, seed=12)
    tp, ci = result["throughput_per_hour"]["mean"], result["throughput_per_hour"]["ci95"]
    assert tp + ci >= 2000
    assert tp - ci <= 2230
    assert result["scrap_rate"] == pytest.approx(0.23, abs=0.02)
    assert result["bottleneck"] in {"COAT_C", "STACK"}
