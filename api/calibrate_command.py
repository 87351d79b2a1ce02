"""``gigatwin calibrate``: a line's parameters estimated from its stored history, against its line file."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from api.forecast_command import iso_ms
from api.schemas import hours_to_iso
from connectors.calibrate import calibrate_from_store
from connectors.errors import ConnectorError
from connectors.linefile import read_line, write_calibrated
from connectors.redact import redact_text
from connectors.stores.forecasts import finite_json
from connectors.stores.url import open_store
from connectors.telemetry import Topics
from twin.calibration import MIN_FAILURES
from twin.errors import TwinError

__all__ = ["add_calibrate_parser", "run_calibrate"]


def add_calibrate_parser(sub: Any) -> None:
    """The ``calibrate`` subcommand's options."""
    p = sub.add_parser(
        "calibrate",
        help="estimate a line's failure, repair, cycle and scrap parameters from its stored history",
        description="Replays the line's stored states and counts of the window, fits each failure mode's time to "
        "failure and to repair by censored maximum likelihood (exponential, Weibull, lognormal, gamma; by AIC), and "
        "compares every estimate with the line file's design value, flagging those outside the 95 %% interval.",
    )
    p.add_argument("--line", required=True, help="the line file (YAML)")
    p.add_argument("--store", required=True, help="sqlite:PATH or influxdb[s]://[user:password@]host:port/db[?..]")
    p.add_argument("--since", type=iso_ms, default=None, help="window start, ISO 8601 (default: the oldest reading)")
    p.add_argument("--until", type=iso_ms, default=None, help="window end, ISO 8601 (default: the newest reading)")
    p.add_argument(
        "--min-failures",
        type=int,
        default=MIN_FAILURES,
        help=f"complete failures a mode needs for its fit to be used (default {MIN_FAILURES})",
    )
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap samples per interval (default 200)")
    p.add_argument("--prefix", default="gigatwin", help="topic prefix, one or more levels (default gigatwin)")
    p.add_argument("--site", default="plant1", help="the site's topic level (default plant1)")
    p.add_argument(
        "--out", default=None, help="write the line file with the fitted values (comments and order kept) to this path"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _num(v: float | None, fmt: str = ".3g") -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def _duration(e: dict[str, Any] | None) -> str:
    if e is None:
        return "—"
    lo, hi = e["ci95"]
    drift = f"  DRIFT x{e['drift']:.2f}" if e["drift"] else ""
    return f"{e['dist']:<11} {_num(e['mean'])} [{_num(lo)}, {_num(hi)}] design {_num(e['design_mean'])}{drift}"


def _table(d: dict[str, Any]) -> str:
    w = d["window"]
    rows = [
        f"calibration of {d['line']} over {w['start']} .. {w['end']} ({w['hours']:,.1f} h; durations in {d['time_unit']})",
        "",
    ]
    for sid, st in d["stations"].items():
        ct, sc = st["cycle_time"], st["scrap"]
        cycle = f"cycle {_num(ct['mean_s'])} s against {_num(ct['design_s'])} s over {ct['units']:,} units"
        lo_hi = "" if sc["ci95"] is None else f" [{sc['ci95'][0]:.4f}, {sc['ci95'][1]:.4f}]"
        rate = "—" if sc["rate"] is None else f"{sc['rate']:.4f}"
        drift = f"  DRIFT x{sc['drift']:.2f}" if sc["drift"] else ""
        rows.append(f"{sid}: {cycle}; scrap {rate}{lo_hi} design {sc['design']:g} of {sc['processed']:,}{drift}")
        for m in st["failures"]:
            known = "" if m["known"] else " (not in the line file)"
            rows.append(
                f"  {m['name']}{known} [{m['basis']}]: {m['n_failures']} failures, {m['n_censored']} censored; "
                f"{m['used']}: {m['why']}"
            )
            rows.append(f"    ttf {_duration(m['ttf'])}")
            rows.append(f"    ttr {_duration(m['ttr'])}")
    rows += ["", "flagged: " + (", ".join(d["flagged"]) or "none")]
    return "\n".join(rows)


def run_calibrate(args: argparse.Namespace) -> int:
    """Run ``gigatwin calibrate``; returns the exit status."""
    try:
        line = read_line(args.line)
        if args.min_failures < 1:
            raise TwinError(f"--min-failures must be at least 1, got {args.min_failures}")
        if args.bootstrap < 0:
            raise TwinError(f"--bootstrap must not be negative, got {args.bootstrap}")
        store = open_store(args.store)
    except (TwinError, ValueError, ConnectorError) as exc:
        print(f"gigatwin calibrate: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    try:
        topics = Topics(args.prefix, args.site, line.name)
        began = time.perf_counter()
        made = calibrate_from_store(
            store,
            topics,
            line,
            since_ms=args.since,
            until_ms=args.until,
            min_failures=args.min_failures,
            bootstrap=args.bootstrap,
        )
    except (TwinError, ValueError, ConnectorError) as exc:
        print(f"gigatwin calibrate: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    finally:
        store.close()
    cal = made.calibration
    print(
        f"gigatwin calibrate: {made.replay.readings:,} readings, {made.replay.events:,} events in "
        f"{time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )
    if args.out is not None:
        try:
            changed = write_calibrated(args.line, cal, args.out)
        except (TwinError, OSError) as exc:
            print(f"gigatwin calibrate: --out {args.out}: {redact_text(str(exc))}", file=sys.stderr)
            return 2
        print(f"gigatwin calibrate: wrote {args.out} ({len(changed)} values fitted)", file=sys.stderr)
    out = cal.to_dict(line.time_unit)
    out["window"].update(start=hours_to_iso(cal.start_h), end=hours_to_iso(cal.end_h))
    print(json.dumps(finite_json(out), indent=2, allow_nan=False) if args.json else _table(out))
    return 0
