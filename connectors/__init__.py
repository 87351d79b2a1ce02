"""GigaTwin's edges, where wire formats and I/O live: line files on disk, the telemetry contract (topics and JSON
payloads), MQTT in and out, the ingest pipeline (decode, validate, store, hand events on), the stores (SQLite,
InfluxDB with a disk spool), the virtual plant and fault injection, and the live state rebuilt from the store."""

from connectors.linefile import read_line

__all__ = ["read_line"]
