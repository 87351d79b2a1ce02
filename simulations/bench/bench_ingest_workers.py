"""Ingest on several processes: `gigatwin ingest --workers N` against one worker, in the same run, nothing lost.

    .venv/bin/python simulations/bench/bench_ingest_workers.py [--messages 100000] [--workers 2]

Starts its own mosquitto (the shipped configuration) and influxd on free loopback ports. For each case (1 worker,
then N) the command itself is run once briefly so that its persistent sessions on the shared subscription exist,
then the virtual plant's message mix is published while it is away (the broker holds the backlog), then the same
command is started again and timed from its first message taken to the last, from its summed ``status`` lines.
Each case writes its own InfluxDB database, and every point is counted back: nothing lost, nothing twice. Process
start-up (imports, the rebuild from the store) is not in the time. A benchmark, not a test: it prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from connectors.mqtt import MqttPublisher, parse_mqtt_url  # noqa: E402
from connectors.stores.influx import InfluxStore  # noqa: E402
from simulations.bench.bench_ingest import TOPICS, message_mix  # noqa: E402
from tests.integration.influx_server import InfluxServer  # noqa: E402
from tests.integration.mqtt_server import MosquittoServer  # noqa: E402

GIGATWIN = str(Path(sys.executable).with_name("gigatwin"))
ORIGIN_MS = 1_763_900_000_000  # the mix's origin (bench_ingest.message_mix)


def _command(broker_url: str, influx_port: int, db: str, workers: int, spool: Path) -> list[str]:
    return [
        GIGATWIN,
        "ingest",
        "--mqtt",
        f"{broker_url}?client_id=bench-{db}",
        "--store",
        f"influxdb://127.0.0.1:{influx_port}/{db}",
        "--site",
        TOPICS.site,
        "--workers",
        str(workers),
        "--group",
        f"g{db}",
        "--status-every",
        "0.1",
        "--spool-dir",
        str(spool),
    ]


class _Run:
    """One `gigatwin ingest` process tree, its summed counters as its status lines report them."""

    def __init__(self, cmd: list[str], workers: int) -> None:
        self.workers = workers
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.received = 0
        self.first_t: float | None = None
        self.at_first = 0
        self.last_t: float | None = None
        self.finals: dict[str, dict[str, object]] = {}
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        each: dict[str, int] = {}  # the latest count of each worker (one process: its own lines)
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            who, text = ("", line)
            if line.startswith("[worker "):
                who, _, text = line.partition("] ")
            word, _, rest = text.partition(" ")
            if word not in ("status", "final") or (self.workers > 1 and not who):
                continue  # with several workers, count from the workers' own lines (the parent's sums come slower)
            stats = json.loads(rest)
            each[who] = int(stats["received"])
            received = sum(each.values())
            now = time.perf_counter()
            if received > 0 and self.first_t is None:
                self.first_t, self.at_first = now, received
            if received > self.received:
                self.last_t = now
            self.received = received
            if word == "final":
                self.finals[who] = stats

    def stop(self) -> int:
        os.killpg(self.proc.pid, signal.SIGTERM)
        rc = self.proc.wait(60)
        time.sleep(0.3)  # the reader thread takes the final line
        return rc


def _case(
    broker: MosquittoServer, influx: InfluxServer, mix: list[tuple[str, bytes]], workers: int, work: Path
) -> dict[str, float]:
    db = f"w{workers}"
    store = InfluxStore(f"http://127.0.0.1:{influx.port}", db, spool_dir=work / f"mk-{db}")
    store.ensure_database()
    store.close()
    cmd = _command(broker.url, influx.port, db, workers, work / f"spool-{db}")
    opener = _Run(cmd, workers)  # 1. the sessions on the shared subscription, then away
    deadline = time.monotonic() + 60
    while sum(line.startswith("status") for line in opener.lines) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    opener.stop()
    pub = MqttPublisher(parse_mqtt_url(broker.url, client_id=f"bench-pub-{db}"))  # 2. the backlog
    pub.start()
    for topic, payload in mix:
        pub.publish(topic, payload)
    pub.flush(300)
    pub.stop()
    run = _Run(cmd, workers)  # 3. timed from the first message taken to the last
    deadline = time.monotonic() + 900
    while run.received < len(mix) and time.monotonic() < deadline:
        time.sleep(0.05)
    # the rate between the first status line that saw messages taken and the one that saw the last: start-up and the
    # status period's rounding at the start stay out of it
    seconds = (run.last_t or 0.0) - (run.first_t or 0.0)
    counted = run.received - run.at_first
    rc = run.stop()
    check = InfluxStore(f"http://127.0.0.1:{influx.port}", db, spool_dir=work / f"check-{db}")
    stored = 0
    for channel in ("state", "counts", "process", "buffer", "store", "input"):
        offset = 0
        hi = ORIGIN_MS + 30 * 86_400_000
        while page := check.range(channel, start_ms=ORIGIN_MS - 1, end_ms=hi, limit=50_000, offset=offset):
            stored += len(page)
            offset += len(page)
    check.close()
    finals = run.finals.values()
    return {
        "workers": workers,
        "received": run.received,
        "seconds": seconds,
        "rate": counted / seconds if seconds > 0 else float("nan"),
        "stored_points": stored,
        "rejected": float(sum(int(str(f["rejected"])) for f in finals)),
        "duplicates": float(sum(int(str(f["duplicates"])) for f in finals)),
        "exit": rc,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gigatwin-bench-workers-"))
    mix = message_mix(args.messages)
    with MosquittoServer(work / "mosquitto") as broker:
        influx = InfluxServer(work / "influxdb")
        influx.start()
        try:
            one = _case(broker, influx, mix, 1, work)
            many = _case(broker, influx, mix, args.workers, work)
        finally:
            influx.stop()
    print(f"{'workers':>8}{'messages':>10}{'seconds':>9}{'msg/s':>9}{'points':>9}{'rejected':>9}{'dupl.':>7}{'exit':>5}")
    for r in (one, many):
        print(
            f"{r['workers']:>8.0f}{r['received']:>10.0f}{r['seconds']:>9.2f}{r['rate']:>9.0f}{r['stored_points']:>9.0f}"
            f"{r['rejected']:>9.0f}{r['duplicates']:>7.0f}{r['exit']:>5.0f}"
        )
    print(f"speed-up {args.workers} workers / 1: {many['rate'] / one['rate']:.2f} (target >= 1.6 with 2 on 2 cores)")
    print(f"same points stored: {one['stored_points'] == many['stored_points']}")


if __name__ == "__main__":
    main()
