"""The store port: what the ingest writes and the API reads, whatever database is behind it.

A reading becomes one point per series and timestamp (a process reading one point per value). Two points of
the same channel, tags and ``ts_ms`` are the same point: the later write replaces the earlier, which makes a
redelivered message idempotent.

Several lines may share one store (one InfluxDB database, one SQLite file): every query takes ``site`` and
``line`` filters, and dead letters a ``topic_prefix``. ``None`` means "every site / line"; whoever serves one
line passes its own (``Topics.site``, ``Topics.line``, ``Topics.base + "/"``), or it gets the other lines' data
too. A value a store cannot hold (an integer beyond 64 bits, a NaN or infinity, a string that is not valid
Unicode) is refused with :class:`WriteRefused` naming the field, never stored half or retried forever.

Every adapter (:mod:`connectors.stores.sqlite`, :mod:`connectors.stores.influx`,
the fake :mod:`connectors.stores.memory`) implements :class:`Store` and passes the same behavioural tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any, NamedTuple, Protocol

from connectors.errors import ConnectorError
from connectors.telemetry import Reading

__all__ = [
    "Bucket",
    "DeadLetter",
    "FieldValue",
    "Health",
    "Store",
    "StoreError",
    "StoreReader",
    "StoredForecast",
    "StoredPoint",
    "WriteOutcome",
    "WriteRefused",
]

FieldValue = float | int | str | bool
"""The value of one field of a stored point."""


class StoredPoint(NamedTuple):
    """One stored point as queries return it."""

    channel: str
    """The measurement: the telemetry channel (state, counts, process, buffer, store, input)."""
    site: str
    line: str
    station: str
    machine: int
    signal: str
    """For process points the signal's name; empty otherwise."""
    ts_ms: int
    fields: dict[str, FieldValue]


class Bucket(NamedTuple):
    """A field's mean, min, max and number of values over ``[start_ms, start_ms + every_ms)``."""

    start_ms: int
    mean: float | None
    min: float | None
    max: float | None
    count: int  # type: ignore[assignment]  # the name the protocol asks for; it hides tuple.count, unused here


class DeadLetter(NamedTuple):
    """A message that could not be taken, kept with the reason why: the topic and the exact payload bytes.

    Two clocks place it: ``received_ms`` on the receive clock, ``line_ms`` on the line's, which may be hours or
    days apart (a virtual plant run faster than real time, a plant whose gateway clocks are off).
    """

    received_ms: int
    """When it was received, ms since the epoch on the receive clock (``Delivery.received_ms``: the wall clock for
    MQTT, the demo's own clock in the demo)."""
    topic: str
    payload: bytes
    reason: str
    line_ms: int | None = None
    """The line clock when it was received, ms since the epoch: the newest source timestamp of the readings the
    ingest had stored before it (see :mod:`connectors.ingest`); None when it had stored none yet, and for letters
    kept before dead letters carried it."""


class StoredForecast(NamedTuple):
    """One forecast of one line as stored: the forecast as the service served it, and its score (None until scored;
    the forecast is None only if its write never arrived but the score's did)."""

    site: str
    line: str
    as_of_ms: int
    forecast: dict[str, Any] | None = None
    score: dict[str, Any] | None = None


class WriteOutcome(Enum):
    """Where a write went. Both outcomes are durable: the caller may acknowledge the messages."""

    WRITTEN = "written"
    """In the database."""
    SPOOLED = "spooled"
    """In the local spool on disk, to be replayed into the database in order once it answers again."""


class Health(NamedTuple):
    """Whether a write reaches the database now (probed with a real write), why not, and the batches on disk."""

    writable: bool
    detail: str
    spooled_batches: int


class StoreError(ConnectorError):
    """A store could not do what was asked (and, for writes, could not spool it either); the message says why."""


class WriteRefused(StoreError):
    """The store refused some of a write for good (it would refuse it again): not an outage, so not spooled."""


class StoreReader(Protocol):
    """Points, buckets and dead letters out, and the health of the store.

    ``range`` and ``aggregate`` are bounded: they refuse (``ValueError`` naming the argument) an end before the
    start, a span over the store's maximum (31 days by default), more than 10,000 buckets and a limit over 100,000.
    """

    def health(self) -> Health:
        """Whether a real write succeeds now, and the batches waiting in the spool."""
        ...

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
        """Raw points of a channel in ``[start_ms, end_ms)``, ordered by (ts_ms, station, machine, signal, site, line);
        only those of ``site``, ``line``, ``station`` and ``signal`` where given."""
        ...

    def last(
        self,
        channel: str,
        *,
        site: str | None = None,
        line: str | None = None,
        station: str | None = None,
        before_ms: int | None = None,
    ) -> list[StoredPoint]:
        """The latest point of every series (site, line, station, machine, signal) of a channel, of ``site``,
        ``line`` and ``station`` where given; with ``before_ms``, the latest before that time (series with no
        point before it are left out)."""
        ...

    def first_ms(self, channel: str, *, site: str | None = None, line: str | None = None) -> int | None:
        """The time of the oldest point of a channel (of ``site`` and ``line`` where given); None when there is none:
        where a line's history begins."""
        ...

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
        """Mean, min, max and count of a numeric field per interval aligned to multiples of ``every_ms``.

        Only values in ``[start_ms, end_ms)`` of the series that match the filters given count; intervals without
        values are left out.
        """
        ...

    def dead_letters(self, limit: int = 100, *, topic_prefix: str | None = None) -> list[DeadLetter]:
        """The latest dead letters, newest first; only those whose topic starts with ``topic_prefix`` if given."""
        ...

    def dead_letter_count(self, *, topic_prefix: str | None = None) -> int:
        """How many dead letters are stored (whose topic starts with ``topic_prefix``, if given)."""
        ...

    def forecasts(
        self, *, start_ms: int, end_ms: int, site: str | None = None, line: str | None = None, limit: int = 10_000
    ) -> list[StoredForecast]:
        """The forecasts made in ``[start_ms, end_ms)`` (by ``as_of_ms``), oldest first, of ``site`` and ``line``
        where given (:mod:`connectors.stores.forecasts`)."""
        ...


class Store(StoreReader, Protocol):
    """Telemetry readings and dead letters in, points, buckets and dead letters out (:class:`StoreReader`)."""

    def write(self, readings: Sequence[Reading]) -> WriteOutcome:
        """Store readings durably (in the database, or spooled to local disk); StoreError only if neither is possible."""
        ...

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> WriteOutcome:
        """Store dead letters durably; two letters of the same millisecond are both kept."""
        ...

    def write_forecasts(self, records: Sequence[StoredForecast]) -> WriteOutcome:
        """Store forecasts and scores durably: of each record the parts given (the other part stays as stored).
        WriteRefused naming the record if one cannot be stored (not JSON, too large); then none is."""
        ...

    def close(self) -> None:
        """Flush or replay what can be, stop background threads, release connections."""
        ...
