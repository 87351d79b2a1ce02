"""The ``gigatwin`` command line."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from api.calibrate_command import add_calibrate_parser, run_calibrate
from api.forecast_command import add_backtest_parser, add_forecast_parser, iso_ms, run_backtest, run_forecast
from api.telemetry_commands import FEED_WARMUP_H, run_feed, run_ingest
from api.whatif_command import add_whatif_parser, run_whatif
from connectors.linefile import read_line
from connectors.telemetry import MS_PER_HOUR
from twin.errors import TwinError
from twin.simulate import simulate
from twin.snapshot import LineSnapshot

__all__ = ["main"]


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number of hours, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gigatwin", description="GigaTwin: a digital twin of battery-cell production lines.")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="simulate a line file and print its KPIs")
    sim.add_argument("line", help="the line file (YAML)")
    sim.add_argument("--hours", type=_positive, required=True, help="simulated hours measured after the warm-up")
    sim.add_argument("--warmup", type=float, default=0.0, help="simulated hours run first and discarded (default 0)")
    sim.add_argument("--replications", type=int, default=1, help="independent replications (default 1)")
    sim.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    sim.add_argument("--workers", type=int, default=0, help="processes for replications (default: one per core)")
    sim.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    sim.add_argument(
        "--start",
        type=iso_ms,
        default=None,
        help="the time the run starts at, ISO 8601 (UTC unless it says otherwise); it places the line's calendar and "
        "planned stops (default: the engine's clock 0, Thursday 1970-01-01 00:00 UTC)",
    )

    feed = sub.add_parser(
        "feed", help="run the virtual plant: the engine paced to the wall clock, publishing telemetry over MQTT"
    )
    feed.add_argument("line", help="the line file (YAML)")
    feed.add_argument("--mqtt", required=True, help="the broker, mqtt[s]://[user[:password]@]host[:port][?ca=..&cert=..&key=..]")
    feed.add_argument("--speed", type=_positive, default=60.0, help="simulated seconds per wall second (default 60)")
    feed.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    feed.add_argument(
        "--hours", type=_positive, default=None, help="stop after this many simulated hours (default: run until stopped)"
    )
    feed.add_argument(
        "--warmup",
        type=_hours_or_zero,
        default=FEED_WARMUP_H,
        help=f"simulated hours run before publishing, so the line starts full (default {FEED_WARMUP_H:g}, as the demo; 0: empty)",
    )
    feed.add_argument(
        "--origin",
        default="now",
        help="the source time the feed starts at: now (default), an ISO 8601 time (UTC unless it says otherwise) "
        "or a negative offset such as now-7d, now-36h or now-90m (or --origin=-7d). The source clock runs speed x the "
        "wall clock from there: start in the past to stay behind the wall clock (the feed prints when it reaches it)",
    )
    feed.add_argument(
        "--status-every",
        type=float,
        default=10.0,
        help="seconds between status lines with the lead over the wall clock (0: none)",
    )
    _topic_args(feed)
    faults = feed.add_argument_group("fault injection (for testing receivers)")
    faults.add_argument("--drop", type=_probability, default=0.0, help="probability that a message is not sent")
    faults.add_argument("--duplicate", type=_probability, default=0.0, help="probability that a message is sent twice")
    faults.add_argument(
        "--reorder", type=_probability, default=0.0, help="probability that a message is held back and sent later"
    )
    faults.add_argument(
        "--malformed", type=_probability, default=0.0, help="probability that a payload is replaced by a malformed one"
    )
    faults.add_argument(
        "--clock-skew", type=float, default=0.0, help="seconds added to every source timestamp (a gateway clock that is off)"
    )

    ing = sub.add_parser(
        "ingest",
        help="consume a line's telemetry from MQTT into a store, keeping its live state (the service without HTTP)",
        description="The service without HTTP. Settings as for `gigatwin serve` (GIGATWIN_* variables, .env, "
        "GIGATWIN_CONFIG_FILE); each option given here wins over its setting, named in brackets.",
    )
    ing.add_argument(
        "--mqtt",
        default=None,
        help="the broker, mqtt[s]://[user[:password]@]host[:port][?client_id=..&ca=..] (GIGATWIN_MQTT_URL)",
    )
    ing.add_argument(
        "--store",
        default=None,
        help="sqlite:PATH, or influxdb[s]://[user:password@]host:port/db[?flavour=v1|v2|v3&token=..] "
        "(GIGATWIN_STORE_URL, default sqlite:gigatwin.db)",
    )
    ing.add_argument("--line", default=None, help="the line file (GIGATWIN_LINE_FILE, default: the reference battery line)")
    ing.add_argument(
        "--group",
        default=None,
        help="a shared-subscription group: processes with one group split the stream (GIGATWIN_MQTT_GROUP)",
    )
    ing.add_argument(
        "--client-id",
        default=None,
        help="MQTT client id, stable across restarts and unique per process (GIGATWIN_MQTT_CLIENT_ID)",
    )
    ing.add_argument(
        "--spool-dir",
        default=None,
        help="where InfluxDB writes wait while it is down "
        "(GIGATWIN_SPOOL_DIR, default: $XDG_STATE_HOME/gigatwin/spool/HOST-PORT-DB)",
    )
    ing.add_argument(
        "--max-lead",
        type=_seconds,
        default=None,
        help="seconds a source timestamp may lie ahead of the receive clock; further is a dead letter "
        "(GIGATWIN_MAX_LEAD_S, default 300)",
    )
    ing.add_argument(
        "--workers",
        type=_count,
        default=1,
        help="processes on one shared subscription, as one command (default 1; group 'gigatwin' unless --group)",
    )
    ing.add_argument("--status-every", type=float, default=10.0, help="seconds between status lines (0: none)")
    ing.add_argument("--prefix", default=None, help="topic prefix, one or more levels (GIGATWIN_TOPIC_PREFIX, default gigatwin)")
    ing.add_argument("--site", default=None, help="the site's topic level (GIGATWIN_SITE, default plant1)")

    add_forecast_parser(sub)
    add_backtest_parser(sub)
    add_calibrate_parser(sub)
    add_whatif_parser(sub)

    serve = sub.add_parser(
        "serve", help="serve the API and dashboard; settings from GIGATWIN_* variables, .env or GIGATWIN_CONFIG_FILE"
    )
    serve.add_argument("--host", default=None, help="address to listen on (GIGATWIN_HOST, default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=None, help="port to listen on, 0 for any free one (GIGATWIN_PORT, default 8000)"
    )

    demo = sub.add_parser(
        "demo", help="the embedded demo: the virtual plant in-process on the reference line, API and dashboard on 127.0.0.1"
    )
    demo.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1, 0 for any free one (default 8000)")
    demo.add_argument("--line", dest="line_file", default=None, help="the line file (default: the reference battery line)")
    demo.add_argument(
        "--speed", dest="demo_speed", type=_positive, default=None, help="simulated seconds per wall second (default 60)"
    )
    demo.add_argument("--seed", dest="demo_seed", type=int, default=None, help="the virtual plant's seed (default 0)")
    demo.add_argument(
        "--warmup", dest="demo_warmup_hours", type=float, default=None, help="simulated hours run before the feed (default 504)"
    )
    demo.add_argument(
        "--malformed",
        dest="demo_malformed",
        type=_probability,
        default=None,
        help="share of messages corrupted, to show dead letters (default 0)",
    )
    demo.add_argument(
        "--store", dest="store_url", default=None, help="keep the data in this store (default: a temporary SQLite file)"
    )
    return parser


def _hours_or_zero(text: str) -> float:
    value = float(text)
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a number of hours >= 0, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text}")
    return value


def _topic_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default="gigatwin", help="topic prefix, one or more levels (default gigatwin)")
    parser.add_argument("--site", default="plant1", help="the site's topic level (default plant1)")


def _summary(result: dict[str, Any], working_h: float | None = None) -> str:
    tp = result["throughput_per_hour"]
    lines = [
        f"line {result['line']}  (config {result['config_hash']}, seed {result['seed']}, "
        f"{result['replications']} replication(s) of {result['hours']:g} h after {result['warmup']:g} h warm-up)",
        f"throughput   {tp['mean']:.1f} good units/h  ± {tp['ci95']:.1f} (95 % CI)",
        f"scrap rate   {100 * result['scrap_rate']:.2f} %",
        f"WIP          {result['wip_mean']:.0f} units;  "
        f"lead time {result['lead_time_mean_h'] or float('nan'):.1f} h (Little's law)",
        f"bottleneck   {result['bottleneck']}  ({result['bottleneck_method']})",
        "",
        f"{'station':<10}{'good/h':>10}{'working':>9}{'starved':>9}{'blocked':>9}{'down':>8}{'setup':>8}{'stopped':>9}"
        f"{'avail':>8}{'OEE':>7}{'scrapped':>10}",
    ]
    if working_h is not None:
        per_working = tp["mean"] * result["hours"] / working_h if working_h > 0 else float("nan")
        lines.insert(
            2,
            f"working time {working_h:.1f} h of {result['hours']:g} h by the calendar;  "
            f"{per_working:.1f} good units per working hour",
        )
    for sid, st in result["stations"].items():
        f = st["state_fractions"]
        lines.append(
            f"{sid:<10}{st['throughput_per_hour']:>10.1f}{f['working']:>9.1%}{f['starved']:>9.1%}{f['blocked']:>9.1%}"
            f"{f['down']:>8.1%}{f.get('setup', 0.0):>8.1%}{f.get('planned_stop', 0.0):>9.1%}"
            f"{st['availability']:>8.1%}{st['oee']:>7.1%}{st['scrapped']:>10.0f}"
        )
    lines.append("")
    lines.append(f"{'buffer after':<14}{'mean level':>12}{'capacity':>10}")
    for sid, b in result["buffers"].items():
        cap = "inf" if b["capacity"] is None else str(b["capacity"])
        lines.append(f"{sid:<14}{b['mean_level']:>12.1f}{cap:>10}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "feed":
        return run_feed(args)
    if args.command == "ingest":
        return run_ingest(args)
    if args.command == "forecast":
        return run_forecast(args)
    if args.command == "backtest":
        return run_backtest(args)
    if args.command == "calibrate":
        return run_calibrate(args)
    if args.command == "whatif":
        return run_whatif(args)
    if args.command in ("serve", "demo"):
        from api.server import run_demo, run_serve  # FastAPI and uvicorn load only for the commands that serve

        options = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
        return run_serve(options) if args.command == "serve" else run_demo(options)
    try:
        line = read_line(args.line)
        if args.replications < 1:
            raise TwinError(f"--replications must be at least 1, got {args.replications}")
        workers = args.workers or (os.cpu_count() or 1)
        start = LineSnapshot(time_h=args.start / MS_PER_HOUR) if args.start is not None else None
        result = simulate(
            line,
            hours=args.hours,
            warmup=args.warmup,
            replications=args.replications,
            seed=args.seed,
            workers=workers,
            start=start,
        ).to_dict()
    except (TwinError, ValueError) as exc:
        print(f"gigatwin: {exc}", file=sys.stderr)
        return 2
    working_h = None
    if line.calendar is not None:
        t0 = (args.start / MS_PER_HOUR if args.start is not None else 0.0) + args.warmup
        working_h = line.calendar.working_hours(t0, t0 + args.hours)
    print(json.dumps(result, indent=2) if args.json else _summary(result, working_h))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
