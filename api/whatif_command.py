"""``gigatwin whatif``: scenarios of a line against its baseline, paired replication by replication.

From steady state (each variant warmed up ``--warmup`` hours, then ``--hours`` measured) or, with ``--store``, from
the plant's state as of ``--at`` (default: the store's newest reading), rebuilt from the stored telemetry as
``gigatwin forecast`` does and drawn once per replication (``twin.whatif.starts_from``). Replications run in this
process, on a pool of processes (``--workers``) or on a Dask cluster (``--scheduler``); the result depends only on
the seed and the number of replications.

Output: a table of the differences with their paired 95 % intervals and a verdict in words, or ``--json`` (exactly
``WhatIfResult.to_dict()``), and optionally ``--report``, one self-contained HTML page (``api.whatif_report``).
Bad input (a scenario file that cannot be read or does not fit the line, two scenarios of one name, a time outside
the horizon) is one line per problem on stderr naming the file and field, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from api.forecast_command import iso_ms
from api.schemas import hours_to_iso
from api.whatif_report import LINE_FIGURES, STATION_FIGURES, ReportContext, decimals, number, render_report, verdict
from connectors.asof import default_lookback_h, knowledge_as_of, line_clock_ms
from connectors.errors import ConnectorError
from connectors.executors import open_executor
from connectors.linefile import read_line
from connectors.redact import redact_text
from connectors.scenariofile import read_scenario
from connectors.stores.url import open_store
from connectors.telemetry import MS_PER_HOUR, Topics
from twin.errors import LineError, TwinError
from twin.scenario import Scenario, ScenarioError, apply_scenario
from twin.schema import Line
from twin.snapshot import LineSnapshot
from twin.whatif import BASELINE, compare, starts_from

__all__ = ["DEFAULT_WARMUP_H", "add_whatif_parser", "difference_text", "run_whatif", "whatif_table"]

PROG = "gigatwin whatif"

DEFAULT_WARMUP_H = 504.0
"""The steady-state warm-up unless ``--warmup`` says otherwise: three weeks, as the demo's and the backtest's. The
reference line ships nothing from its end until its 14-day aging store has filled, and its line end runs steady
about a week after that; a smaller line is steady sooner and may be given less."""


def _positive_hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of hours, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of hours, got {text}")
    return value


def _hours_or_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of hours, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number of hours >= 0, got {text}")
    return value


def _replications(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"a paired interval needs at least 2 replications, got {text}")
    return value


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (1: run in this process), got {text}")
    return value


def add_whatif_parser(sub: Any) -> None:
    """The ``whatif`` subcommand's options."""
    p = sub.add_parser(
        "whatif",
        help="run scenarios of a line against its baseline with common random numbers: differences with 95 % intervals",
        description="Each scenario file (simulations/scenarios/ has examples) names changes to the line. Replication i "
        "of the baseline and of every scenario runs with the same seed (and, with --store, the same starting state), "
        "so the differences are measured pair by pair. From steady state by default; with --store, from the plant's "
        "state as of --at (default: the store's newest reading), as `gigatwin forecast` rebuilds it.",
    )
    p.add_argument("line", help="the line file (YAML)")
    p.add_argument("scenarios", nargs="+", metavar="scenario", help="scenario files (YAML), each with a name of its own")
    p.add_argument("--hours", type=_positive_hours, required=True, help="hours measured (scenario times count from their start)")
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--warmup",
        type=_hours_or_zero,
        default=None,
        help=f"steady state: hours each variant runs first, discarded (default {DEFAULT_WARMUP_H:g}: three weeks, for "
        "the reference line's 14-day aging store to fill)",
    )
    start.add_argument(
        "--store", default=None, help="from the plant's state: sqlite:PATH or influxdb[s]://[user:password@]host:port/db[?..]"
    )
    p.add_argument(
        "--at",
        type=iso_ms,
        default=None,
        help="with --store: the plant's state as of this ISO 8601 time (default: the newest reading)",
    )
    p.add_argument("--site", default=None, help="with --store: the site's topic level (default plant1)")
    p.add_argument("--prefix", default=None, help="with --store: topic prefix, one or more levels (default gigatwin)")
    p.add_argument("--replications", type=_replications, default=30, help="paired replications (default 30, at least 2)")
    p.add_argument("--seed", type=int, default=0, help="the seed of replication 0; replication i uses (seed, i) (default 0)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_workers, default=None, help="processes on this machine (default: one per core)")
    where.add_argument(
        "--scheduler", default=None, help="a Dask scheduler's address, e.g. tcp://host:8786 (needs gigatwin[dask])"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (WhatIfResult.to_dict()) instead of tables")
    p.add_argument("--report", default=None, metavar="OUT.html", help="also write one self-contained HTML page with charts")


def _fail(problems: Sequence[str], out: TextIO | None = None) -> int:
    """Print each problem on a line of its own (secrets redacted) and return exit status 2."""
    stream = out if out is not None else sys.stderr
    for problem in problems:
        print(f"{PROG}: {redact_text(problem)}", file=stream)
    return 2


def _problems(exc: Exception) -> list[str]:
    """One line per problem of a line or scenario error (``file: field: what``), else the message's lines."""
    if isinstance(exc, LineError | ScenarioError):
        return [f"{exc.source}: {path}: {msg}" for path, msg in exc.problems]
    return [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]


def _read_scenarios(paths: Sequence[str]) -> tuple[list[Scenario], dict[str, str], list[str]]:
    """The scenarios of ``paths``, their files by name, and every problem found reading them (all files are read,
    so one run names all that is wrong)."""
    scenarios: list[Scenario] = []
    files: dict[str, str] = {}
    problems: list[str] = []
    for path in paths:
        try:
            sc = read_scenario(path)
        except ScenarioError as exc:
            problems += _problems(exc)
            continue
        if sc.name == BASELINE:
            problems.append(f"{path}: name: {BASELINE!r} names the line as it is; give the scenario another name")
        elif sc.name in files:
            problems.append(f"{path}: name: {sc.name!r} is also the name of the scenario in {files[sc.name]}; names must differ")
        else:
            files[sc.name] = path
            scenarios.append(sc)
    return scenarios, files, problems


def _check_fit(
    scenarios: Sequence[Scenario], files: dict[str, str], line: Line, window_start_h: float, hours: float
) -> list[str]:
    """Every problem of applying each scenario to ``line`` for the measured window (before anything runs)."""
    problems: list[str] = []
    for sc in scenarios:
        try:
            apply_scenario(sc, line, window_start_h, hours, files[sc.name])
        except ScenarioError as exc:
            problems += _problems(exc)
    return problems


class _Progress:
    """Replications done, on stderr: a rich progress bar on a terminal, else a plain line every 10 %."""

    def __init__(self, total: int, label: str, stream: TextIO) -> None:
        self.total = total
        self.label = label
        self.stream = stream
        self.began = time.perf_counter()
        self._next_share = 0.1
        self._bar: Any = None
        self._task: Any = None

    @contextlib.contextmanager
    def shown(self) -> Iterator[Callable[[int, int], None]]:
        """The callback ``progress(done, total)`` for ``twin.whatif.compare``, while the bar is shown."""
        if self.stream.isatty():
            # loaded here: only a terminal shows the bar, and the other commands need not import it
            from rich import progress as rp
            from rich.console import Console

            columns = (
                rp.TextColumn("{task.description}"),
                rp.BarColumn(),
                rp.MofNCompleteColumn(),
                rp.TimeElapsedColumn(),
                rp.TimeRemainingColumn(),
            )
            with rp.Progress(*columns, console=Console(file=self.stream), transient=False) as bar:
                self._bar = bar
                self._task = bar.add_task(self.label, total=self.total)
                yield self.update
            self._bar = None
            return
        yield self.update

    def update(self, done: int, total: int) -> None:
        """``done`` of ``total`` replications have finished."""
        if self._bar is not None:
            self._bar.update(self._task, completed=done)
            return
        share = done / total if total else 1.0
        if share + 1e-9 >= self._next_share or done == total:
            print(
                f"{PROG}: {done}/{total} replications ({share:.0%}), {time.perf_counter() - self.began:.1f} s",
                file=self.stream,
                flush=True,
            )
            while self._next_share <= share + 1e-9:
                self._next_share += 0.1


def difference_text(delta: dict[str, float], unit: str, factor: float = 1.0) -> str:
    """``+41 ± 12 good units/h: significant``: a difference with its paired 95 % half-width, unit and verdict."""
    mean, ci = delta["mean"] * factor, delta["ci95"] * factor
    if math.isnan(mean):
        return "—: not measured"
    d = decimals(ci, mean)
    ci_text = "—" if math.isnan(ci) else number(ci, d)
    return f"{number(mean, d, sign=True)} ± {ci_text} {unit}: {verdict(mean, ci)}"


def _value(kpis: dict[str, Any], key: str, factor: float) -> float:
    value = kpis.get(key)
    if isinstance(value, dict):
        value = value.get("mean")
    return float("nan") if value is None else float(value) * factor


def _station_value(kpis: dict[str, Any], line: Line, sid: str, key: str, factor: float) -> float:
    st = kpis["stations"][sid]
    if key == "down_h":
        spec = line.station(sid)
        units = spec.machines if spec.kind == "process" else 1
        return float(st["state_fractions"].get("down", 0.0)) * units * float(kpis["hours"])
    return float(st[key]) * factor


def _votes(votes: dict[str, int], n: int) -> str:
    return ", ".join(f"{sid} {k}/{n}" for sid, k in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])))


def _pairing(delta: dict[str, float], unit: str) -> str:
    paired, unpaired = delta["ci95"], delta["ci95_unpaired"]
    if math.isnan(paired) or math.isnan(unpaired):
        return "pairing: not measured (no good output in some replications)"
    d = decimals(min(paired, unpaired) if paired > 0 else unpaired, delta["mean"])
    if paired > 0:
        return (
            f"pairing: the paired interval of good output is {unpaired / paired:.1f} times narrower than the unpaired one "
            f"(± {number(paired, d)} against ± {number(unpaired, d)} {unit}: ci95_unpaired / ci95)"
        )
    if unpaired > 0:
        return (
            f"pairing: every replication's difference in good output is the same: paired interval ± 0 against "
            f"± {number(unpaired, d)} {unit} unpaired"
        )
    return "pairing: no spread in good output, paired or not"


_LABEL = 30
"""Width of the figure column in the tables."""


def _row(label: str, unit: str, factor: float, baseline: float, scenario: float, delta: dict[str, float], indent: int = 2) -> str:
    """One figure of a scenario's table: its baseline and scenario means, the difference and the verdict."""
    places = decimals(delta["ci95"] * factor, baseline)
    shown_unit = "%" if unit == "points" else unit.removeprefix("good ")
    label = " " * (indent - 2) + label
    return (
        f"  {label + ' (' + shown_unit + ')':<{_LABEL}}{number(baseline, places):>12}{number(scenario, places):>12}   "
        f"{difference_text(delta, unit, factor)}"
    )


def whatif_table(
    result: dict[str, Any], line: Line, *, start_text: str, files: dict[str, str], compute_s: float | None = None
) -> str:
    """The readable tables of a what-if (``result`` is ``WhatIfResult.to_dict()``): per scenario each line figure
    and the stations whose differences are significant, each difference with its paired 95 % half-width and a
    verdict in words; the bottleneck's votes; what the pairing saved on good output."""
    n = result["replications"]
    base = result["baseline"]
    took = "" if compute_s is None else f", {compute_s:.1f} s"
    tp = base["throughput_per_hour"]
    d = decimals(tp["ci95"], tp["mean"])
    rows = [
        f"what-if of {result['line']} (config {result['config_hash']}, parameters {result['parameters']}): {n} paired "
        f"replications, seed {result['seed']}{took}",
        start_text,
        f"baseline: {number(tp['mean'], d)} ± {number(tp['ci95'], d)} good units/h (95 % interval); "
        f"bottleneck {_votes(base['bottleneck_votes'], n)}",
    ]
    for name, sc in result["scenarios"].items():
        kpis, delta = sc["kpis"], sc["delta"]
        rows += ["", f"scenario {name} ({sc['scenario_hash']}, {files.get(name, '')})"]
        if sc["description"]:
            rows.append(f"  {sc['description']}")
        rows.append(f"  {'figure':<{_LABEL}}{'baseline':>12}{'scenario':>12}   difference (paired 95 %): verdict")
        for key, label, unit, factor in LINE_FIGURES:
            rows.append(_row(label, unit, factor, _value(base, key, factor), _value(kpis, key, factor), delta[key]))
        station_rows = []
        for sid, figs in delta["stations"].items():
            for key, label, unit, factor in STATION_FIGURES:
                if verdict(figs[key]["mean"], figs[key]["ci95"]) == "significant":
                    b = _station_value(base, line, sid, key, factor)
                    s = _station_value(kpis, line, sid, key, factor)
                    station_rows.append(_row(f"{sid} {label}", unit, factor, b, s, figs[key], indent=4))
        if station_rows:
            rows += ["  stations whose differences are significant:", *station_rows]
        else:
            rows.append("  no station's difference is significant")
        rows.append(f"  bottleneck: baseline {_votes(base['bottleneck_votes'], n)}; scenario {_votes(sc['bottleneck_votes'], n)}")
        rows.append("  " + _pairing(delta["throughput_per_hour"], "good units/h"))
    return "\n".join(rows)


def _plant_starts(
    args: argparse.Namespace, line: Line, scenarios: Sequence[Scenario], files: dict[str, str]
) -> tuple[list[LineSnapshot], str, str] | list[str]:
    """From ``--store``: one starting state per replication drawn from the plant's telemetry as of ``--at`` (or its
    newest reading), the instant as ISO text and where the runs start in words; or the problems that prevent it."""
    try:
        store = open_store(args.store)
    except (TwinError, ValueError, ConnectorError) as exc:
        return [f"--store: {m}" for m in _problems(exc)]
    try:
        topics = Topics(args.prefix or "gigatwin", args.site or "plant1", line.name)
        at_ms = args.at if args.at is not None else line_clock_ms(store, topics)
        if at_ms is None:
            return [f"--store: holds no telemetry of line {line.name!r} (site {topics.site!r})"]
        as_of = hours_to_iso(at_ms / MS_PER_HOUR)
        problems = _check_fit(scenarios, files, line, at_ms / MS_PER_HOUR, args.hours)
        if problems:
            return problems
        lookback = default_lookback_h(line)
        print(f"{PROG}: reading {lookback:g} h of telemetry up to {as_of}", file=sys.stderr, flush=True)
        began = time.perf_counter()
        asof = knowledge_as_of(store, topics, line, at_ms, lookback)
        starts = starts_from(line, asof.knowledge, args.replications, args.seed, args.hours)
        print(
            f"{PROG}: {asof.replay.readings:,} readings and {args.replications} starting states in "
            f"{time.perf_counter() - began:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    finally:
        store.close()
    text = (
        f"from the plant's state as of {as_of} ({asof.replay.readings:,} readings of {lookback:g} h), "
        f"{args.hours:g} h measured from then"
    )
    return starts, as_of, text


def run_whatif(args: argparse.Namespace) -> int:
    """Run ``gigatwin whatif``; returns the exit status."""
    began = time.perf_counter()
    problems: list[str] = []
    try:
        line = read_line(args.line)
    except LineError as exc:
        return _fail(_problems(exc))
    scenarios, files, problems = _read_scenarios(args.scenarios)
    if args.store is None:
        for option in ("at", "site", "prefix"):
            if getattr(args, option) is not None:
                problems.append(f"--{option}: only with --store (the plant's state is read from a store)")
    warmup = DEFAULT_WARMUP_H if args.warmup is None else args.warmup
    if args.store is None:
        problems += _check_fit(scenarios, files, line, warmup, args.hours)
    if problems:
        return _fail(problems)
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    starts: list[LineSnapshot] | None = None
    as_of: str | None = None
    start_text = f"steady state: each variant warmed up {warmup:g} h, then {args.hours:g} h measured"
    label = f"{len(scenarios)} scenario(s) + baseline, {args.replications} replications"
    try:
        with open_executor(workers, args.scheduler) as executor:
            if isinstance(executor, ProcessPoolExecutor):
                # the pool's processes start (and import) while this one reads the store, not after
                for _ in range(workers):
                    executor.submit(int)
            if args.store is not None:
                plant = _plant_starts(args, line, scenarios, files)
                if isinstance(plant, list):
                    return _fail(plant)
                starts, as_of, start_text = plant
            with _Progress(args.replications, label, sys.stderr).shown() as progress:
                result = compare(
                    line,
                    scenarios,
                    args.hours,
                    warmup=warmup,
                    replications=args.replications,
                    seed=args.seed,
                    starts=starts,
                    executor=executor,
                    progress=progress,
                    source=lambda sc: files[sc.name],
                )
    except (TwinError, ValueError, ConnectorError) as exc:
        return _fail(_problems(exc))
    compute_s = time.perf_counter() - began
    out = result.to_dict()
    if args.report is not None:
        context = ReportContext(
            line_file=str(args.line),
            files=files,
            start_text=start_text,
            as_of=as_of,
            command=PROG + " " + shlex.join(_argv_shown(args)),
            compute_s=compute_s,
        )
        try:
            Path(args.report).write_text(render_report(result, context), encoding="utf-8")
        except OSError as exc:
            return _fail([f"--report: {args.report}: cannot write: {exc.strerror or exc}"])
        print(f"{PROG}: report written to {args.report}", file=sys.stderr)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(whatif_table(out, line, start_text=start_text, files=files, compute_s=compute_s))
    return 0


def _argv_shown(args: argparse.Namespace) -> list[str]:
    """The command's arguments as given, for the report (the store's secrets redacted)."""
    shown = [str(args.line), *args.scenarios, "--hours", f"{args.hours:g}"]
    if args.store is not None:
        shown += ["--store", redact_text(args.store)]
        if args.at is not None:
            shown += ["--at", hours_to_iso(args.at / 3_600_000)]
        if args.site is not None:
            shown += ["--site", args.site]
        if args.prefix is not None:
            shown += ["--prefix", args.prefix]
    elif args.warmup is not None:
        shown += ["--warmup", f"{args.warmup:g}"]
    shown += ["--replications", str(args.replications), "--seed", str(args.seed)]
    if args.scheduler is not None:
        shown += ["--scheduler", args.scheduler]
    elif args.workers is not None:
        shown += ["--workers", str(args.workers)]
    return shown
