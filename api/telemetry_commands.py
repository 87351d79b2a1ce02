"""``gigatwin feed`` and ``gigatwin ingest``: the virtual plant and the consumer, run in the foreground until stopped."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from api.ingest_workers import ingest_overrides, run_workers
from api.runtime import build_runtime
from api.settings import PipelineSettings, Settings, SettingsError, load_pipeline_settings
from connectors.errors import ConnectorError
from connectors.feed import Faults, VirtualPlant, parse_origin, warm_start
from connectors.linefile import read_line
from connectors.mqtt import MqttPublisher, parse_mqtt_url
from connectors.redact import redact_text
from connectors.telemetry import Topics
from twin.errors import TwinError

__all__ = ["FEED_WARMUP_H", "REFERENCE_LINE", "run_feed", "run_ingest"]

REFERENCE_LINE = Path(__file__).resolve().parent.parent / "simulations" / "lines" / "reference_cell_line.yaml"
FEED_WARMUP_H: float = Settings.model_fields["demo_warmup_hours"].default
"""``gigatwin feed --warmup``'s default: the demo's warm-up, so a stand-alone feed starts as full as the demo."""


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _fail(message: str) -> int:
    print(f"gigatwin: {redact_text(message)}", file=sys.stderr)  # errors quote URLs, with their passwords
    return 2


def run_feed(args: argparse.Namespace) -> int:
    """Publish the virtual plant's telemetry until stopped (SIGINT/SIGTERM) or ``--hours`` of simulated time.

    It first announces how its source clock relates to the wall clock (in words, and as one ``clock {json}`` line),
    then prints a ``status {json}`` line every ``--status-every`` seconds with the current lead over the wall clock.
    Exits 0 when stopped or done, 1 if publishing failed, 2 on bad arguments.
    """
    try:
        line = read_line(args.line)
        topics = Topics(args.prefix, args.site, line.name)
        publisher = MqttPublisher(parse_mqtt_url(args.mqtt))
        faults = Faults(
            drop=args.drop,
            duplicate=args.duplicate,
            reorder=args.reorder,
            malformed=args.malformed,
            clock_skew_s=args.clock_skew,
            seed=args.seed,
        )
        parse_origin(args.origin, 0)  # a mistake is reported before a long warm-up, not after
        if args.warmup > 0:
            print(f"gigatwin feed: warming {line.name} up for {args.warmup:g} simulated hours", flush=True)
        start = warm_start(line, args.seed, args.warmup)
        # the origin is taken after the warm-up, so that "now" and "-7d" mean from the feed's start
        origin_ms = parse_origin(args.origin, round(time.time() * 1000))
        plant = VirtualPlant(
            line,
            topics=topics,
            publisher=publisher,
            speed=args.speed,
            seed=args.seed,
            origin_ms=origin_ms,
            start=start,
            faults=faults,
        )
        publisher.start()
    except (TwinError, ConnectorError, ValueError) as exc:
        return _fail(str(exc))
    stop = _stop_on_signals()
    print(f"gigatwin feed: {line.name} at x{args.speed:g} to {publisher.config.address} under {topics.base}/", flush=True)
    run_s = args.hours * 3600 / args.speed if args.hours is not None else None
    clock = plant.feed_clock()
    for sentence in clock.describe(run_s):
        print(f"gigatwin feed: {sentence}", flush=True)
    print("clock " + json.dumps(clock.as_dict(run_s)), flush=True)

    failed: list[BaseException] = []

    def work() -> None:
        try:
            plant.run(stop=stop, until_h=args.hours)
        except Exception as exc:  # reported by the main thread, which then exits non-zero
            failed.append(exc)
        finally:
            stop.set()

    # The paced run sleeps, so it runs in a worker thread; the main thread handles signals and prints the status.
    worker = threading.Thread(target=work, name="feed", daemon=True)
    worker.start()
    next_status = time.monotonic() + args.status_every
    try:
        while not stop.wait(0.2):
            if args.status_every > 0 and time.monotonic() >= next_status:
                next_status += args.status_every
                print("status " + json.dumps(_feed_status(plant)), flush=True)
        worker.join()
    finally:
        publisher.stop()
    print("final " + json.dumps(_feed_status(plant)), flush=True)
    print(f"gigatwin feed: published {publisher.published} messages, {publisher.acknowledged} acknowledged", flush=True)
    if failed:
        print(f"gigatwin feed: the feed stopped: {failed[0]}", file=sys.stderr)
        return 1
    return 0


def _feed_status(plant: VirtualPlant) -> dict[str, object]:
    stats = plant.stats()
    return {
        "messages": sum(stats.messages.values()),
        "simulated_h": round(stats.simulated_h, 4),
        "lead_s": round(stats.lead_s, 1),
        "lag_s": round(stats.lag_s, 3),
        "late_slices": stats.late_slices,
    }


def run_ingest(args: argparse.Namespace) -> int:
    """Consume a line's telemetry into the store until stopped (SIGINT/SIGTERM), printing a status line now and then.

    The service without HTTP: the settings of ``gigatwin serve`` (``GIGATWIN_*``, ``.env``, the config file), the
    options first, built and supervised by the same runtime. Exits 0 when stopped by a signal, 1 when the pipeline
    stopped for good (the last error on stderr), 2 on bad settings or an unreachable broker at start.
    With ``--workers N`` (> 1) it runs N such processes on one shared subscription instead (:mod:`api.ingest_workers`).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = load_pipeline_settings(**ingest_overrides(args))
    except SettingsError as exc:
        print(f"gigatwin ingest: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    if args.workers > 1:
        return run_workers(args, settings)
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    stop = _stop_on_signals()
    try:
        return _ingest_until_stopped(settings, stop, args.status_every)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def _ingest_until_stopped(settings: PipelineSettings, stop: threading.Event, status_every: float) -> int:
    try:
        runtime = build_runtime(settings)
    except (TwinError, ConnectorError, ValueError) as exc:
        return _fail(str(exc))
    try:
        runtime.start(require_source=True, timeout_s=10.0)
    except ConnectorError as exc:
        runtime.stop()
        return _fail(str(exc))
    print(f"gigatwin ingest: {runtime.describe()}", flush=True)
    next_status = time.monotonic() + status_every
    while not stop.wait(0.2) and not runtime.failed.is_set():
        if status_every > 0 and time.monotonic() >= next_status:
            next_status += status_every
            print("status " + json.dumps(runtime.ingest.stats.as_dict()), flush=True)
    runtime.stop()
    print("final " + json.dumps(runtime.ingest.stats.as_dict()), flush=True)
    failures = runtime.failures()
    if failures:
        for task in failures:
            # what the task died of, not the pipeline's last per-message note (which may be empty)
            print(f"gigatwin ingest: the {task.name} task stopped for good: {redact_text(task.last_error)}", file=sys.stderr)
        return 1
    return 0
