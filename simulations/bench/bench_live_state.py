"""The live state's memory and speed over 48 hours of history, against the old representation in the same run.

    .venv/bin/python simulations/bench/bench_live_state.py [--hours 48] [--dense 10]

1. The reference line, warmed up for a week, runs ``--hours`` more; its engine events are recorded, then fed to a
   ``LiveStatePublisher`` over a ``LiveLine`` (48 h of history) publishing every 1,000 events (what the pipeline
   does per batch): events/s, and the live state's memory (tracemalloc, everything it allocated and still holds).
   The same events held the old way (a list of the event tuples, what the history was) are measured beside it.
2. ``kpis()`` over the whole history (a 48-h ``/oee``), best of 3.
3. ``shift_kpis()`` after one event 30 minutes late (what the pipeline computes when it publishes next), against
   the same query replayed from the history's start (what a late event used to cost: the whole history).
4. Dense telemetry: every event repeated ``--dense`` times (heartbeats, repeated counts), the history's
   memory against the list of tuples, and the count bound (``max_events``) holding.
A benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from api.live import LiveStatePublisher
from connectors.linefile import read_line
from twin.engine import Engine
from twin.events import Event, MachineState, StateChanged
from twin.history import KPI_EVENTS
from twin.kpis import initial_wip
from twin.state import LiveLine

REFERENCE = Path(__file__).resolve().parents[1] / "lines" / "reference_cell_line.yaml"
MB = 1024 * 1024


def best_of(n: int, fn: Callable[[], object]) -> float:
    """The shortest of ``n`` wall times of ``fn()``, in seconds."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def traced(build: Callable[[], object]) -> tuple[object, float]:
    """What ``build()`` returns and the MB it allocated and still holds."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return kept, (after - before) / MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=48.0, help="hours of history fed (default 48)")
    parser.add_argument("--warmup", type=float, default=168.0, help="hours the line runs before (default a week)")
    parser.add_argument("--dense", type=int, default=10, help="times each event is repeated in the dense case")
    args = parser.parse_args()

    line = read_line(REFERENCE)
    engine = Engine(line, 1)
    events: list[Event] = []
    engine.subscribe(lambda ev: events.append(ev) if ev[0] >= args.warmup else None)
    engine.run(args.warmup)
    wip0 = initial_wip(engine.snapshot())
    engine.run(args.warmup + args.hours)
    begin = args.warmup
    print(f"reference line, {args.hours:g} h after a {args.warmup:g}-h warm-up: {len(events):,} engine events")

    def feed(batch: int = 1000) -> LiveStatePublisher:
        live = LiveLine(line, begin_h=begin, wip0=wip0, history_h=48.0)
        publisher = LiveStatePublisher(live)
        for i, ev in enumerate(events, 1):
            publisher(ev)
            if i % batch == 0:
                publisher.end_batch()
        publisher.end_batch()
        return publisher

    seconds = best_of(3, feed)
    publisher, mb = traced(feed)
    assert isinstance(publisher, LiveStatePublisher)
    live = publisher.live
    kept = [ev for ev in events if isinstance(ev, KPI_EVENTS)]
    _, list_mb = traced(lambda: list(kept))  # the old history: the same tuples, held by a list
    # what the tuples cost on their own (the list above shares them with `events`): one fresh copy of each
    _, tuples_mb = traced(lambda: [type(ev)(*ev) for ev in kept])
    status = live.status()
    print(
        f"  feed (publishing every 1,000 events): {len(events) / seconds:,.0f} events/s; "
        f"retained {status.retained_events:,} events"
    )
    print(
        f"  live state memory: {mb:.1f} MB in all (history columns {live._history.nbytes() / MB:.1f} MB)"  # type: ignore[union-attr]
        f"; the old history, a list of the same tuples: {tuples_mb:.1f} MB (list {list_mb:.1f} MB)"
    )

    clock = live.clock_h
    start = live.history_start_h
    assert clock is not None
    assert start is not None
    whole = best_of(3, lambda: live.kpis(start, clock))
    print(f"  kpis() over the whole history ({clock - start:.1f} h): {whole * 1000:.1f} ms")

    live.shift_kpis()
    first = line.stations[0].id

    def after_late() -> None:
        live(StateChanged(clock - 0.5, first, 0, MachineState.DOWN, "late"))
        live.build_checkpoints()
        live.shift_kpis()

    late_s = best_of(3, after_late)
    print(
        f"  shift_kpis() after an event 30 min late (checkpoints rebuilt, shift reducer replayed): {late_s * 1000:.1f} ms; "
        f"the whole history's replay, what a late event used to cost: {whole * 1000:.1f} ms ({whole / late_s:.1f}x)"
    )

    # dense telemetry: every event repeated, within a count bound
    dense = [ev for ev in events for _ in range(args.dense)]
    bound = 2_000_000

    def feed_dense() -> LiveLine:
        d = LiveLine(line, begin_h=begin, wip0=wip0, history_h=48.0, max_events=bound)
        for ev in dense:
            d(ev)
        return d

    dense_s = best_of(1, feed_dense)
    dense_live, dense_mb = traced(feed_dense)
    assert isinstance(dense_live, LiveLine)
    kept_dense = [ev for ev in dense if isinstance(ev, KPI_EVENTS)]
    _, dense_tuples_mb = traced(lambda: [type(ev)(*ev) for ev in kept_dense])
    ds = dense_live.status()
    print(
        f"dense x{args.dense}: {len(kept_dense):,} KPI events at {len(kept_dense) / dense_s:,.0f} events/s (no publisher); "
        f"retained {ds.retained_events:,} (bound {bound:,}, trimmed {ds.trimmed_events:,}); "
        f"live state {dense_mb:.1f} MB against {dense_tuples_mb:.1f} MB of tuples the old way "
        f"({dense_tuples_mb / dense_mb:.1f}x), and objects for the GC to walk: none per event"
    )


if __name__ == "__main__":
    main()
