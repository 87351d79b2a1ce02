"""``gigatwin ingest --workers N``: N ingest processes on one shared subscription, run as one command.

The parent starts N children, each ``gigatwin ingest`` with ``--workers 1``, its own client id (the base id and
its index: two connections with one id take over each other's session), its own spool folder (a spool belongs to
one process) and the same share group (``--group``, else :data:`DEFAULT_GROUP`), so the broker splits the line's
stream between them. Children inherit the environment, so settings and secrets given there are not put on a
command line. The parent prints each child's lines prefixed with ``[worker i]`` and its own ``status``/``final``
lines with the children's counters added up; it forwards SIGINT/SIGTERM, and if one child exits by itself (its
pipeline failed for good) it stops the others. It exits 0 if every child did, else non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from types import FrameType
from typing import Any

from api.runtime import default_client_id
from api.settings import PipelineSettings
from connectors.linefile import read_line
from connectors.mqtt import parse_mqtt_url
from connectors.redact import redact_text
from connectors.stores.url import default_spool_dir
from twin.errors import TwinError

__all__ = ["DEFAULT_GROUP", "combine_stats", "ingest_overrides", "run_workers"]

DEFAULT_GROUP = "gigatwin"
"""The share group of ``--workers N`` when none is given."""

_print_lock = threading.Lock()


def ingest_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings ``gigatwin ingest``'s options give (only those given; the rest come from the environment)."""
    given = {
        "mqtt_url": args.mqtt,
        "store_url": args.store,
        "line_file": args.line,
        "mqtt_group": args.group,
        "mqtt_client_id": args.client_id,
        "spool_dir": args.spool_dir,
        "topic_prefix": args.prefix,
        "site": args.site,
        "max_lead_s": args.max_lead,
    }
    out = {k: v for k, v in given.items() if v is not None}
    out["source"] = "mqtt"  # ingest consumes a broker whatever GIGATWIN_SOURCE says (the demo is `gigatwin demo`)
    out["forecast_period_s"] = 0.0  # no API to serve forecasts from: refreshing them would only burn a core per worker
    return out


def combine_stats(each: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' counters as one: counts added, ``max_*`` the largest, texts joined; plus ``workers``."""
    out: dict[str, Any] = {}
    for stats in each:
        for key, value in stats.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                text = str(value)
                out[key] = "; ".join(t for t in (out.get(key, ""), text) if t)
            elif key.startswith("max_"):
                out[key] = max(out.get(key, value), value)
            else:
                out[key] = out.get(key, 0) + value
    out["workers"] = len(each)
    return out


def _say(text: str, *, err: bool = False) -> None:
    with _print_lock:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)


class _Worker:
    """One child process and what it printed last."""

    def __init__(self, index: int, argv: list[str]) -> None:
        self.index = index
        self.latest: dict[str, Any] = {}
        self.subscribed = threading.Event()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.reader = threading.Thread(target=self._read, name=f"worker-{index}-out", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            text = raw.rstrip("\n")
            kind, _, rest = text.partition(" ")
            if kind in ("status", "final"):
                with contextlib.suppress(ValueError):  # a torn line: the next status comes soon
                    self.latest = json.loads(rest)
            elif text.startswith("gigatwin ingest:"):
                self.subscribed.set()
            _say(f"[worker {self.index}] {text}")

    @property
    def exited(self) -> bool:
        return self.proc.poll() is not None


def _child_argv(args: argparse.Namespace, index: int, client_id: str, group: str, spool: Path) -> list[str]:
    argv = [sys.executable, "-m", "api.cli", "ingest", "--workers", "1", "--client-id", client_id, "--group", group]
    argv += ["--spool-dir", str(spool), "--status-every", str(args.status_every)]
    for flag, value in (
        ("--mqtt", args.mqtt),
        ("--store", args.store),
        ("--line", args.line),
        ("--prefix", args.prefix),
        ("--site", args.site),
        ("--max-lead", args.max_lead),
    ):
        if value is not None:  # only what was given here: the rest the child reads from the environment, as we did
            argv += [flag, str(value)]
    return argv


def _spool_base(settings: PipelineSettings) -> Path:
    if settings.spool_dir is not None:
        return settings.spool_dir
    parts = urllib.parse.urlsplit(settings.store_url)
    if parts.scheme.lower() in ("influxdb", "influxdbs") and parts.hostname:
        return default_spool_dir(parts.hostname, parts.port or 8086, urllib.parse.unquote(parts.path.lstrip("/")))
    return default_spool_dir("local", 0, "gigatwin")  # SQLite does not spool; the folder stays empty


def run_workers(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Run ``args.workers`` ingest processes on one shared subscription until stopped; the exit status is 0 only if
    every worker exited 0."""
    try:
        line = read_line(settings.line_file)
        assert settings.mqtt_url is not None  # the pipeline settings require it for the mqtt source
        url_client_id = parse_mqtt_url(settings.mqtt_url).client_id
    except (TwinError, ValueError) as exc:
        _say(f"gigatwin: {redact_text(str(exc))}", err=True)
        return 2
    group = settings.mqtt_group or DEFAULT_GROUP
    base_id = settings.mqtt_client_id or url_client_id or default_client_id(line.name, group)
    spool = _spool_base(settings)

    stop = threading.Event()

    def handler(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGINT, handler), signal.signal(signal.SIGTERM, handler)
    workers: list[_Worker] = []
    try:
        for i in range(args.workers):
            workers.append(_Worker(i, _child_argv(args, i, f"{base_id}-{i}", group, spool / f"worker-{i}")))
        while not stop.wait(0.1) and not any(w.exited for w in workers):
            if all(w.subscribed.is_set() for w in workers):
                ids = ", ".join(f"{base_id}-{i}" for i in range(len(workers)))
                _say(f"gigatwin ingest: {len(workers)} workers ({ids}) in share group {group}")
                break
        next_status = time.monotonic() + args.status_every
        while not stop.wait(0.2) and not any(w.exited for w in workers):
            if args.status_every > 0 and time.monotonic() >= next_status:
                next_status += args.status_every
                _say("status " + json.dumps(combine_stats([w.latest for w in workers])))
    finally:
        for w in workers:
            if not w.exited:
                w.proc.send_signal(signal.SIGTERM)  # each drains, stores and acknowledges what it took
        for w in workers:
            try:
                w.proc.wait(60)
            except subprocess.TimeoutExpired:
                _say(f"gigatwin ingest: worker {w.index} did not stop within 60 s; killed", err=True)
                w.proc.kill()
                w.proc.wait()
            w.reader.join(5)
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    _say("final " + json.dumps(combine_stats([w.latest for w in workers])))
    status = 0
    for w in workers:
        code = w.proc.returncode
        if code != 0:
            _say(f"gigatwin ingest: worker {w.index} exited with status {code}", err=True)
            status = status or (code if code > 0 else 1)
    return status
