"""``gigatwin forecast``: a forecast of a line from its stored telemetry, as of now or a past instant."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

from api.schemas import hours_to_iso
from connectors.asof import default_lookback_h, knowledge_as_of, line_clock_ms
from connectors.errors import ConnectorError
from connectors.linefile import read_line
from connectors.redact import redact_text
from connectors.stores.url import open_store
from connectors.telemetry import Topics
from twin.errors import TwinError
from twin.forecast import MAX_HORIZON_H, MIN_HORIZON_H, forecast
from twin.shifts import default_plan_per_hour

__all__ = ["add_backtest_parser", "add_forecast_parser", "iso_ms", "run_backtest", "run_forecast"]


def iso_ms(text: str) -> int:
    """An ISO 8601 time on the command line as ms since the epoch (UTC when it names no zone: the line's clock)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-11-30T10:40:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # the line's clock is UTC
    return round(when.timestamp() * 1000)


def _horizon(text: str) -> float:
    value = float(text)
    if not MIN_HORIZON_H <= value <= MAX_HORIZON_H:
        raise argparse.ArgumentTypeError(
            f"--horizon must be at least a minute and at most {MAX_HORIZON_H:g} h (a week), got {text}"
        )
    return value


def add_forecast_parser(sub: Any) -> None:
    """The ``forecast`` subcommand's options."""
    p = sub.add_parser(
        "forecast",
        help="forecast a line's good output and downtime from its stored telemetry (as of now or --at)",
        description="Reads the line's telemetry from the store up to the instant (the newest stored reading, or "
        "--at), rebuilds what it tells, and runs replications of the line from there, each drawing what the "
        "telemetry does not say (repair and work left, failure clocks) given what it does.",
    )
    p.add_argument("--line", required=True, help="the line file (YAML)")
    p.add_argument("--store", required=True, help="sqlite:PATH or influxdb[s]://[user:password@]host:port/db[?..]")
    p.add_argument("--at", type=iso_ms, default=None, help="forecast as of this ISO 8601 time (default: the newest reading)")
    p.add_argument("--horizon", type=_horizon, default=8.0, help="hours ahead (default 8, at most 168)")
    p.add_argument("--replications", type=int, default=200, help="replications (default 200)")
    p.add_argument("--seed", type=int, default=0, help="the forecast's seed (default 0)")
    p.add_argument("--lookback", type=float, default=None, help="hours of telemetry read (default: the longest dwell + 8 h)")
    p.add_argument("--workers", type=int, default=0, help="processes (default: one per core)")
    p.add_argument("--prefix", default="gigatwin", help="topic prefix, one or more levels (default gigatwin)")
    p.add_argument("--site", default="plant1", help="the site's topic level (default plant1)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _table(result: dict[str, Any], line_name: str) -> str:
    g = result["good_output"]
    rows = [
        f"forecast of {line_name} as of {result['as_of']}, {result['horizon_h']:g} h ahead "
        f"({result['replications']} replications, seed {result['seed']}, {result['compute_s']:.1f} s)",
        f"good output   p10 {g['p10']:,.0f}   p50 {g['p50']:,.0f}   p90 {g['p90']:,.0f}   (mean {g['mean']:,.0f})",
        f"plan          {result['plan']['target']:,.0f} units: reached in {result['plan']['p_meet']:.0%} of the replications",
        "",
        f"{'by (UTC)':<22}{'p10':>10}{'p50':>10}{'p90':>10}",
    ]
    rows += [
        f"{h['end'][:19].replace('T', ' '):<22}{h['p10']:>10,.0f}{h['p50']:>10,.0f}{h['p90']:>10,.0f}" for h in result["hourly"]
    ]
    rows += [
        "",
        f"{'station':<10}{'P(failure)':>11}{'down h':>9}{'P(down at end)':>15}{'repair left p50/p90 h':>23}{'P(bottleneck)':>15}"
        f"  {'P(failure) from'}",
    ]
    hazard = result["assumptions"].get("hazard", {})
    for sid, st in result["stations"].items():
        repair = st["repair_left_h"]
        left = "—" if repair is None else f"{repair['p50']:.2f} / {repair['p90']:.2f}"
        rows.append(
            f"{sid:<10}{st['p_failure']:>11.0%}{st['expected_downtime_h']:>9.1f}{st['p_down_at_horizon']:>15.0%}"
            f"{left:>23}{st['p_bottleneck']:>15.0%}  {hazard.get(sid, '—')}"
        )
    notes = result["assumptions"]
    rows += ["", "assumed: " + json.dumps(notes)]
    return "\n".join(rows)


def run_forecast(args: argparse.Namespace) -> int:
    """Run ``gigatwin forecast``; returns the exit status."""
    try:
        line = read_line(args.line)
        if args.replications < 1:
            raise TwinError(f"--replications must be at least 1, got {args.replications}")
        store = open_store(args.store)
    except (TwinError, ValueError, ConnectorError) as exc:
        print(f"gigatwin forecast: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    try:
        topics = Topics(args.prefix, args.site, line.name)
        at_ms = args.at
        if at_ms is None:
            at_ms = line_clock_ms(store, topics)
            if at_ms is None:
                print(
                    f"gigatwin forecast: the store holds no telemetry of line {line.name!r} (site {args.site!r})", file=sys.stderr
                )
                return 2
        lookback = args.lookback if args.lookback is not None else default_lookback_h(line)
        began = time.perf_counter()
        print(f"gigatwin forecast: reading {lookback:g} h of telemetry up to {hours_to_iso(at_ms / 3_600_000)}", file=sys.stderr)
        asof = knowledge_as_of(store, topics, line, at_ms, lookback)
        print(
            f"gigatwin forecast: {asof.replay.readings:,} readings in {time.perf_counter() - began:.1f} s; "
            f"running {args.replications} replications of {args.horizon:g} h",
            file=sys.stderr,
        )
        workers = args.workers or (os.cpu_count() or 1)
        # forkserver: the pool's processes start clean, not as copies of this one's threads
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
            result = forecast(
                line,
                asof.knowledge,
                args.horizon,
                replications=args.replications,
                seed=args.seed,
                plan_per_hour=default_plan_per_hour(line),
                executor=pool if workers > 1 else None,
            )
    except (TwinError, ValueError, ConnectorError) as exc:
        print(f"gigatwin forecast: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    finally:
        store.close()
    out = result.to_dict(lambda h: hours_to_iso(h))
    out["line"] = line.name
    out["lookback_h"] = lookback
    out["readings"] = asof.replay.readings
    print(json.dumps(out, indent=2) if args.json else _table(out, line.name))
    return 0


def add_backtest_parser(sub: Any) -> None:
    """The ``backtest`` subcommand's options."""
    p = sub.add_parser(
        "backtest",
        help="score forecasts against the virtual plant as the truth: MAPE and coverage by hour ahead, Brier and AUC",
        description="Runs the line's engine as the truth (a warm-up, then --days), feeds its telemetry through the "
        "codec into what a forecast knows, forecasts every --every hours and scores each once its horizon has passed.",
    )
    p.add_argument("line", help="the line file (YAML)")
    p.add_argument("--days", type=float, required=True, help="simulated days measured after the warm-up")
    p.add_argument("--every", type=float, default=8.0, help="hours between forecasts (default 8)")
    p.add_argument("--horizon", type=_horizon, default=8.0, help="hours each forecast looks ahead (default 8)")
    p.add_argument("--replications", type=int, default=50, help="replications per forecast (default 50)")
    p.add_argument("--warmup", type=float, default=504.0, help="simulated hours before the first forecast (default 504)")
    p.add_argument("--seed", type=int, default=0, help="the truth's seed; forecast k uses seed + 1 + k (default 0)")
    p.add_argument("--workers", type=int, default=0, help="processes (default: one per core)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _p_failure_row(label: str, pf: dict[str, Any]) -> str:
    return (
        f"p_failure ({label}): Brier {pf['brier']:.4f} against {pf['brier_base_rate']:.4f} for the base rate "
        f"{pf['base_rate']:.3f}; AUC {pf['auc']:.3f} over {pf['pairs']:.0f} (forecast, station) pairs"
    )


def _backtest_table(r: dict[str, Any]) -> str:
    rows = [
        f"backtest of {r['line']}: {r['forecasts']} forecasts of {r['horizon_h']:g} h every {r['every_h']:g} h over "
        f"{r['days']:g} days after {r['warmup_h']:g} h ({r['replications']} replications each, seed {r['seed']}, "
        f"{r['compute_s']:.0f} s)",
        "",
        f"{'hours ahead':>11}{'P50 MAPE':>10}{'P10-P90 coverage':>18}{'actual mean':>13}",
    ]
    rows += [f"{h['h']:>11g}{h['mape_p50']:>10.2%}{h['coverage_p10_p90']:>18.2f}{h['actual_mean']:>13,.0f}" for h in r["by_hour"]]
    model = r["condition_model"]
    if model.get("fitted"):
        fitted = f"fitted on {model['samples']:,} warm-up samples, {model['positives']:,} failed; held out: the measured days"
    else:
        fitted = f"no model: {model.get('reason', '')}"
    rows += [
        "",
        _p_failure_row("age-only", r["p_failure"]),
        _p_failure_row("condition-signal", r["p_failure_condition"]) + f" ({fitted})",
    ]
    return "\n".join(rows)


def run_backtest(args: argparse.Namespace) -> int:
    """Run ``gigatwin backtest``; returns the exit status."""
    from connectors.backtest import backtest  # the codec and the engine's truth: only for this command

    try:
        line = read_line(args.line)
        workers = args.workers or (os.cpu_count() or 1)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
            result = backtest(
                line,
                days=args.days,
                every_h=args.every,
                horizon_h=args.horizon,
                replications=args.replications,
                seed=args.seed,
                warmup_h=args.warmup,
                executor=pool if workers > 1 else None,
                progress=lambda text: print(f"gigatwin backtest: {text}", file=sys.stderr, flush=True),
            )
    except (TwinError, ValueError) as exc:
        print(f"gigatwin backtest: {exc}", file=sys.stderr)
        return 2
    out = result.to_dict()
    print(json.dumps(out, indent=2) if args.json else _backtest_table(out))
    return 0
