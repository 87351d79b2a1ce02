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
from connectors.errors import ConnectorError
from connectors.feed import Faults, VirtualPlant
from connectors.linefile import read_line
from connectors.mqtt import MqttPublisher, parse_mqtt_url
from connectors.stores import open_store
from connectors.telemetry import Topics
from twin.errors import TwinError

__all__ = ["REFERENCE_LINE", "run_feed", "run_ingest"]

REFERENCE_LINE = Path(__file__).resolve().parent.parent / "simulations" / "lines" / "reference_cell_line.yaml"


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
    """Publish the virtual plant's telemetry until stopped (SIGINT/SIGTERM) or ``--hours`` of simulated time."""
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
        plant = VirtualPlant(line, topics=topics, publisher=publisher, speed=args.speed, seed=args.seed, faults=faults)
        publisher.start()
    except (TwinError, ConnectorError, ValueError) as exc:
        return _fail(str(exc))
    stop = _stop_on_signals()
    print(f"gigatwin feed: {line.name} at x{args.speed:g} to {publisher.config.address} under {topics.base}/", flush=True)
    try:
        plant.run(stop=stop, until_h=args.hours)
    finally:
        publisher.stop()
    print(f"gigatwin feed: published {publisher.published} messages, {publisher.acknowledged} acknowledged", flush=True)
    return 0


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
