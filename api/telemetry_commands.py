"""``gigatwin feed`` and ``gigatwin ingest``: the virtual plant and the consumer, run in the foreground until stopped."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType

from api.ingest_service import IngestService, IngestSettings, default_client_id
from api.settings import Settings
from connectors.errors import ConnectorError
from connectors.feed import Faults, VirtualPlant, parse_origin, warm_start
from connectors.linefile import read_line
from connectors.mqtt import MqttPublisher, parse_mqtt_url
from connectors.stores import open_store
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
    print(f"gigatwin: {message}", file=sys.stderr)
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
    """Consume a line's telemetry into the store until stopped (SIGINT/SIGTERM), printing a status line now and then."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        line = read_line(args.line)
        topics = Topics(args.prefix, args.site, line.name)
        mqtt = parse_mqtt_url(args.mqtt)
        # --client-id wins over the URL's client_id, which wins over the default for this line, group and host.
        mqtt = replace(mqtt, client_id=args.client_id or mqtt.client_id or default_client_id(line.name, args.group))
        store = open_store(args.store, spool_dir=args.spool_dir)
        service = IngestService(line, store, IngestSettings(mqtt=mqtt, topics=topics, share_group=args.group))
        service.start()
    except (TwinError, ConnectorError, ValueError) as exc:
        return _fail(str(exc))
    stop = _stop_on_signals()
    print(
        f"gigatwin ingest: {topics.subscription(args.group)} from {mqtt.address} as {mqtt.client_id} into {args.store}",
        flush=True,
    )
    next_status = time.monotonic() + args.status_every
    while not stop.wait(0.2):
        if not service.alive:
            print("gigatwin ingest: the pipeline stopped: " + service.ingest.stats.last_error, file=sys.stderr)
            break
        if args.status_every > 0 and time.monotonic() >= next_status:
            next_status += args.status_every
            print("status " + json.dumps(service.ingest.stats.as_dict()), flush=True)
    service.stop()
    print("final " + json.dumps(service.ingest.stats.as_dict()), flush=True)
    return 0
