"""The exceptions of the connectors package: one root, messages that say what failed and where."""

from __future__ import annotations

__all__ = ["ConnectorError"]


class ConnectorError(Exception):
    """Root of every error the connectors raise on purpose (a broker, a store, a wire format)."""
