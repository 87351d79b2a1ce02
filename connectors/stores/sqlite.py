"""The embedded store: one SQLite file, no server. The default for the demo and for single-line installations.

Layout: a ``series`` table gives every (channel, site, line, station, machine, signal) an integer id, the way a
time-series database keeps a series index; each channel has its own table of typed field columns keyed by
``(ts_ms, series)`` (so a rewrite of the same point replaces it) with a second index on ``(series, ts_ms)``. That
serves the three queries: ``range`` and ``aggregate`` walk a time slice of the key (telemetry arrives roughly in
time order, so writes append at the end of it), ``last`` probes the newest entry of each series in the index.
"""

from __future__ import annotations

import contextlib
import math
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

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
from connectors.stores.forecasts import FORECASTS, check_record, decode_document
from connectors.stores.points import (
    CHANNEL_FIELDS,
    check_channel,
    check_numeric_field,
    clean_text,
    first_refusal,
    point_rows,
)
from connectors.telemetry import Channel, Reading, Source

__all__ = ["SqliteStore"]

SCHEMA_VERSION = 1
_SQL_TYPE = {str: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER"}
_SeriesKey = tuple[str, str, str, str, int, str]  # channel, site, line, station, machine, signal
_TAGS = "s.site, s.line, s.station, s.machine, s.signal"


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _schema() -> list[str]:
    ddl = [
        "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, site TEXT NOT NULL, "
        "line TEXT NOT NULL, station TEXT NOT NULL, machine INTEGER NOT NULL, signal TEXT NOT NULL, "
        "UNIQUE (channel, station, machine, signal, site, line))",
        "CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, received_ms INTEGER NOT NULL, "
        "topic TEXT NOT NULL, payload BLOB NOT NULL, reason TEXT NOT NULL, line_ms INTEGER)",
        "CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received_ms)",
        # Lines sharing the file read their own dead letters by topic prefix: a range of this index.
        "CREATE INDEX IF NOT EXISTS dead_letters_topic ON dead_letters (topic, received_ms)",
        # A forecast is written when it is made and its score hours later: both parts nullable, one row.
        f"CREATE TABLE IF NOT EXISTS {FORECASTS} (as_of_ms INTEGER NOT NULL, site TEXT NOT NULL, line TEXT NOT NULL, "
        "forecast TEXT, score TEXT, PRIMARY KEY (as_of_ms, site, line)) WITHOUT ROWID",
    ]
    for channel, specs in CHANNEL_FIELDS.items():
        cols = ", ".join(f"{_q(s.name)} {_SQL_TYPE[s.kind]}{'' if s.optional else ' NOT NULL'}" for s in specs)
        ddl.append(
            f"CREATE TABLE IF NOT EXISTS {_q(channel)} (series INTEGER NOT NULL, ts_ms INTEGER NOT NULL, {cols}, "
            "PRIMARY KEY (ts_ms, series)) WITHOUT ROWID"
        )
        ddl.append(f"CREATE INDEX IF NOT EXISTS {_q(channel + '_series')} ON {_q(channel)} (series, ts_ms)")
    return ddl


class SqliteStore:
    """Telemetry in one SQLite file (WAL mode). ``path`` is a file (created if missing) in a folder that exists (a
    missing folder is StoreError: a mistyped path must not quietly become a new, empty store), not ``:memory:``.

    Durability: every ``write`` is one transaction, committed before it returns. With ``synchronous="NORMAL"`` (the
    default, and the usual choice with WAL) a committed write survives a crash of the process, but a power cut or an
    OS crash may lose the last transactions before the next checkpoint (the file stays consistent). ``"FULL"``
    syncs the WAL on every commit and survives those too, at a cost in throughput.

    Threads: writes are serialised on one connection under a lock; reads take a connection from a pool (one per
    concurrently reading thread), so an API reading in other threads never waits for the ingest's writes: WAL lets
    readers see the last committed state while a write is in progress.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_span_ms: int = DEFAULT_MAX_SPAN_MS,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_s: float = 10.0,
    ) -> None:
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise ValueError(f"path: {str(path)!r} must be a file path (use MemoryStore for an in-memory store)")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous: {synchronous!r} is not NORMAL or FULL")
        self.path = Path(path)
        self.bounds = QueryBounds(max_span_ms)
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._write_lock = threading.Lock()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._closed = False
        self._ids: dict[tuple[str, Source, int], dict[str, int]] = {}  # series ids by (channel, source, machine), signal
        if not self.path.parent.is_dir():
            what = "is not a folder" if self.path.parent.exists() else "does not exist"
            raise StoreError(f"sqlite {self.path}: cannot open: the folder {str(self.path.parent)!r} {what}")
        try:
            self._writer = self._connect()
            self._create_schema()
            for channel, site, line, station, machine, signal, sid in self._writer.execute(
                "SELECT channel, site, line, station, machine, signal, id FROM series"
            ):
                self._ids.setdefault((channel, Source(site, line, station), machine), {})[signal] = sid
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"sqlite {self.path}: cannot open: {exc}") from exc
        self._insert = {
            channel: f"INSERT OR REPLACE INTO {_q(channel)} VALUES ({', '.join('?' * (len(specs) + 2))})"
            for channel, specs in CHANNEL_FIELDS.items()
        }

    # -- writes ---------------------------------------------------------------------------------------------
    def write(self, readings: Sequence[Reading]) -> WriteOutcome:
        """Store the readings in one transaction; a point with the same channel, tags and time replaces the earlier.

        WriteRefused (naming the field) if a reading holds what SQLite cannot (an integer beyond 64 bits, a NaN or
        infinity, a string that is not valid Unicode): then nothing of the write is stored.
        """
        with self._write_lock:
            conn = self._open_writer()
            cache = self._ids
            added: list[tuple[dict[str, int], str]] = []
            rows: dict[str, list[tuple[Any, ...]]] = {}
            try:
                conn.execute("BEGIN IMMEDIATE")
                for r in readings:
                    channel, points = point_rows(r)
                    out = rows.get(channel)
                    if out is None:
                        out = rows[channel] = []
                    ts = r.ts_ms
                    # Two-level lookup: one per reading, then one per signal (process readings carry several).
                    ids = cache.get((channel, r.source, r.machine))
                    if ids is None:
                        ids = cache[(channel, r.source, r.machine)] = {}
                    for signal, values in points:
                        sid = ids.get(signal)
                        if sid is None:
                            sid = ids[signal] = self._add_series(conn, (channel, *r.source, r.machine, signal))
                            added.append((ids, signal))
                        out.append((sid, ts, *values))
                        # SQLite would store an infinity as is and a NaN as NULL (a NOT NULL failure): refuse both.
                        if channel == _PROCESS and not math.isfinite(values[0]):  # type: ignore[arg-type]
                            raise _NotFinite
                for channel, channel_rows in rows.items():
                    conn.executemany(self._insert[channel], channel_rows)
                conn.execute("COMMIT")
            except (sqlite3.Error, OverflowError, UnicodeEncodeError, _NotFinite) as exc:
                self._rollback(conn)
                for ids, signal in added:  # the series rows of a rolled-back transaction do not exist
                    del ids[signal]
                # A value SQLite cannot hold is refused for good (named); anything else is a failure of the store.
                why = first_refusal(readings)
                if why is not None:
                    raise WriteRefused(f"sqlite {self.path}: {why}") from exc
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"sqlite {self.path}: write of {len(readings)} readings failed: {exc}") from exc
                raise WriteRefused(f"sqlite {self.path}: write of {len(readings)} readings refused: {exc!r}") from exc
        return WriteOutcome.WRITTEN

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> WriteOutcome:
        """Store dead letters in one transaction; each gets its own row, so letters of the same ms are all kept.

        A topic or reason that is not valid Unicode is kept with its lone surrogates escaped (never refused).
        """
        rows = [(d.received_ms, clean_text(d.topic), bytes(d.payload), clean_text(d.reason), d.line_ms) for d in letters]
        with self._write_lock:
            conn = self._open_writer()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO dead_letters (received_ms, topic, payload, reason, line_ms) VALUES (?, ?, ?, ?, ?)", rows
                )
                conn.execute("COMMIT")
            except (sqlite3.Error, OverflowError) as exc:  # OverflowError: a received_ms or line_ms beyond 64 bits
                self._rollback(conn)
                raise StoreError(f"sqlite {self.path}: write of {len(rows)} dead letters failed: {exc}") from exc
        return WriteOutcome.WRITTEN

    def write_forecasts(self, records: Sequence[StoredForecast]) -> WriteOutcome:
        """Store forecasts and scores in one transaction (the parts given; a part given again replaces the stored
        one)."""
        rows = [(r.as_of_ms, r.site, r.line, *check_record(r)) for r in records]  # all checked before any is written
        with self._write_lock:
            conn = self._open_writer()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    f"INSERT INTO {FORECASTS} (as_of_ms, site, line, forecast, score) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT DO UPDATE SET forecast = coalesce(excluded.forecast, forecast), "
                    "score = coalesce(excluded.score, score)",
                    rows,
                )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(conn)
                raise StoreError(f"sqlite {self.path}: write of {len(rows)} forecasts failed: {exc}") from exc
        return WriteOutcome.WRITTEN

    def health(self) -> Health:
        """Probe a write: a transaction that takes the write lock of the file and commits."""
        with self._write_lock:
            try:
                conn = self._open_writer()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("PRAGMA user_version = " + str(SCHEMA_VERSION))
                conn.execute("COMMIT")
            except (sqlite3.Error, StoreError) as exc:
                if not self._closed:
                    self._rollback(self._writer)
                return Health(False, f"sqlite {self.path}: {exc}", 0)
        return Health(True, f"sqlite {self.path}", 0)

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
        """Raw points in ``[start_ms, end_ms)`` ordered by (ts_ms, station, machine, signal, site, line)."""
        check_channel(channel)
        self.bounds.check_range(start_ms, end_ms, limit, offset)
        where, params = self._series_filter(channel, site, line, station, signal, None)
        if station is None and signal is None:
            # Only a site or line: most series match. Walk the time key (the unary + keeps SQLite off the series
            # index), so that only the rows of equal time are sorted and LIMIT stops the walk early; through the
            # series index every row of the range would be sorted to return one page (a replay of a day paged
            # that way costs the square of its length).
            where = where.replace(" AND p.series IN ", " AND +p.series IN ")
        sql = (
            f"SELECT {_TAGS}, p.* FROM {_q(channel)} p JOIN series s ON s.id = p.series "
            f"WHERE p.ts_ms >= ? AND p.ts_ms < ?{where} "
            "ORDER BY p.ts_ms, s.station, s.machine, s.signal, s.site, s.line LIMIT ? OFFSET ?"
        )
        return self._points(channel, sql, [start_ms, end_ms, *params, limit, offset])

    def last(
        self,
        channel: str,
        *,
        site: str | None = None,
        line: str | None = None,
        station: str | None = None,
        before_ms: int | None = None,
    ) -> list[StoredPoint]:
        """The latest point of every series, ordered by station, machine, signal, site, line."""
        check_channel(channel)
        params: list[Any] = [channel]
        where = ""
        for column, value in (("site", site), ("line", line), ("station", station)):
            if value is not None:
                where += f" AND s.{column} = ?"
                params.append(value)
        before = ""
        if before_ms is not None:
            before = " AND ts_ms < ?"
            params.append(before_ms)
        # The correlated MAX is answered from the (series, ts_ms) key: one index probe per series, not a scan.
        sql = (
            f"SELECT {_TAGS}, p.* FROM series s JOIN {_q(channel)} p ON p.series = s.id "
            f"WHERE s.channel = ?{where} AND p.ts_ms = (SELECT MAX(ts_ms) FROM {_q(channel)} WHERE series = s.id{before}) "
            "ORDER BY s.station, s.machine, s.signal, s.site, s.line"
        )
        return self._points(channel, sql, params)

    def first_ms(self, channel: str, *, site: str | None = None, line: str | None = None) -> int | None:
        """The time of the oldest point of the channel (of ``site`` and ``line``), or None."""
        check_channel(channel)
        where, params = self._series_filter(channel, site, line, None, None, None)
        # the time key, walked from its start until a row of the line's series: no sort, no scan of the rest
        where = where.replace(" AND p.series IN ", " AND +p.series IN ")
        sql = f"SELECT p.ts_ms FROM {_q(channel)} p WHERE 1{where} ORDER BY p.ts_ms LIMIT 1"
        with self._reader() as conn:
            row = conn.execute(sql, params).fetchone()
        return None if row is None else int(row[0])

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
        where, params = self._series_filter(channel, site, line, station, signal, machine)
        f = "p." + _q(field)
        sql = (
            f"SELECT p.ts_ms - p.ts_ms % ? AS b, AVG({f}), MIN({f}), MAX({f}), COUNT({f}) "
            f"FROM {_q(channel)} p WHERE p.ts_ms >= ? AND p.ts_ms < ? AND {f} IS NOT NULL{where} GROUP BY b ORDER BY b"
        )
        with self._reader() as conn:
            rows = conn.execute(sql, [every_ms, start_ms, end_ms, *params]).fetchall()
        return [Bucket(int(b), float(mean), float(lo), float(hi), int(n)) for b, mean, lo, hi, n in rows]

    def dead_letters(self, limit: int = 100, *, topic_prefix: str | None = None) -> list[DeadLetter]:
        """The latest dead letters (whose topic starts with ``topic_prefix``), newest first (by received time, then
        by arrival)."""
        check_limit(limit)
        where, params = _prefix_filter(topic_prefix)
        sql = (
            f"SELECT received_ms, topic, payload, reason, line_ms FROM dead_letters{where} "
            "ORDER BY received_ms DESC, id DESC LIMIT ?"
        )
        with self._reader() as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        return [
            DeadLetter(int(ms), str(topic), bytes(payload), str(reason), None if line_ms is None else int(line_ms))
            for ms, topic, payload, reason, line_ms in rows
        ]

    def dead_letter_count(self, *, topic_prefix: str | None = None) -> int:
        """How many dead letters are stored (whose topic starts with ``topic_prefix``)."""
        where, params = _prefix_filter(topic_prefix)
        with self._reader() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM dead_letters{where}", params).fetchone()[0])

    def forecasts(
        self, *, start_ms: int, end_ms: int, site: str | None = None, line: str | None = None, limit: int = 10_000
    ) -> list[StoredForecast]:
        """The forecasts made in ``[start_ms, end_ms)``, oldest first (then by site and line)."""
        self.bounds.check_range(start_ms, end_ms, limit, 0)
        where, params = "", []
        for column, value in (("site", site), ("line", line)):
            if value is not None:
                where += f" AND {column} = ?"
                params.append(value)
        sql = (
            f"SELECT site, line, as_of_ms, forecast, score FROM {FORECASTS} WHERE as_of_ms >= ? AND as_of_ms < ?{where} "
            "ORDER BY as_of_ms, site, line LIMIT ?"
        )
        with self._reader() as conn:
            rows = conn.execute(sql, (start_ms, end_ms, *params, limit)).fetchall()
        return [StoredForecast(str(s), str(ln), int(ms), decode_document(f), decode_document(sc)) for s, ln, ms, f, sc in rows]

    def close(self) -> None:
        """Close every connection (readers still in use close when they are handed back); idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(sqlite3.Error):  # only planner statistics: nothing is lost without them
                self._writer.execute("PRAGMA optimize")
            self._writer.close()
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break

    # -- helpers --------------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode (isolation_level=None): transactions are begun and ended explicitly, never implicitly.
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        # A page cache that holds the hot ends of the indexes, and checkpoints every ~40 MB of WAL instead of ~4 MB:
        # together 1.5x the write throughput of the defaults (measured in simulations/bench/bench_stores.py).
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        return conn

    def _create_schema(self) -> None:
        conn = self._writer
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version not in (0, SCHEMA_VERSION):
            raise StoreError(f"sqlite {self.path}: schema version {version}, this GigaTwin reads version {SCHEMA_VERSION}")
        conn.execute("BEGIN IMMEDIATE")
        for statement in _schema():
            conn.execute(statement)
        # A file made before dead letters carried the line clock: add the column (NULL in the letters kept before).
        # Checked under the write lock of the file, so that two stores opening it at once do not both add it.
        if "line_ms" not in {row[1] for row in conn.execute("PRAGMA table_info(dead_letters)")}:
            conn.execute("ALTER TABLE dead_letters ADD COLUMN line_ms INTEGER")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")

    def _open_writer(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"sqlite {self.path}: the store is closed")
        return self._writer

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    @staticmethod
    def _add_series(conn: sqlite3.Connection, key: _SeriesKey) -> int:
        # Another process writing the same file (two ingest workers) may have added the series since this one read the
        # table: take its id rather than fail on the unique key.
        conn.execute(
            "INSERT INTO series (channel, site, line, station, machine, signal) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            key,
        )
        row = conn.execute(
            "SELECT id FROM series WHERE channel = ? AND site = ? AND line = ? AND station = ? AND machine = ? AND signal = ?",
            key,
        ).fetchone()
        return int(row[0])

    @staticmethod
    def _series_filter(
        channel: str, site: str | None, line: str | None, station: str | None, signal: str | None, machine: int | None
    ) -> tuple[str, list[str | int]]:
        conds: list[str] = ["channel = ?"]
        params: list[str | int] = [channel]
        for column, value in (("site", site), ("line", line), ("station", station), ("signal", signal), ("machine", machine)):
            if value is not None:
                conds.append(f"{column} = ?")
                params.append(value)
        if len(conds) == 1:
            return "", []
        return f" AND p.series IN (SELECT id FROM series WHERE {' AND '.join(conds)})", params

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StoreError(f"sqlite {self.path}: the store is closed")
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            try:
                conn = self._connect()
                conn.execute("PRAGMA query_only = ON")
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite {self.path}: cannot open a reader: {exc}") from exc
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite {self.path}: query failed: {exc}") from exc
        finally:
            if self._closed:
                conn.close()
            else:
                self._readers.put(conn)

    def _points(self, channel: str, sql: str, params: Sequence[Any]) -> list[StoredPoint]:
        specs = CHANNEL_FIELDS[channel]
        with self._reader() as conn:
            rows = conn.execute(sql, params).fetchall()
        names = [spec.name for spec in specs]
        optional = [spec.name for spec in specs if spec.optional]  # the only columns that may be NULL
        flags = [spec.name for spec in specs if spec.kind is bool]  # stored as 0/1
        out = []
        for row in rows:
            # Columns: the five tags, then the channel table's own: series, ts_ms, fields in storage order.
            fields: dict[str, FieldValue] = dict(zip(names, row[7:], strict=True))
            for name in optional:
                if fields[name] is None:
                    del fields[name]
            for name in flags:
                fields[name] = bool(fields[name])
            out.append(StoredPoint(channel, row[0], row[1], row[2], int(row[3]), row[4], int(row[6]), fields))
        return out


class _NotFinite(Exception):
    """A process value that is NaN or infinite (found while building a write's rows)."""


_PROCESS = Channel.PROCESS.value


def _prefix_filter(prefix: str | None) -> tuple[str, tuple[str | int, ...]]:
    """`` WHERE`` the topic starts with ``prefix``, as a range of the topic index (no LIKE: ``%`` and ``_`` are
    legal in topics, and LIKE ignores case). UTF-8 sorts as code points do, so the range is exact."""
    if not prefix:
        return "", ()
    prefix = clean_text(prefix)  # as the topics were stored
    last = ord(prefix[-1])
    if last == 0x10FFFF or 0xD7FF <= last < 0xE000:  # no next character to bound the range with
        return " WHERE substr(topic, 1, ?) = ?", (len(prefix), prefix)
    return " WHERE topic >= ? AND topic < ?", (prefix, prefix[:-1] + chr(last + 1))
