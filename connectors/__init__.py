"""GigaTwin's edges: line files on disk (telemetry, MQTT and stores come with later issues)."""

from connectors.linefile import read_line

__all__ = ["read_line"]
