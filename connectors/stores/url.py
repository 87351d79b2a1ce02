"""Store URLs: which store to open, from one string a command line or a settings file can carry.

- ``sqlite:///abs/path.db``, ``sqlite:relative/path.db`` (``?synchronous=FULL`` for power-cut durability); the
  file is created if missing, its folder must exist;
- ``influxdb://[user:password@]host[:port]/db[?flavour=v1|v2|v3&token=..&rp=..&batch_points=..&timeout_s=..]``;
- ``influxdbs://...``: the same over TLS (``&verify_tls=false`` accepts any certificate).
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from pathlib import Path
from typing import Literal, cast

from connectors.redact import redact_url
from connectors.stores.base import Store, StoreError
from connectors.stores.influx import Flavour, InfluxStore
from connectors.stores.sqlite import SqliteStore

__all__ = ["default_spool_dir", "open_store"]

log = logging.getLogger("gigatwin.stores")

_INFLUX_PARAMS = {"flavour", "token", "rp", "batch_points", "timeout_s", "verify_tls"}


def open_store(url: str, *, spool_dir: str | Path | None = None) -> Store:
    """The store a URL names, opened. ``spool_dir``: where an InfluxDB store spools while the server is down
    (default: :func:`default_spool_dir`). A bad URL raises ValueError naming the part that is wrong.

    An InfluxDB 1.x database is created if missing (when the server answers now; else by the spool's replay). A
    SQLite file whose folder does not exist is StoreError naming the path. Messages never show a password or token.
    """
    scheme, sep, _ = url.partition(":")
    if not sep:
        raise ValueError(f"store URL {redact_url(url)!r}: no scheme (expected sqlite:, influxdb:// or influxdbs://)")
    scheme = scheme.lower()
    if scheme == "sqlite":
        return _open_sqlite(url)
    if scheme in ("influxdb", "influxdbs"):
        return _open_influx(url, scheme == "influxdbs", spool_dir)
    raise ValueError(f"store URL {redact_url(url)!r}: scheme {scheme!r} is not sqlite, influxdb or influxdbs")


def default_spool_dir(host: str, port: int, database: str) -> Path:
    """``$XDG_STATE_HOME/gigatwin/spool/HOST-PORT-DB`` (``~/.local/state`` without XDG_STATE_HOME): one per server."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{host}-{port}-{database}")
    return state / "gigatwin" / "spool" / safe


def _query(url: str, query: str, allowed: set[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ValueError(f"store URL {redact_url(url)!r}: unknown parameter {key!r} (known: {known})")
        if key in params:
            raise ValueError(f"store URL {redact_url(url)!r}: parameter {key!r} given twice")
        params[key] = value
    return params


def _open_sqlite(url: str) -> Store:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc:
        raise ValueError(
            f"store URL {redact_url(url)!r}: host {parts.hostname!r}: a SQLite URL has no host "
            "(sqlite:///abs/path.db or sqlite:rel.db)"
        )
    path = urllib.parse.unquote(parts.path)
    if not path or path.endswith("/"):
        raise ValueError(f"store URL {url!r}: path: a database file is needed (sqlite:///abs/path.db or sqlite:rel.db)")
    params = _query(url, parts.query, {"synchronous"})
    synchronous = params.get("synchronous", "NORMAL").upper()
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"store URL {url!r}: synchronous: {params['synchronous']!r} is not NORMAL or FULL")
    return SqliteStore(path, synchronous=cast(Literal["NORMAL", "FULL"], synchronous))


def _open_influx(url: str, tls: bool, spool_dir: str | Path | None) -> Store:
    parts = urllib.parse.urlsplit(url)
    shown = redact_url(url)
    if not parts.hostname:
        raise ValueError(f"store URL {shown!r}: host: missing (influxdb://host:port/db)")
    try:
        port = parts.port or 8086
    except ValueError as exc:
        raise ValueError(f"store URL {shown!r}: port: {exc}") from None
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    if not database:
        raise ValueError(f"store URL {shown!r}: database: missing (influxdb://host:port/db)")
    params = _query(url, parts.query, _INFLUX_PARAMS)
    flavour = params.get("flavour", "v1")
    if flavour not in ("v1", "v2", "v3"):
        raise ValueError(f"store URL {shown!r}: flavour: {flavour!r} is not v1, v2 or v3")
    batch_points = _positive(shown, params, "batch_points", 5000)
    if batch_points != int(batch_points):
        raise ValueError(f"store URL {shown!r}: batch_points: {params['batch_points']!r} is not a whole number")
    timeout_s = _positive(shown, params, "timeout_s", 10.0)
    verify = params.get("verify_tls", "true").lower()
    if verify not in ("true", "false", "1", "0"):
        raise ValueError(f"store URL {shown!r}: verify_tls: {params['verify_tls']!r} is not true or false")
    username = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        store = InfluxStore(
            f"{'https' if tls else 'http'}://{host}:{port}",
            database,
            flavour=cast(Flavour, flavour),
            username=username,
            password=password,
            token=params.get("token") or None,
            spool_dir=spool_dir if spool_dir is not None else default_spool_dir(parts.hostname, port, database),
            batch_points=int(batch_points),
            timeout_s=timeout_s,
            verify_tls=verify in ("true", "1"),
            retention_policy=params.get("rp") or None,
        )
    except ValueError as exc:
        raise ValueError(f"store URL {shown!r}: {exc}") from None
    if flavour == "v1":
        store.create_database = True
        try:
            store.ensure_database()
        except StoreError as exc:
            log.warning("influxdb %s: cannot make sure database %s exists now (%s); the spool's replay will", host, database, exc)
    return store


def _positive(url: str, params: dict[str, str], key: str, default: float) -> float:
    raw = params.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"store URL {url!r}: {key}: {raw!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"store URL {url!r}: {key}: must be > 0, got {raw}")
    return value
