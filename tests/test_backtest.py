"""``gigatwin backtest``: forecasts from the truth's telemetry scored against the truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from api.cli import main
from connectors.backtest import backtest
from tests.conftest import SMALL_LINE_YAML, make_line
from twin.scoring import auc as _auc

# no failures and constant cycles: the truth is what the knowledge says, and every forecast is exact
DETERMINISTIC = make_line(
    {"id": "A", "cycle_time": 0.3, "lot": 2, "buffer_after": 4},
    {"id": "B", "machines": 2, "cycle_time": 1.1, "buffer_after": 3},
    {"id": "S", "kind": "delay", "capacity": 9, "dwell": 2.5, "buffer_after": 2},
    {"id": "C", "batch_size": 3, "cycle_time": 1.2},
)


def test_a_deterministic_line_is_forecast_without_error() -> None:
    r = backtest(DETERMINISTIC, days=1, every_h=3, horizon_h=3, replications=4, warmup_h=10)
    assert r.forecasts == 8  # at hours 10, 13, ..., 31: each horizon ends by hour 34
    assert [h["h"] for h in r.by_hour] == [1.0, 2.0, 3.0]
    for h in r.by_hour:
        assert h["mape_p50"] == 0.0
        assert h["coverage_p10_p90"] == 1.0
        assert h["actual_mean"] > 0
    assert r.p_failure["pairs"] == 0  # nothing can fail
    assert r.assumptions["sampled_batch_fills"] == 0  # C's fills come from conservation, not a guess


def test_the_command_scores_a_line_with_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line_file = tmp_path / "small.yaml"
    line_file.write_text(SMALL_LINE_YAML)
    args = ["backtest", str(line_file), "--days", "1", "--every", "4", "--horizon", "2.5", "--replications", "20"]
    code = main([*args, "--warmup", "12", "--workers", "1", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    r = json.loads(out)
    assert r["forecasts"] == 6  # at hours 12, 16, ..., 32; 36 - 2.5 = 33.5 is the last start whose horizon fits
    assert [h["h"] for h in r["by_hour"]] == [1.0, 2.0, 2.5]
    for h in r["by_hour"]:
        assert 0 <= h["mape_p50"] < 1
        assert 0 <= h["coverage_p10_p90"] <= 1
    pf = r["p_failure"]
    assert pf["pairs"] == 12  # 6 forecasts x the 2 stations that can fail
    assert 0 <= pf["brier"] <= 1
    assert pf["brier_base_rate"] == pytest.approx(pf["base_rate"] * (1 - pf["base_rate"]))
    assert "forecast 6 of 6" in err
    code = main([*args, "--warmup", "12", "--workers", "1"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "P50 MAPE" in out
    assert "p_failure (age-only): Brier" in out
    assert main(["backtest", str(line_file), "--days", "0.05", "--horizon", "8"]) == 2
    assert "must fit in the measured 1.2 hours" in capsys.readouterr().err


def test_auc_is_the_probability_that_a_positive_outranks_a_negative() -> None:
    p = np.array([0.9, 0.8, 0.3, 0.3, 0.1])
    y = np.array([True, False, True, False, False])
    # positives 0.9 and 0.3 against negatives 0.8, 0.3, 0.1: 0.9 beats all 3; 0.3 beats 0.1, ties 0.3 -> 4.5 / 6
    assert _auc(p, y) == pytest.approx(4.5 / 6)
    assert math.isnan(_auc(p, np.zeros(5, dtype=bool)))
