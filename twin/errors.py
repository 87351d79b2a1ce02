"""The exceptions of the twin package: one root, messages that say what is wrong and where."""

from __future__ import annotations

__all__ = ["LineError", "SnapshotError", "TwinError"]


class TwinError(Exception):
    """Root of every error the twin raises on purpose."""


class LineError(TwinError, ValueError):
    """A line description is invalid; ``problems`` lists (field path, what is wrong)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {path}: {msg}" for path, msg in problems]
        super().__init__("invalid line description\n  " + "\n  ".join(lines))


class SnapshotError(TwinError, ValueError):
    """A starting state does not fit the line it is applied to; the message names the station or buffer."""
