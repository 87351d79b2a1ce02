"""The InfluxDB store: line protocol to ``/write``, InfluxQL on ``/query``, a disk spool while the server is down.

One path for InfluxDB 1.x, 2.x (its v1 compatibility API; the bucket needs a DBRP mapping, automatic for a bucket
named ``db`` or ``db/rp`` since 2.4) and 3.x: those two endpoints are the only ones all three serve (the
``influxdb_client`` library writes only to ``/api/v2/write`` and queries only with Flux, which 1.6 lacks and 3.x
dropped). ``flavour`` only chooses how to authenticate.

Writes are gzip-compressed chunks of at most ``batch_points`` lines. When the server does not take a chunk (no
answer, a timeout, a 5xx, 429, or 404 for a database that is missing), it and everything after it go to the
:class:`~connectors.stores.spool.Spool` on local disk, fsynced before ``write`` returns SPOOLED; a background thread
replays the spool in order, with jittered exponential backoff, once the server answers again. While the spool is
not empty new writes join its end, so the server receives every batch in the order it was written. Reads go to
the server only: spooled points become visible once replayed.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from connectors.redact import redact_url
from connectors.stores.base import (
    Bucket,
    DeadLetter,
    FieldValue,
    Health,
    StoredForecast,
    StoredPoint,
    StoreError,
    WriteOutcome,
    WriteRefused,
)
from connectors.stores.bounds import DEFAULT_MAX_SPAN_MS, QueryBounds, check_limit
from connectors.stores.forecasts import FORECASTS, decode_document
from connectors.stores.http import HttpRequest, HttpResponse, Transport, Unavailable, Urllib3Transport
from connectors.stores.influxql import (
    Series,
    aggregate_statement,
    count_statement,
    ident,
    last_statement,
    parse_results,
    prefix_regex,
    select_statement,
    tag_filter,
    time_range,
)
from connectors.stores.lineprotocol import (
    DEAD_LETTERS,
    DeadLetterEncoder,
    encode_forecasts,
    encode_readings,
    health_line,
    refused_lines,
)
from connectors.stores.points import (
    CHANNEL_FIELDS,
    check_channel,
    check_numeric_field,
    first_refusal,
    series_order,
    time_order,
)
from connectors.stores.spool import Spool
from connectors.telemetry import Channel, Reading

__all__ = ["Flavour", "InfluxCounters", "InfluxStore", "PartialWriteError"]

log = logging.getLogger("gigatwin.stores.influx")

Flavour = Literal["v1", "v2", "v3"]
"""Which InfluxDB the store talks to; it only chooses the authentication (v1: user and password, v2/v3: a token)."""
_TAGS = ("site", "line", "station", "machine")
_PROCESS = Channel.PROCESS.value


FORECAST_BATCH = 50
"""Forecasts per request: each is a few kilobytes of JSON, so far fewer fit a request than telemetry points."""


class PartialWriteError(WriteRefused):
    """The server refused some lines of a write (HTTP 400); ``lines`` are their indices in the write's points."""

    def __init__(self, message: str, lines: Sequence[int], server_message: str) -> None:
        super().__init__(message)
        self.lines = tuple(lines)
        self.server_message = server_message


class _MissingDatabase(Unavailable):
    """404 on a write: the database (1.x), bucket or DBRP mapping (2.x) does not exist (yet)."""


class InfluxCounters(NamedTuple):
    """What the store has done since it was opened."""

    points_written: int
    """Points the server acknowledged, written directly or replayed from the spool."""
    batches_spooled: int
    batches_replayed: int
    batches_rejected: int
    """Spooled batches the server refused for good on replay, set aside in ``spool_dir/rejected/``."""


class InfluxStore:
    """Telemetry in InfluxDB (1.x, 2.x or 3.x) through its v1 HTTP API, with a disk spool for outages.

    ``flavour`` v1: optional ``username``/``password`` (HTTP basic authentication); v2 and v3: ``token`` (sent as
    ``Authorization: Token ...``; required for v2). ``spool_dir`` holds the spool (one store per folder at a time);
    ``spool_max_bytes`` bounds it, beyond which writes raise StoreError. ``timeout_s`` bounds each request.
    ``transport`` replaces the HTTP client (tests).

    InfluxDB's own rule makes a rewrite of a point idempotent: the fields it carries replace the stored ones. A
    field the rewrite lacks keeps its earlier value (a state point rewritten without a fault code keeps the old
    code), where SQLite and the memory store replace the whole point.
    """

    def __init__(
        self,
        url: str,
        database: str,
        *,
        flavour: Flavour = "v1",
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        spool_dir: str | Path,
        batch_points: int = 5000,
        timeout_s: float = 10.0,
        verify_tls: bool = True,
        retention_policy: str | None = None,
        max_span_ms: int = DEFAULT_MAX_SPAN_MS,
        spool_max_bytes: int | None = 1 << 30,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        transport: Transport | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"url: {redact_url(url)!r} is not an http:// or https:// URL")
        if parsed.username is not None or parsed.password is not None or parsed.query:
            # Credentials go in username/password/token, where they stay out of messages and logs.
            raise ValueError(f"url: {redact_url(url)!r}: give the server's address only (credentials as arguments)")
        if not database:
            raise ValueError("database: must not be empty")
        if flavour not in ("v1", "v2", "v3"):
            raise ValueError(f"flavour: {flavour!r} is not v1, v2 or v3")
        if flavour == "v1" and token is not None:
            raise ValueError("token: InfluxDB 1.x (flavour v1) authenticates with username and password, not a token")
        if flavour != "v1" and (username is not None or password is not None):
            raise ValueError(f"username: flavour {flavour} authenticates with a token, not a username and password")
        if flavour == "v2" and not token:
            raise ValueError("token: InfluxDB 2.x (flavour v2) needs an API token")
        if password is not None and username is None:
            raise ValueError("password: given without a username")
        if batch_points < 1:
            raise ValueError(f"batch_points: must be >= 1, got {batch_points}")
        if not 0 < backoff_s[0] <= backoff_s[1]:
            raise ValueError(f"backoff_s: expected 0 < minimum <= maximum, got {backoff_s}")
        self.url = url.rstrip("/")
        self.database = database
        self.flavour = flavour
        self.retention_policy = retention_policy
        self.batch_points = batch_points
        self.timeout_s = timeout_s
        self.bounds = QueryBounds(max_span_ms)
        self.create_database = False
        """Set to let the replay thread create a missing database (v1) before it retries; off unless asked for,
        so that a misspelt name shows as unhealthy rather than as a new, empty database."""
        self._headers: dict[str, str] = {}
        if token:
            self._headers["Authorization"] = f"Token {token}"
        elif username is not None:
            basic = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {basic}"
        self._source_prefix = f"{ident(database)}.{ident(retention_policy)}." if retention_policy else ""
        self._transport: Transport = transport or Urllib3Transport(timeout_s=timeout_s, verify_tls=verify_tls)
        self._spool = Spool(Path(spool_dir), max_bytes=spool_max_bytes)
        self._letters = DeadLetterEncoder()
        self._backoff = backoff_s
        self._write_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._counts = [0, 0, 0, 0]  # as InfluxCounters
        self._last_error = ""
        self._closed = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._replayer = threading.Thread(target=self._replay_loop, name="influx-spool-replay", daemon=True)
        self._replayer.start()

    # -- configuration --------------------------------------------------------------------------------------
    def ensure_database(self) -> None:
        """Create the database if it is missing (v1: ``CREATE DATABASE``, idempotent).

        Nothing on v2 and v3: on 2.x a database is a bucket, created with its DBRP mapping through the v2 API (the
        v1 API cannot create one); 3.x creates a database on its first write.
        """
        if self.flavour != "v1":
            return
        statement = f"CREATE DATABASE {ident(self.database)}"
        body = urllib.parse.urlencode({"q": statement}).encode()
        headers = {**self._headers, "Content-Type": "application/x-www-form-urlencoded"}
        resp = self._transport.send(HttpRequest("POST", f"{self.url}/query", headers, body))
        if resp.status != 200:
            raise StoreError(f"influxdb {self.url}: {statement} refused ({resp.status}): {_message(resp)}")
        parse_results(resp.body, statement)

    def _try_ensure_database(self) -> None:
        try:
            self.ensure_database()
        except StoreError as exc:
            log.warning("influxdb %s: cannot create database %s: %s", self.url, self.database, exc)

    @property
    def counters(self) -> InfluxCounters:
        """Points written and batches spooled, replayed and rejected since the store was opened."""
        with self._count_lock:
            return InfluxCounters(*self._counts)

    @property
    def spool(self) -> Spool:
        """The spool (for inspection)."""
        return self._spool

    def write_request(self, body: bytes, precision: str = "ms") -> HttpRequest:
        """The request that writes a gzip-compressed line-protocol ``body``."""
        params = {"db": self.database, "precision": precision}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        headers = {**self._headers, "Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}
        return HttpRequest("POST", f"{self.url}/write?{urllib.parse.urlencode(params)}", headers, body)

    def query_request(self, statement: str, epoch: str = "ms") -> HttpRequest:
        """The request that runs an InfluxQL ``statement`` (chunked answer, times as integers in ``epoch`` units)."""
        params = {"db": self.database, "q": statement, "epoch": epoch, "chunked": "true", "chunk_size": "10000"}
        return HttpRequest("GET", f"{self.url}/query?{urllib.parse.urlencode(params)}", dict(self._headers))

    # -- writes ---------------------------------------------------------------------------------------------
    def write(self, readings: Sequence[Reading]) -> WriteOutcome:
        """Write the readings' points, or spool them; StoreError if refused (400: PartialWriteError) or unspoolable.

        WriteRefused, naming the field, before anything is sent if a reading holds what InfluxDB cannot (an integer
        beyond 64 bits, a NaN or infinity, a string that is not valid Unicode, a time past 2262).
        """
        where = f"influxdb {self.url} db {self.database}"
        try:
            # Encoded whole before the first chunk is sent: a refusal sends nothing.
            chunks = [(lines, "\n".join(lines).encode()) for lines in encode_readings(readings, self.batch_points)]
        except WriteRefused as exc:
            raise WriteRefused(f"{where}: {exc}") from exc
        except UnicodeEncodeError as exc:
            raise WriteRefused(f"{where}: {first_refusal(readings) or exc}") from exc
        return self._write_chunks(chunks, "ms")

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> WriteOutcome:
        """Write dead letters (payload as base64), or spool them."""
        chunks = [(lines, "\n".join(lines).encode()) for lines in self._letters.encode(letters, self.batch_points)]
        return self._write_chunks(chunks, "ns")

    def write_forecasts(self, records: Sequence[StoredForecast]) -> WriteOutcome:
        """Write forecasts and scores (the parts given), or spool them; WriteRefused naming the record before
        anything is sent if one cannot be stored."""
        try:
            chunks = [(lines, "\n".join(lines).encode()) for lines in encode_forecasts(records, FORECAST_BATCH)]
        except WriteRefused as exc:
            raise WriteRefused(f"influxdb {self.url} db {self.database}: {exc}") from exc
        return self._write_chunks(chunks, "ms")

    def health(self) -> Health:
        """Probe a real write (a point in ``gigatwin_health``), not ``/ping``: a ping answers when writes fail."""
        pending = self._spool.pending
        body = gzip.compress(health_line(int(time.time() * 1000)).encode(), compresslevel=1)
        try:
            self._post(body, "ms")
        except StoreError as exc:
            return Health(False, str(exc), pending)
        detail = f"influxdb {self.url} db {self.database}: writable"
        if pending:
            detail += f"; replaying {pending} spooled batches"
        return Health(True, detail, pending)

    def _write_chunks(self, chunks: Sequence[tuple[list[str], bytes]], precision: str) -> WriteOutcome:
        spooled: list[tuple[bytes, int]] = []
        with self._write_lock:
            if self._closed:
                raise StoreError(f"influxdb {self.url}: the store is closed")
            # A non-empty spool holds older batches: new ones queue behind them, so that order is kept.
            direct = self._spool.pending == 0
            first = 0
            for lines, raw in chunks:
                body = gzip.compress(raw, compresslevel=1)
                if direct:
                    try:
                        self._post(body, precision, lines, first)
                        self._count(0, len(lines))
                    except Unavailable as exc:
                        log.warning("influxdb %s unavailable, spooling: %s", self.url, exc)
                        self._last_error = str(exc)
                        direct = False
                if not direct:
                    spooled.append((body, len(lines)))
                first += len(lines)
            if not spooled:
                return WriteOutcome.WRITTEN
            self._spool.append(spooled, precision)
        self._count(1, len(spooled))
        self._wake.set()
        return WriteOutcome.SPOOLED

    def _post(self, body: bytes, precision: str, lines: Sequence[str] = (), first: int = 0) -> None:
        """Send one write; Unavailable if it should be tried again later, StoreError if it is refused."""
        resp = self._transport.send(self.write_request(body, precision))
        if 200 <= resp.status < 300:
            return
        message = _message(resp)
        where = f"influxdb {self.url} db {self.database}"
        if resp.status == 404:
            raise _MissingDatabase(f"{where}: write not taken now ({resp.status}): {message}")
        if resp.status == 429 or resp.status >= 500:
            raise Unavailable(f"{where}: write not taken now ({resp.status}): {message}")
        if resp.status == 400:
            bad = refused_lines(message, lines)
            numbers = ", ".join(str(first + i) for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
            which = f"lines {numbers} of the write; the first: {lines[bad[0]][:300]!r}" if bad else "lines not identified"
            raise PartialWriteError(
                f"{where}: refused {len(bad) or 'some'} of {len(lines) or 'the'} lines of a chunk ({which}): {message}",
                [first + i for i in bad],
                message,
            )
        raise StoreError(f"{where}: write refused ({resp.status}): {message}")

    def _count(self, index: int, n: int) -> None:
        with self._count_lock:
            self._counts[index] += n

    # -- the spool's replay ---------------------------------------------------------------------------------
    def _replay_loop(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            self._wake.clear()  # cleared before looking, so an append after the look wakes the wait below
            try:
                done = self._replay_one()
            except Unavailable as exc:
                self._last_error = str(exc)
                if isinstance(exc, _MissingDatabase) and self.create_database:
                    self._try_ensure_database()
                # Jittered exponential backoff: many clients of one recovering server do not retry in step.
                self._stop.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._backoff[1])
                continue
            except Exception:  # the thread must survive anything, or the spool would never drain
                log.exception("influxdb %s: replaying the spool failed; retrying", self.url)
                self._stop.wait(self._backoff[1])
                continue
            delay = self._backoff[0]
            if not done:
                self._wake.wait(60.0)

    def _replay_one(self) -> bool:
        """Replay the oldest spooled batch; False if there was none. Unavailable if the server does not take it."""
        record = self._spool.peek()
        if record is None:
            return False
        try:
            self._post(record.body, record.precision)
        except Unavailable:
            raise
        except StoreError as exc:
            log.error(
                "influxdb %s refuses a spooled batch for good; set aside in %s/rejected: %s", self.url, self._spool.directory, exc
            )
            self._spool.reject(record, str(exc))
            self._count(3, 1)
            return True
        self._spool.commit(record)
        self._count(2, 1)
        self._count(0, record.points)
        return True

    # -- queries --------------------------------------------------------------------------------------------
    def range(
        self,
        channel: str,
        *,
        start_ms: int,
        end_ms: int,
        site: str | None = None,
        line: str | None = None,
        station: str | None = None,
        signal: str | None = None,
        limit: int = 10_000,
        offset: int = 0,
    ) -> list[StoredPoint]:
        """Raw points in ``[start_ms, end_ms)`` ordered by (ts_ms, station, machine, signal, site, line).

        InfluxDB orders points of equal time its own way, so the page is taken by time on the server and the
        points of its first and last timestamps are fetched whole and put in order here.
        """
        check_channel(channel)
        self.bounds.check_range(start_ms, end_ms, limit, offset)
        filters = tag_filter([("site", site), ("line", line), ("station", station), ("signal", signal)])
        page = self._select(channel, time_range(start_ms, end_ms) + filters, f" ORDER BY time ASC LIMIT {limit} OFFSET {offset}")
        if not page:
            return []
        n, t_lo, t_hi = len(page), page[0].ts_ms, page[-1].ts_ms
        if offset == 0 and n < limit:
            return sorted(page, key=time_order)  # the whole range
        # Every point of [t_lo, t_hi]: the page's own, plus the rest of its boundary timestamps (one per series).
        window = sorted(self._select(channel, time_range(t_lo, t_hi, end_inclusive=True) + filters), key=time_order)
        first_group = sum(1 for p in window if p.ts_ms == t_lo)
        if t_lo < t_hi or n < limit:
            # The page ends its first timestamp, so it holds that timestamp's last points.
            skip = first_group - sum(1 for p in page if p.ts_ms == t_lo)
        else:
            # The page lies within one timestamp: where it starts there depends on the points before it.
            before = self._count_points(channel, time_range(start_ms, t_lo) + filters)
            skip = offset - before
        return window[skip : skip + n]

    def last(
        self,
        channel: str,
        *,
        site: str | None = None,
        line: str | None = None,
        station: str | None = None,
        before_ms: int | None = None,
    ) -> list[StoredPoint]:
        """The latest point of every series."""
        check_channel(channel)
        specs = CHANNEL_FIELDS[channel]
        groups = (*_TAGS, "signal") if channel == _PROCESS else _TAGS
        where = tag_filter([("site", site), ("line", line), ("station", station)])
        if before_ms is not None:
            where += f" AND time < {before_ms * 1_000_000}"
        where = where.removeprefix(" AND ")
        statement = last_statement(self._source(channel), [s.name for s in specs], groups, where)
        points = []
        for series in self._query(statement):
            tags = series.tags
            where_fields = _field_columns(channel, series.columns)
            for row in series.values:
                points.append(
                    StoredPoint(
                        channel,
                        tags.get("site", ""),
                        tags.get("line", ""),
                        tags.get("station", ""),
                        _machine(tags.get("machine", "")),
                        tags.get("signal", ""),
                        int(row[0]),
                        _fields(where_fields, row),
                    )
                )
        return sorted(points, key=series_order)

    def first_ms(self, channel: str, *, site: str | None = None, line: str | None = None) -> int | None:
        """The time of the oldest point of the channel (of ``site`` and ``line``), or None."""
        check_channel(channel)
        always = CHANNEL_FIELDS[channel][0].name  # the first field of every channel is never absent
        where = "time >= 0" + tag_filter([("site", site), ("line", line)])
        statement = select_statement(self._source(channel), [always], [], where) + " ORDER BY time ASC LIMIT 1"
        times = [int(row[0]) for series in self._query(statement) for row in series.values]
        return min(times, default=None)

    def aggregate(
        self,
        channel: str,
        field: str,
        *,
        start_ms: int,
        end_ms: int,
        every_ms: int,
        site: str | None = None,
        line: str | None = None,
        station: str | None = None,
        signal: str | None = None,
        machine: int | None = None,
    ) -> list[Bucket]:
        """Mean, min, max and count of ``field`` per interval aligned to multiples of ``every_ms``."""
        check_numeric_field(channel, field)
        self.bounds.check_aggregate(start_ms, end_ms, every_ms)
        if start_ms == end_ms:
            return []
        where = time_range(start_ms, end_ms) + tag_filter(
            [
                ("site", site),
                ("line", line),
                ("station", station),
                ("signal", signal),
                ("machine", None if machine is None else str(machine)),
            ]
        )
        buckets = []
        for series in self._query(aggregate_statement(self._source(channel), field, where, every_ms)):
            for t, mean, lo, hi, count in series.values:
                if count:
                    buckets.append(Bucket(int(t), float(mean), float(lo), float(hi), int(count)))
        return sorted(buckets)

    def dead_letters(self, limit: int = 100, *, topic_prefix: str | None = None) -> list[DeadLetter]:
        """The latest dead letters (whose topic starts with ``topic_prefix``), newest first. (Bounded by the limit,
        not by time: letters are rare and kept.)"""
        check_limit(limit)
        where = "time >= 0" + _topic_condition(topic_prefix)
        statement = select_statement(self._source(DEAD_LETTERS), ["topic", "payload", "reason", "line_ms"], [], where)
        letters = []
        for series in self._query(f"{statement} ORDER BY time DESC LIMIT {limit}", epoch="ns"):
            cols = {c: i for i, c in enumerate(series.columns)}
            at_line = cols.get("line_ms")  # no such column, or None in a row: letters written before they carried it
            for row in series.values:
                line_ms = None if at_line is None else row[at_line]
                letters.append(
                    DeadLetter(
                        int(row[0]) // 1_000_000,
                        str(row[cols["topic"]]),
                        base64.b64decode(row[cols["payload"]]),
                        str(row[cols["reason"]]),
                        None if line_ms is None else int(line_ms),
                    )
                )
        return letters

    def dead_letter_count(self, *, topic_prefix: str | None = None) -> int:
        """How many dead letters are stored (whose topic starts with ``topic_prefix``)."""
        where = "time >= 0" + _topic_condition(topic_prefix)
        series = self._query(count_statement(self._source(DEAD_LETTERS), "reason", where))
        return sum(int(row[1]) for s in series for row in s.values)

    def forecasts(
        self, *, start_ms: int, end_ms: int, site: str | None = None, line: str | None = None, limit: int = 10_000
    ) -> list[StoredForecast]:
        """The forecasts made in ``[start_ms, end_ms)``, oldest first (then by site and line)."""
        self.bounds.check_range(start_ms, end_ms, limit, 0)
        if start_ms == end_ms:
            return []
        where = time_range(start_ms, end_ms) + tag_filter([("site", site), ("line", line)])
        statement = select_statement(self._source(FORECASTS), ["forecast", "score"], ["site", "line"], where)
        out = []
        for series in self._query(f"{statement} ORDER BY time ASC LIMIT {limit}"):
            cols = {c: i for i, c in enumerate(series.columns)}
            for row in series.values:
                out.append(
                    StoredForecast(
                        str(row[cols["site"]] or ""),
                        str(row[cols["line"]] or ""),
                        int(row[0]),
                        decode_document(row[cols["forecast"]]) if "forecast" in cols else None,
                        decode_document(row[cols["score"]]) if "score" in cols else None,
                    )
                )
        return sorted(out, key=lambda f: (f.as_of_ms, f.site, f.line))

    def close(self) -> None:
        """Stop the replay thread, replay what the server takes within ``timeout_s``, close the spool; idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake.set()
        self._replayer.join()
        deadline = time.monotonic() + self.timeout_s
        try:
            while time.monotonic() < deadline and self._replay_one():
                pass
        except Unavailable as exc:
            log.warning(
                "influxdb %s: %s; %d batches stay in %s for the next start",
                self.url,
                exc,
                self._spool.pending,
                self._spool.directory,
            )
        finally:
            self._spool.close()
            self._transport.close()

    # -- query helpers --------------------------------------------------------------------------------------
    def _source(self, measurement: str) -> str:
        return self._source_prefix + ident(measurement)

    def _query(self, statement: str, epoch: str = "ms") -> list[Series]:
        resp = self._transport.send(self.query_request(statement, epoch))
        if resp.status != 200:
            raise StoreError(f"influxdb {self.url}: query refused ({resp.status}): {_message(resp)} (query: {statement})")
        return parse_results(resp.body, statement)

    def _select(self, channel: str, where: str, tail: str = "") -> list[StoredPoint]:
        specs = CHANNEL_FIELDS[channel]
        tags = (*_TAGS, "signal") if channel == _PROCESS else _TAGS
        statement = select_statement(self._source(channel), [s.name for s in specs], tags, where, tail)
        points = []
        for series in self._query(statement):
            cols = {c: i for i, c in enumerate(series.columns)}
            where_fields = _field_columns(channel, series.columns)
            for row in series.values:
                points.append(
                    StoredPoint(
                        channel,
                        str(row[cols["site"]] or ""),
                        str(row[cols["line"]] or ""),
                        str(row[cols["station"]] or ""),
                        _machine(row[cols["machine"]]),
                        str(row[cols["signal"]] or "") if "signal" in cols else "",
                        int(row[0]),
                        _fields(where_fields, row),
                    )
                )
        return points

    def _count_points(self, channel: str, where: str) -> int:
        always = CHANNEL_FIELDS[channel][0].name  # the first field of every channel is never absent
        series = self._query(count_statement(self._source(channel), always, where))
        return sum(int(row[1]) for s in series for row in s.values)


def _topic_condition(prefix: str | None) -> str:
    """The condition on the dead letters' ``topic`` field (not a tag: letters of any topic are one series)."""
    return f" AND {ident('topic')} =~ {prefix_regex(prefix)}" if prefix else ""


def _message(resp: HttpResponse) -> str:
    """The server's error message: the ``error`` of its JSON body, else the body's start."""
    text = resp.body.decode("utf-8", "replace").strip()
    try:
        return str(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        return text[:500] or "(no message)"


def _machine(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0  # a point written by something else, without a numeric machine tag


_FieldColumns = list[tuple[str, int, type]]


def _field_columns(channel: str, columns: list[str]) -> _FieldColumns:
    """Where each field of the channel is among an answer's columns, with the type to give its values."""
    return [(spec.name, columns.index(spec.name), spec.kind) for spec in CHANNEL_FIELDS[channel] if spec.name in columns]


def _fields(where: _FieldColumns, row: list[Any]) -> dict[str, FieldValue]:
    """The fields of a row, typed as the channel declares them (JSON has one number type for ints and floats)."""
    return {name: kind(row[i]) for name, i, kind in where if row[i] is not None}
