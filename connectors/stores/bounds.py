"""The limits every store puts on a query, so that no request can ask for an unbounded amount of work."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_SPAN_MS", "MAX_BUCKETS", "MAX_LIMIT", "QueryBounds", "check_limit"]

DEFAULT_MAX_SPAN_MS = 31 * 86_400_000
"""The longest time range a query may cover unless a store is configured otherwise: 31 days."""
MAX_BUCKETS = 10_000
"""The most intervals one aggregate query may return."""
MAX_LIMIT = 100_000
"""The most points (or dead letters) one query may return."""


@dataclass(frozen=True)
class QueryBounds:
    """The limits of one store's queries; each check raises ValueError naming the offending argument."""

    max_span_ms: int = DEFAULT_MAX_SPAN_MS

    def __post_init__(self) -> None:
        if self.max_span_ms <= 0:
            raise ValueError(f"max_span_ms: must be > 0, got {self.max_span_ms}")

    def check_span(self, start_ms: int, end_ms: int) -> None:
        """Refuse an end before the start and a span over the maximum."""
        if end_ms < start_ms:
            raise ValueError(f"end_ms: {end_ms} is before start_ms {start_ms}")
        if end_ms - start_ms > self.max_span_ms:
            raise ValueError(
                f"end_ms: the span {end_ms - start_ms} ms from start_ms exceeds the maximum of {self.max_span_ms} ms "
                f"({self.max_span_ms / 86_400_000:g} days)"
            )

    def check_range(self, start_ms: int, end_ms: int, limit: int, offset: int) -> None:
        """Refuse a bad span, a limit outside 1..100,000 and a negative offset."""
        self.check_span(start_ms, end_ms)
        check_limit(limit)
        if offset < 0:
            raise ValueError(f"offset: must be >= 0, got {offset}")

    def check_aggregate(self, start_ms: int, end_ms: int, every_ms: int) -> None:
        """Refuse a bad span, a non-positive interval and more than 10,000 intervals."""
        self.check_span(start_ms, end_ms)
        if every_ms <= 0:
            raise ValueError(f"every_ms: must be > 0, got {every_ms}")
        if end_ms > start_ms:
            buckets = (end_ms - 1) // every_ms - start_ms // every_ms + 1
            if buckets > MAX_BUCKETS:
                raise ValueError(
                    f"every_ms: {every_ms} ms makes {buckets} intervals between start_ms and end_ms; "
                    f"at most {MAX_BUCKETS} are allowed"
                )


def check_limit(limit: int) -> None:
    """Refuse a limit outside 1..100,000."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: must be between 1 and {MAX_LIMIT}, got {limit}")
