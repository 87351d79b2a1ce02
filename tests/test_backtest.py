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
    # the small line has no condition signals: no model, and the condition-signal line says so
    assert r["condition_model"]["fitted"] is False
    assert r["p_failure_condition"] == pf
    assert "p_failure (condition-signal): Brier" in out
    assert "no model: 0 labelled failures within 2 h of a sample instant, 10 needed: age-only" in out
    assert main(["backtest", str(line_file), "--days", "0.05", "--horizon", "8"]) == 2
    assert "must fit in the measured 1.2 hours" in capsys.readouterr().err


JAM = {"name": "jam", "ttf": {"dist": "exponential", "mean": 4.0}, "ttr": {"dist": "exponential", "mean": 0.2}}
VIBRATION = {"vibration_mm_s": {"unit": "mm/s", "nominal": 2.0, "normal": [1.0, 3.0], "condition": True}}
# three machines that fail every 4 h or so, memorylessly (their age says nothing), and whose vibration rises before
SIGNALLING = make_line(
    {"id": "A", "cycle_time": 0.05, "failures": [JAM], "signals": VIBRATION, "buffer_after": 20},
    {"id": "B", "cycle_time": 0.05, "failures": [JAM], "signals": VIBRATION, "buffer_after": 20},
    {"id": "C", "cycle_time": 0.05, "failures": [JAM], "signals": VIBRATION},
)


def test_the_condition_signal_hazard_is_scored_against_the_age_only_one_on_held_out_days() -> None:
    r = backtest(SIGNALLING, days=1.5, every_h=1, horizon_h=2, replications=16, warmup_h=48)
    assert r.forecasts == 35
    model = r.condition_model
    assert model["fitted"] is True
    assert model["positives"] >= 10
    assert model["coefficients"]["level"] > 0  # fitted on the warm-up: a rising vibration means a failure is near
    age, cond = r.p_failure, r.p_failure_condition
    assert age["pairs"] == cond["pairs"] == 105  # the same forecast instants and stations, and the same truth
    assert (age["base_rate"], age["brier_base_rate"]) == (cond["base_rate"], cond["brier_base_rate"])
    # exponential failures: the age-only hazard is the base rate (a Brier score no better than it, no ranking);
    # the signals tell which machine fails within the next two hours
    assert cond["brier"] < age["brier"] / 2, (cond, age)
    assert cond["auc"] > 0.8 > age["auc"]


def test_auc_is_the_probability_that_a_positive_outranks_a_negative() -> None:
    p = np.array([0.9, 0.8, 0.3, 0.3, 0.1])
    y = np.array([True, False, True, False, False])
    # positives 0.9 and 0.3 against negatives 0.8, 0.3, 0.1: 0.9 beats all 3; 0.3 beats 0.1, ties 0.3 -> 4.5 / 6
    assert _auc(p, y) == pytest.approx(4.5 / 6)
    assert math.isnan(_auc(p, np.zeros(5, dtype=bool)))
