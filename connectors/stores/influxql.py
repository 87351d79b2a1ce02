"""InfluxQL for the store's queries: quoting, the statements, and reading ``/query`` answers.

Station ids and signal names come from users, so every identifier is double-quoted and every string literal
single-quoted with InfluxQL's escapes (a raw newline is a parse error there, hence ``\\n``). Every statement
over telemetry carries a bounded time range, and aggregates use ``fill(none)`` so that empty intervals cost
nothing and are left out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from connectors.stores.base import StoreError

__all__ = [
    "Series",
    "aggregate_statement",
    "count_statement",
    "ident",
    "last_statement",
    "literal",
    "parse_results",
    "prefix_regex",
    "select_statement",
    "tag_filter",
    "time_range",
]

_IDENT_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_LITERAL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n"})


class Series(NamedTuple):
    """One series of a query answer: measurement, group-by tags, column names and rows."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]


def ident(name: str) -> str:
    """A double-quoted InfluxQL identifier."""
    return '"' + name.translate(_IDENT_ESCAPES) + '"'


def literal(value: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + value.translate(_LITERAL_ESCAPES) + "'"


_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def prefix_regex(prefix: str) -> str:
    """An InfluxQL regex literal matching strings that start with ``prefix`` (RE2 syntax: every ASCII punctuation
    character escaped, ``/`` too since it ends the literal, control characters as ``\\x{..}``)."""
    out = []
    for c in prefix:
        if c in _PUNCTUATION:
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{{{ord(c):02x}}}")
        else:
            out.append(c)
    return "/^" + "".join(out) + "/"


def time_range(start_ms: int, end_ms: int, *, end_inclusive: bool = False) -> str:
    """``time >= start AND time < end`` (or ``<=``) in nanoseconds since the epoch, InfluxQL's native unit."""
    return f"time >= {start_ms * 1_000_000} AND time {'<=' if end_inclusive else '<'} {end_ms * 1_000_000}"


def tag_filter(tags: Sequence[tuple[str, str | None]]) -> str:
    """`` AND "tag" = 'value'`` for each tag given a value (None: no condition)."""
    return "".join(f" AND {ident(tag)} = {literal(value)}" for tag, value in tags if value is not None)


def select_statement(source: str, fields: Sequence[str], tags: Sequence[str], where: str, tail: str = "") -> str:
    """A raw selection of fields and tags (as columns) from ``source`` (an already quoted measurement)."""
    columns = [ident(f) for f in fields] + [f"{ident(t)}::tag" for t in tags]
    return f"SELECT {', '.join(columns)} FROM {source} WHERE {where}{tail}"


def last_statement(source: str, fields: Sequence[str], group_tags: Sequence[str], where: str) -> str:
    """The newest point of every series: the newest row of each group of ``group_tags``.

    Bounded by ``LIMIT 1`` per series rather than by time: the latest point of a machine may be arbitrarily old.
    """
    columns = ", ".join(ident(f) for f in fields)
    condition = f" WHERE {where}" if where else ""
    groups = ", ".join(ident(t) for t in group_tags)
    return f"SELECT {columns} FROM {source}{condition} GROUP BY {groups} ORDER BY time DESC LIMIT 1"


def aggregate_statement(source: str, field: str, where: str, every_ms: int) -> str:
    """Mean, min, max and count of ``field`` per interval of ``every_ms`` aligned to the epoch, empty ones left out."""
    f = ident(field)
    return f"SELECT mean({f}), min({f}), max({f}), count({f}) FROM {source} WHERE {where} GROUP BY time({every_ms}ms) fill(none)"


def count_statement(source: str, field: str, where: str) -> str:
    """The number of values of ``field``."""
    condition = f" WHERE {where}" if where else ""
    return f"SELECT count({ident(field)}) FROM {source}{condition}"


def parse_results(body: bytes, statement: str) -> list[Series]:
    """The series of a (chunked) ``/query`` answer, chunks of one series joined; StoreError with the server's error."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = {}
    for raw in body.splitlines():
        if not raw.strip():
            continue
        try:
            chunk = json.loads(raw)
        except ValueError as exc:
            raise StoreError(f"influxdb: an answer that is not JSON ({exc}) to: {statement}") from exc
        if "error" in chunk:
            raise StoreError(f"influxdb: query refused: {chunk['error']} (query: {statement})")
        for result in chunk.get("results", []):
            if "error" in result:
                raise StoreError(f"influxdb: query failed: {result['error']} (query: {statement})")
            for s in result.get("series", []):
                tags = s.get("tags") or {}
                key = (s.get("name", ""), tuple(sorted(tags.items())))
                if key in merged:
                    merged[key].values.extend(s.get("values", []))
                else:
                    merged[key] = Series(key[0], dict(tags), list(s.get("columns", [])), list(s.get("values", [])))
    return list(merged.values())
