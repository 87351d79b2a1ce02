"""Forecasts in the store: each forecast the service made, and its score once its horizon has passed.

A record is keyed by ``(site, line, as_of_ms)``: the forecast's instant on the line's clock. Its two parts are
JSON documents written at different times: the forecast when it is made, the score (``twin.scoring.Score``) once
the line has passed its horizon. Writing a record with only one part given leaves the other as stored; writing a
part again replaces it (a redelivered write is idempotent). Non-finite numbers are stored as null (JSON has none).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from connectors.stores.base import StoredForecast, WriteRefused
from connectors.stores.points import INT64_MAX

__all__ = ["FORECASTS", "MAX_DOCUMENT_BYTES", "check_record", "decode_document", "encode_document", "finite_json"]

FORECASTS = "gigatwin_forecasts"
"""The measurement (InfluxDB) or table (SQLite) of forecasts: tags site and line, string fields forecast and score."""
MAX_DOCUMENT_BYTES = 60_000
"""The largest document a record holds (InfluxDB 1.x refuses string fields over 64 KB)."""
_MAX_TS_MS = INT64_MAX // 1_000_000  # InfluxDB counts nanoseconds in 64 bits: the year 2262


def finite_json(value: Any) -> Any:
    """``value`` (JSON-like: mappings, lists, numbers) with every non-finite float as None (JSON has none)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def encode_document(doc: Mapping[str, Any], what: str) -> str:
    """``doc`` as compact JSON (non-finite numbers as null); WriteRefused naming ``what`` if it is not JSON or too
    large."""
    try:
        text = json.dumps(finite_json(doc), separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise WriteRefused(f"{what}: not a JSON document: {exc}") from exc
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise WriteRefused(f"{what}: {len(text):,} characters, more than the {MAX_DOCUMENT_BYTES:,} bytes a record holds")
    return text


def decode_document(text: str | None) -> dict[str, Any] | None:
    """The document :func:`encode_document` gave (None for None, and for text that is not a JSON object)."""
    if text is None:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def check_record(record: StoredForecast) -> tuple[str | None, str | None]:
    """The record's forecast and score as JSON (None where not given); WriteRefused naming what is wrong."""
    where = f"forecast of {record.site}/{record.line} as of {record.as_of_ms} ms"
    if not (0 <= record.as_of_ms <= _MAX_TS_MS):
        raise WriteRefused(f"{where}: as_of_ms must lie between 1970 and 2262")
    if not record.site or not record.line:
        raise WriteRefused(f"{where}: site and line must not be empty")
    if record.forecast is None and record.score is None:
        raise WriteRefused(f"{where}: neither a forecast nor a score to write")
    forecast = None if record.forecast is None else encode_document(record.forecast, f"{where}: forecast")
    score = None if record.score is None else encode_document(record.score, f"{where}: score")
    return forecast, score
