"""What-if speed: one scenario against the baseline from the live reference line, on a process pool and on Dask.

    .venv/bin/python simulations/bench/bench_whatif.py [--replications 100] [--hours 8] [--workers 2] [--repeat 3]
                                                        [--no-dask] [--profile]

The line is warmed up from empty for 504 h with a ``twin.knowledge.KnowledgeBuilder`` taking its events (what a
live service knows after watching it that long; as ``bench_forecast.py`` does), then a what-if "from now": the
calender of the cathode branch (CALSLIT_C) down for 4 h from now, against the baseline, ``--replications`` paired
replications of ``--hours`` from starting states drawn from the knowledge (``twin.whatif.starts_from``):

1. the baseline: the engine alone (no observer) running the horizon from the engine's own snapshot, per run (the
   best of a few), in this process; a what-if runs it twice per replication (baseline and scenario);
2. ``twin.whatif.compare`` in this process on a tenth of the replications: seconds per replication and the ratio to
   twice the bare engine's;
3. the full what-if (drawing the starting states, then ``compare``) on a forkserver pool of ``--workers`` processes
   and on a local Dask cluster of as many single-threaded worker processes (loopback, no dashboard), each made by
   ``connectors.executors.open_executor`` as the CLI makes them: the first run with the pool's start (what one
   ``gigatwin whatif`` pays; on Dask, the client's connection to the running cluster and the workers' first
   imports), then ``--repeat`` runs on the warm one (median), and the ideal: twice the
   bare engine's time per replication x replications / workers. Wall times, and the CPU time of every process
   involved (this one, the pool's workers, the cluster's nannies and workers): on this shared machine a wall time
   includes waiting for a core, so the load average is printed too. Times per replication are CPU times.

Issue 14's target: 100 paired replications of 8 h in under 10 s on 2 cores (moonshot 3 s). A benchmark, not a
test: nothing here asserts. ``--profile``: a cProfile of ``compare`` in this process (the top functions by own
time) instead of the timings.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pickle
import pstats
import statistics
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from connectors.executors import open_executor
from connectors.linefile import read_line
from twin.engine import Engine
from twin.knowledge import KnowledgeBuilder
from twin.scenario import load_scenario_data
from twin.schema import Line
from twin.snapshot import LineSnapshot
from twin.whatif import compare, starts_from

REFERENCE = Path(__file__).resolve().parents[1] / "lines" / "reference_cell_line.yaml"
SCENARIO = load_scenario_data(
    {
        "name": "calender_down_4h",
        "description": "The cathode calender goes down now for four hours (a roll change)",
        "changes": [{"station": "CALSLIT_C", "down": {"at": 0, "for": "4h", "reason": "roll_change"}}],
    },
    "bench_whatif",
)


def _cpu_s() -> float:
    """CPU seconds used so far by this process and every process under it (pool workers, Dask nannies and workers)."""
    import psutil  # distributed's dependency: installed with the dask extra

    total = 0.0
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def _whatif(
    line: Line, knowledge: Any, args: argparse.Namespace, executor: Executor | None, seed: int
) -> tuple[float, float, Any]:
    """One what-if from now as the CLI runs it (draw the starting states, compare): its wall time, the CPU time of
    every process, and its result."""
    cpu = _cpu_s()
    started = time.perf_counter()
    starts = starts_from(line, knowledge, args.replications, seed, args.hours)
    result = compare(line, [SCENARIO], args.hours, replications=args.replications, seed=seed, starts=starts, executor=executor)
    return time.perf_counter() - started, _cpu_s() - cpu, result


def _on(line: Line, knowledge: Any, args: argparse.Namespace, workers: int, scheduler: str | None) -> dict[str, Any]:
    """The what-if on an executor made as the CLI makes it: the first run with its start, then warm runs."""
    started = time.perf_counter()
    with open_executor(workers, scheduler) as executor:
        first_s = time.perf_counter() - started
        t, _, result = _whatif(line, knowledge, args, executor, seed=1)
        first_s += t
        runs = [_whatif(line, knowledge, args, executor, seed=2)[:2] for _ in range(args.repeat)]
    deltas = result.deltas[SCENARIO.name]
    good, cal = deltas["good"], deltas["CALSLIT_C.throughput_per_hour"]
    return {
        "first run with the executor's start, s": round(first_s, 2),
        "warm runs, wall s": [round(w, 2) for w, _ in runs],
        "warm runs, CPU s of all processes": [round(c, 1) for _, c in runs],
        "warm median, s": round(statistics.median(w for w, _ in runs), 2),
        "load average (1 min) after": round(os.getloadavg()[0], 1),
        "good cells, scenario - baseline (paired ci95; unpaired)": (
            f"{good.mean:+.0f} +/- {good.ci95:.0f}; +/- {good.ci95_unpaired:.0f}"
        ),
        "CALSLIT_C per hour, scenario - baseline": f"{cal.mean:+.1f} +/- {cal.ci95:.1f}; +/- {cal.ci95_unpaired:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=100)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=504.0)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs on each executor (default 3)")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask cluster")
    parser.add_argument("--profile", action="store_true", help="profile compare in this process instead")
    args = parser.parse_args()
    line = read_line(REFERENCE)

    t0 = time.perf_counter()
    engine = Engine(line, 3)
    builder = KnowledgeBuilder(line, 0.0)
    builder.attach(engine)
    engine.run(args.warmup)
    knowledge = builder.at(args.warmup)
    snapshot: LineSnapshot = engine.snapshot()
    setup_s = time.perf_counter() - t0

    if args.profile:
        starts = starts_from(line, knowledge, 10, 0, args.hours)
        profiler = cProfile.Profile()
        profiler.enable()
        compare(line, [SCENARIO], args.hours, replications=10, seed=0, starts=starts)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return

    # CPU time in this process (this shared machine's wall times include waiting for a core), the least of a few
    bare = []
    for i in range(5):
        e = Engine(line, (99, i), snapshot)
        started = time.process_time()
        e.run(args.warmup + args.hours)
        bare.append(time.process_time() - started)
    bare_s = min(bare)

    n1 = max(4, args.replications // 10)  # in this process: a tenth of them is enough for the per-replication cost
    started = time.process_time()
    starts = starts_from(line, knowledge, n1, 0, args.hours)
    draw_s = (time.process_time() - started) / n1
    started = time.process_time()
    compare(line, [SCENARIO], args.hours, replications=n1, seed=0, starts=starts)
    one_s = (time.process_time() - started) / n1
    job_bytes = len(pickle.dumps(starts[0])) + 2 * len(pickle.dumps(line))

    out: dict[str, Any] = {
        f"setup_s ({args.warmup:g} h with the knowledge builder)": round(setup_s, 1),
        "load average (1 min) before": round(os.getloadavg()[0], 1),
        "bare engine CPU s per run": round(bare_s, 4),
        "drawing a starting state, CPU s per replication": round(draw_s, 4),
        "what-if CPU s per replication (baseline + scenario), 1 process": round(one_s, 4),
        "ratio to 2 bare engine runs": round(one_s / (2 * bare_s), 2),
        "a task's pickled size, bytes (snapshot + 2 lines)": job_bytes,
        f"ideal on {args.workers} free cores (2 bare runs x {args.replications} / {args.workers}), s": round(
            2 * bare_s * args.replications / args.workers, 2
        ),
        f"process pool of {args.workers}": _on(line, knowledge, args, args.workers, None),
    }
    if not args.no_dask:
        import distributed

        with distributed.LocalCluster(
            n_workers=args.workers, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        ) as cluster:
            out[f"local Dask cluster of {args.workers}"] = _on(line, knowledge, args, 1, cluster.scheduler_address)
        pool = out[f"process pool of {args.workers}"]["warm median, s"]
        dask = out[f"local Dask cluster of {args.workers}"]["warm median, s"]
        out["Dask / pool (warm medians)"] = round(dask / pool, 2)
    out["target s"] = 10.0
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
