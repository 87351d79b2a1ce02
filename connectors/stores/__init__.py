"""Where telemetry is kept: one :class:`Store` protocol, an embedded SQLite store, an InfluxDB store with a disk
spool, and an in-memory fake for tests; :func:`open_store` opens the one a URL names."""

from connectors.stores.base import (
    Bucket,
    DeadLetter,
    Health,
    Store,
    StoredForecast,
    StoredPoint,
    StoreError,
    WriteOutcome,
    WriteRefused,
)
from connectors.stores.influx import InfluxCounters, InfluxStore, PartialWriteError
from connectors.stores.memory import MemoryStore
from connectors.stores.sqlite import SqliteStore
from connectors.stores.url import open_store

__all__ = [
    "Bucket",
    "DeadLetter",
    "Health",
    "InfluxCounters",
    "InfluxStore",
    "MemoryStore",
    "PartialWriteError",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoredForecast",
    "StoredPoint",
    "WriteOutcome",
    "WriteRefused",
    "open_store",
]
