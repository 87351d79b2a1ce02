"""Forecast speed: replications of the warm reference line from what its telemetry knows, against the bare engine.

    .venv/bin/python simulations/bench/bench_forecast.py [--replications 200] [--horizon 8] [--workers 2] [--repeat 5]

The line is warmed up from empty for 504 h with a ``twin.knowledge.KnowledgeBuilder`` taking its events (what a
live service knows after watching it that long), then:

1. the baseline: the engine alone (no observer) running the horizon from the engine's own snapshot, per replication
   (the best of a few runs), in this process;
2. ``twin.forecast.forecast`` of ``--replications`` replications from the knowledge, in this process (1 worker)
   and in a forkserver pool of ``--workers`` processes: wall time, seconds per replication and the ratio of its
   per-replication CPU (1 worker) to the baseline's.

Issue 11's target: 200 replications of 8 h in under 5 s on 2 cores (moonshot 1 s). A benchmark, not a test:
nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from connectors.linefile import read_line
from twin.engine import Engine
from twin.forecast import CHUNK, forecast
from twin.knowledge import KnowledgeBuilder

REFERENCE = Path(__file__).resolve().parents[1] / "lines" / "reference_cell_line.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--horizon", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=504.0)
    parser.add_argument("--repeat", type=int, default=5, help="times the pooled forecast is run (default 5)")
    args = parser.parse_args()
    line = read_line(REFERENCE)

    t0 = time.perf_counter()
    engine = Engine(line, 3)
    builder = KnowledgeBuilder(line, 0.0)
    builder.attach(engine)
    engine.run(args.warmup)
    knowledge = builder.at(args.warmup)
    snapshot = engine.snapshot()
    setup_s = time.perf_counter() - t0

    bare = []
    for i in range(5):
        e = Engine(line, (99, i), snapshot)
        started = time.perf_counter()
        e.run(args.warmup + args.horizon)
        bare.append(time.perf_counter() - started)
    bare_s = min(bare)

    n1 = max(8, args.replications // 10)  # in this process: a tenth of them is enough for the per-replication cost
    started = time.perf_counter()
    forecast(line, knowledge, args.horizon, replications=n1, seed=1)
    one_s = (time.perf_counter() - started) / n1

    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        # start the workers, each with a chunk of its own (a worker imports and warms up on its first chunk: a
        # second; the service's pool is warm after its first refresh)
        forecast(line, knowledge, 1.0, replications=2 * args.workers * CHUNK, seed=0, executor=pool)
        times = []
        for _ in range(args.repeat):  # the same forecast again: the spread is the machine's
            started = time.perf_counter()
            f = forecast(line, knowledge, args.horizon, replications=args.replications, seed=2, executor=pool)
            times.append(time.perf_counter() - started)
        pool_s = statistics.median(times)

    print(
        json.dumps(
            {
                "setup_s (504 h with the knowledge builder)": round(setup_s, 1),
                "bare engine s per replication": round(bare_s, 4),
                "forecast s per replication, 1 process": round(one_s, 4),
                "ratio to the bare engine": round(one_s / bare_s, 2),
                f"{args.replications} replications of {args.horizon:g} h on {args.workers} workers, s (median)": round(pool_s, 2),
                "each run, s": [round(t, 2) for t in times],
                "target s": 5.0,
                "good_output": {k: round(v) for k, v in f.good_output.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
