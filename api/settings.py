"""The service's settings: the only place that reads the environment.

Values come, highest priority first, from the keyword arguments of ``Settings(...)``, environment variables
(``GIGATWIN_`` + the field name in capitals, e.g. ``GIGATWIN_MQTT_URL``), a ``.env`` file in the working
directory, and a config file (TOML, YAML or JSON) named by ``GIGATWIN_CONFIG_FILE``. A missing or wrong setting
fails validation with its name (:func:`load_settings` turns that into a :class:`SettingsError` listing each one).
"""

from __future__ import annotations

import ipaddress
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from connectors.redact import redact_url

__all__ = [
    "EXAMPLE_SCENARIOS",
    "REFERENCE_LINE",
    "PipelineSettings",
    "Role",
    "Settings",
    "SettingsError",
    "get_settings",
    "load_pipeline_settings",
    "load_settings",
]

REFERENCE_LINE = Path(__file__).resolve().parent.parent / "simulations" / "lines" / "reference_cell_line.yaml"
"""The reference battery-cell line shipped with GigaTwin."""
EXAMPLE_SCENARIOS = Path(__file__).resolve().parent.parent / "simulations" / "scenarios"
"""The example what-if scenarios shipped with GigaTwin (for the reference line)."""

Role = Literal["viewer", "operator"]
"""``viewer`` reads; ``operator`` also changes settings (and, later, runs what-ifs)."""

_KeyList = Annotated[list[SecretStr], NoDecode]
_S = TypeVar("_S", bound="PipelineSettings")


class SettingsError(ValueError):
    """Settings that are missing or wrong; the message names every offending setting and how to set it."""


class PipelineSettings(BaseSettings):
    """Every setting of the service, checked as far as the pipeline needs (``gigatwin ingest``: no HTTP side).

    It knows the HTTP settings too, so that one ``.env`` or config file serves ``serve`` and ``ingest`` alike;
    :class:`Settings` adds the checks that serving HTTP needs (API keys, loopback-only ``auth_disabled``).
    """

    model_config = SettingsConfigDict(env_prefix="GIGATWIN_", env_file=".env", extra="forbid", validate_default=True)

    config_file: Path | None = None
    """A config file (``.toml``, ``.json``, else YAML) of settings; only read from ``GIGATWIN_CONFIG_FILE``."""
    source: Literal["mqtt", "demo"] = "mqtt"
    """``mqtt``: consume a real (or virtual) plant's telemetry from the broker; ``demo``: run the virtual plant
    in-process and feed it straight into the pipeline (no broker)."""
    line_file: Path = REFERENCE_LINE
    """The line file (YAML) the telemetry belongs to."""
    mqtt_url: str | None = None
    """The broker, ``mqtt[s]://[user:password@]host[:port][?client_id=..&ca=..]``; required with source ``mqtt``."""
    mqtt_group: str | None = None
    """A shared-subscription group: several services with one group split the line's stream."""
    mqtt_client_id: str | None = None
    """Stable across restarts and unique per process (default: derived from line, group and host)."""
    topic_prefix: str = "gigatwin"
    site: str = "plant1"
    store_url: str = "sqlite:gigatwin.db"
    """``sqlite:PATH`` or ``influxdb[s]://[user:password@]host:port/db[?flavour=v1|v2|v3&token=..]``."""
    spool_dir: Path | None = None
    """Where InfluxDB writes wait while it is down (default: under ``$XDG_STATE_HOME/gigatwin/spool``)."""
    max_lead_s: float = Field(300.0, gt=0)
    """How far (seconds) a source timestamp may lie ahead of the receive clock; a message further ahead is a dead
    letter (a gateway clock running ahead must not move the line's clock). A virtual plant run faster than real
    time needs more: about ``hours x 3600 x (1 - 1/speed)`` for a run of ``hours`` simulated hours."""

    shift_hours: float = Field(8.0, gt=0, le=24)
    shift_origin_h: float = Field(6.0, ge=0, lt=24)
    """Hour of the day (UTC) a shift starts at: 06:00, 14:00 and 22:00 for 8-hour shifts from 6."""
    plan_per_hour: float | None = Field(None, ge=0)
    """Planned good output per hour (default: the constraint station's ideal rate times the yield after it)."""
    history_hours: float = Field(48.0, gt=0, le=24 * 14)
    """How far back live KPIs, downtime and stop attribution can look (kept in memory)."""
    stale_after_s: float = Field(120.0, gt=0)
    """A station whose newest data was taken longer ago than this (wall clock) is shown as stale: on the dashboard,
    in ``/health/ready`` and in ``/metrics``."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    """0: any free port (the address is printed)."""
    auth_disabled: bool = False
    """Serve every route without an API key. Only allowed on a loopback host."""
    viewer_keys: _KeyList = Field(default_factory=list)
    """API keys that may read (comma-separated in the environment)."""
    operator_keys: _KeyList = Field(default_factory=list)
    """API keys that may also change settings and run what-ifs (comma-separated in the environment)."""

    demo_speed: float = Field(60.0, gt=0, le=100_000)
    """Demo: simulated seconds per wall second."""
    demo_seed: int = 0
    demo_warmup_hours: float = Field(504.0, ge=0, le=24 * 90)
    """Demo: simulated hours run before the feed starts, so the plant starts full (the aging store takes 14 days)."""
    demo_malformed: float = Field(0.0, ge=0, le=1)
    """Demo: the share of messages the virtual plant corrupts, to show dead letters."""

    stream_period_s: float = Field(0.5, gt=0, le=60)
    """How often the live stream sends the state changes gathered since its last message."""
    kpi_period_s: float = Field(2.0, gt=0, le=600)
    """How often the live stream sends KPI updates."""
    forecast_period_s: float = Field(60.0, ge=0, le=86_400)
    """How often the service refreshes its default forecast (to the end of the shift; ``/forecast``); 0: only on
    demand."""
    forecast_replications: int = Field(200, ge=1, le=10_000)
    """Replications of a forecast unless its request says otherwise."""
    forecast_max_replication_hours: float = Field(2_000.0, gt=0, le=1_000_000)
    """The most replications x horizon hours one forecast request may ask for: more is refused (400) rather than hold
    the forecast processes for minutes (the reference line runs about 30 replication-hours a second per process)."""
    forecast_workers: int = Field(1, ge=0, le=64)
    """Processes that run forecast replications (started with forkserver); 0: in a thread of the pipeline's process."""
    dask_scheduler: str | None = Field(None, min_length=1)
    """A Dask cluster's scheduler (``tcp://host:8786``) on which what-ifs run their replications (the ``dask`` extra:
    ``pip install 'gigatwin[dask]'``; the cluster's workers need the same gigatwin version installed); none: on this
    machine's processes (``whatif_workers``). Results are the same on either."""
    window_workers: int = Field(1, ge=0, le=64)
    """Processes that answer window queries (``/oee``, ``/downtime``, ``/stops``), so their replays never hold the
    interpreter the event loop needs; 0: in threads of the service's process (tests, tiny machines)."""
    whatif_workers: int = Field(2, ge=1, le=256)
    """Processes that run a what-if's replications (started with forkserver, for the job's length); 1: in a thread
    of the service's process (tests, tiny machines). Ignored when ``dask_scheduler`` names a cluster."""
    whatif_queue: int = Field(8, ge=1, le=1000)
    """What-ifs that may wait while one runs; one more is refused (429 with ``Retry-After``)."""
    whatif_keep_s: float = Field(3600.0, gt=0, le=30 * 86_400)
    """How long a finished what-if (its result, its error) is kept after it finished; then it is forgotten (404)."""
    whatif_max_replication_hours: float = Field(50_000.0, gt=0, le=10_000_000)
    """The most replications x (hours + warm-up) x 2 runs (baseline and scenario) one what-if may ask for: more is
    refused (422) rather than hold the what-if processes for hours. The default takes 30 replications of a shift
    from steady state after the 504 hours the reference line's aging store needs to fill (30 x 512 x 2 = 30,720)."""
    scenario_dir: Path = EXAMPLE_SCENARIOS
    """The folder of scenario files (``*.yaml``) the dashboard's what-if page offers (a missing folder offers none)."""

    @field_validator("viewer_keys", "operator_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("line_file")
    @classmethod
    def _line_exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSettings:
        if self.source == "mqtt" and not self.mqtt_url:
            raise ValueError("mqtt_url is required when source is 'mqtt' (set GIGATWIN_MQTT_URL)")
        return self

    def __repr_args__(self) -> Any:
        # Broker and store URLs carry passwords and tokens: never in a repr (logs, tracebacks); keys are SecretStr.
        for name, value in super().__repr_args__():
            if name in _URL_FIELDS and isinstance(value, str):
                value = redact_url(value)
            yield name, value

    def roles(self) -> dict[str, Role]:
        """Each API key and its role."""
        out: dict[str, Role] = {k.get_secret_value(): "viewer" for k in self.viewer_keys}
        out.update({k.get_secret_value(): "operator" for k in self.operator_keys})
        return out

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then ``.env``, then the config file of ``GIGATWIN_CONFIG_FILE``."""
        return init_settings, env_settings, dotenv_settings, _ConfigFileSource(settings_cls)


_URL_FIELDS = frozenset({"mqtt_url", "store_url"})


class Settings(PipelineSettings):
    """Everything ``gigatwin serve`` needs: where telemetry comes from and goes, the line, the HTTP side, security."""

    pipeline_process: bool = True
    """Run the pipeline (source, ingest, store writes, live state, demo feed, window queries) in a process of its own
    (:mod:`api.line_process`), so that the HTTP server's event loop never waits for them; false: in the server's
    process (tests that reach into the pipeline, debugging)."""

    @model_validator(mode="after")
    def _secure(self) -> Settings:
        if self.auth_disabled and not _is_loopback(self.host):
            raise ValueError(f"auth_disabled is only allowed on a loopback host, not on {self.host!r}")
        if not self.auth_disabled and not (self.viewer_keys or self.operator_keys):
            raise ValueError(
                "no API keys: set GIGATWIN_VIEWER_KEYS and/or GIGATWIN_OPERATOR_KEYS (comma-separated), "
                "or GIGATWIN_AUTH_DISABLED=true on a loopback host"
            )
        viewers = {k.get_secret_value() for k in self.viewer_keys}
        if viewers & {k.get_secret_value() for k in self.operator_keys}:
            raise ValueError("viewer_keys and operator_keys share a key: give each key one role")
        return self


class _ConfigFileSource(PydanticBaseSettingsSource):
    """The file named by ``GIGATWIN_CONFIG_FILE``: a mapping of setting names (lower case) to values."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        name = os.environ.get("GIGATWIN_CONFIG_FILE")
        self.path = Path(name) if name else None
        self.values: dict[str, Any] = _read_config(self.path) if self.path is not None else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """The value the file gives ``field_name``, if any."""
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"GIGATWIN_CONFIG_FILE: cannot read {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            import tomllib

            data: Any = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SettingsError(f"GIGATWIN_CONFIG_FILE: {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"GIGATWIN_CONFIG_FILE: {path} must hold a mapping of settings, not {type(data).__name__}")
    return {str(k).lower(): v for k, v in data.items()}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: Any) -> Settings:
    """Settings from the sources above, ``overrides`` first; raises :class:`SettingsError` naming each bad setting."""
    return _load(Settings, overrides)


def load_pipeline_settings(**overrides: Any) -> PipelineSettings:
    """Like :func:`load_settings` for the pipeline alone (``gigatwin ingest``): the HTTP side is not checked."""
    return _load(PipelineSettings, overrides)


def _load(cls: type[_S], overrides: dict[str, Any]) -> _S:
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"])
            name = f"{loc} (GIGATWIN_{loc.upper()})" if loc else "settings"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {msg}")
        raise SettingsError("bad settings:\n  " + "\n  ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once (the app factory takes them as an argument; this is the default)."""
    return load_settings()
