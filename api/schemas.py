"""What the API returns: response models (pydantic compiles their serializers, and OpenAPI documents them).

Times are ISO 8601 in UTC. On a plant they are the gateways' source timestamps; in the demo, the virtual
plant's clock, which runs ``demo_speed`` times faster than the wall clock from the moment it started.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ERROR_RESPONSES",
    "MAX_WHATIF_HOURS",
    "MIN_WHATIF_HOURS",
    "AggregateOut",
    "AttributedStopOut",
    "AttributionOut",
    "BranchOut",
    "BucketOut",
    "CalendarNowOut",
    "CalendarOut",
    "CauseOut",
    "ChangeoverOut",
    "DeadLetterOut",
    "DeadLettersOut",
    "DowntimeOut",
    "DowntimeReasonOut",
    "ErrorBody",
    "ErrorOut",
    "HealthOut",
    "LineOeeOut",
    "LineOut",
    "LineSummaryOut",
    "MachineOut",
    "OeeOut",
    "PlanIn",
    "PlannedStopOut",
    "PointOut",
    "PointsOut",
    "ProcessValueOut",
    "ReadinessOut",
    "ShiftOut",
    "ShiftSpecOut",
    "StationDowntimeOut",
    "StationInputOut",
    "StationOeeOut",
    "StationOut",
    "StationSpecOut",
    "StatusOut",
    "StoreOut",
    "StretchOut",
    "TaskOut",
    "ThroughputOut",
    "TraceStepOut",
    "WhatIfIn",
    "WhatIfJobOut",
    "WhatIfJobsOut",
    "WhatIfProgressOut",
    "WhatIfScenarioOut",
    "WhatIfScenariosOut",
    "hours_to_datetime",
]


def hours_to_datetime(hours: float) -> datetime:
    """A twin time (hours since the Unix epoch, UTC) as a datetime."""
    return datetime.fromtimestamp(hours * 3600.0, UTC)


def hours_to_iso(hours: float) -> str:
    """A twin time as ISO 8601 text, in the form the response models write their datetimes (``...Z``)."""
    return hours_to_datetime(hours).isoformat().replace("+00:00", "Z")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- errors --------------------------------------------------------------------------------------------------------
class ErrorBody(_Out):
    """What went wrong: the HTTP status, a stable code, a message for people, and where (for invalid input)."""

    status: int
    code: str = Field(examples=["not_found", "invalid_request", "unauthorized", "forbidden"])
    message: str
    details: list[dict[str, object]] = Field(default_factory=list)
    """For invalid input: one entry per problem, with ``loc`` (where) and ``msg`` (what)."""


class ErrorOut(_Out):
    """Every error response has this shape."""

    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "A bad argument (the message names it)"},
    401: {"model": ErrorOut, "description": "No API key, or not a valid one"},
    403: {"model": ErrorOut, "description": "The key's role may not do this"},
    404: {"model": ErrorOut, "description": "No such line, station or route"},
    422: {"model": ErrorOut, "description": "Invalid parameters or body (details say where)"},
}
"""The error responses every route may give, documented with their one shape."""


# -- lines ---------------------------------------------------------------------------------------------------------
class StationInputOut(_Out):
    """One input of a station: the station feeding it (through the buffer after that station) and how many of its
    units one unit made consumes."""

    station: str
    per_unit: int


class PlannedStopOut(_Out):
    """A planned stop: its first window's start, its length, its period (None: once) and whether machines finish the
    batch in hand first."""

    name: str
    start: datetime
    duration_h: float
    every_h: float | None
    after_batch: bool


class ChangeoverOut(_Out):
    """A station's changeover (SETUP): its name (the reason its machines show), its mean length, and when it falls
    due: after every ``every_units`` units a machine made, or on ``schedule``."""

    name: str
    mean_duration_h: float
    every_units: int | None
    schedule: PlannedStopOut | None


class StationSpecOut(_Out):
    """A station as the line file describes it, and the buffer after it."""

    id: str
    name: str
    kind: Literal["process", "delay"]
    machines: int
    ideal_rate_per_hour: float
    """Good or bad units per hour the station can process at best (all machines working, full batches)."""
    batch_size: int | None
    scrap: float
    capacity: int | None
    """A delay station's capacity."""
    dwell_h: float | None
    buffer_after: int | None
    """Units that can wait after the station (None: unbounded; 0: direct hand-off; the last station has none)."""
    signals: dict[str, str]
    """Process signals the station reports, with their units."""
    inputs: list[StationInputOut] = []
    """The stations it takes from, in the line file's order (empty: the line's supply, the start of a branch; several:
    a merge station, starved while any input is short)."""
    feeds: str | None = None
    """The station it feeds (None: the last station, which ships)."""
    branch: str = "trunk"
    """The chain of stations it lies on (``LineOut.branches``): ``trunk`` for the chain that ends at the last station,
    else the id of the chain's first station (a branch start, or a merge station whose output merges again)."""
    changeover: ChangeoverOut | None = None
    planned_stops: list[PlannedStopOut] = []
    """The station's own planned stops (on top of the line's calendar and planned stops)."""


class BranchOut(_Out):
    """A chain of stations, each feeding the next: the line split at its merge stations. A chain starts at a branch
    start (taking from the line's supply) or at a merge station, and ends where it feeds a merge station (``into``)
    or at the last station (the ``trunk``). A serial line is one chain, its trunk."""

    id: str
    """``trunk``, or the chain's first station."""
    stations: list[str]
    into: str | None
    """The merge station the chain feeds (None for the trunk)."""


class ShiftSpecOut(_Out):
    """A shift of the calendar: it starts at local clock time ``start`` (HH:MM) on each working day."""

    name: str
    start: str
    hours: float


class CalendarOut(_Out):
    """The line's working pattern: shifts starting on working ``days`` in the calendar's time zone, breaks inside
    shifts, holidays on which no shift starts."""

    timezone: str
    days: list[str]
    shifts: list[ShiftSpecOut]
    breaks: list[ShiftSpecOut]
    """Each break's local start and length in hours (taken in whichever shift it falls in)."""
    holidays: list[str]
    """ISO dates."""


class LineSummaryOut(_Out):
    """A line this service watches."""

    id: str
    stations: int
    constraint: str


class LineOut(_Out):
    """A line's description and topology: stations in the line file's flow order (every input before the station it
    feeds), each feeding one station through its buffer; a tree of branches merging into the last station."""

    id: str
    stations: list[StationSpecOut]
    edges: list[tuple[str, str]]
    """(from, to) station pairs: each station and the station it feeds, in flow order (a merge station has several)."""
    constraint: str
    """The station with the lowest ideal rate."""
    plan_per_hour: float
    shift_hours: float
    config_hash: str
    branches: list[BranchOut] = []
    """The line's chains of stations, in the order a drawing lists them: each chain before the one it merges into,
    the trunk last (one chain, the trunk, for a serial line)."""
    calendar: CalendarOut | None = None
    """The shift calendar (None: the line works round the clock)."""
    planned_stops: list[PlannedStopOut] = []
    """Planned stops of the whole line."""


class PlanIn(BaseModel):
    """A new production plan."""

    model_config = ConfigDict(extra="forbid")

    plan_per_hour: float = Field(ge=0, le=1e9)
    """Planned good output per hour."""


# -- live status ----------------------------------------------------------------------------------------------------
class MachineOut(_Out):
    """One machine now (``state`` None before its first report)."""

    machine: int
    state: str | None
    since: datetime | None
    reason: str
    good: int
    scrapped: int


class StoreOut(_Out):
    """A delay station's occupancy."""

    dwelling: int
    held: int
    intake_blocked: bool
    capacity: int
    fill: float


class ProcessValueOut(_Out):
    """The latest value of a process signal."""

    value: float
    unit: str
    at: datetime
    machine: int


class StationOut(_Out):
    """A station now: its state summarised over its machines (WORKING while any machine works), since when and why,
    machine counts per state, output since the live state began, the buffer after it and its latest process values."""

    id: str
    kind: str
    data_seen_at: datetime | None = None
    """When (wall clock) the service last took data of this station (None: none since it started); older than the
    status's ``stale_after_s``, what it shows is stale."""
    state: str | None
    since: datetime | None
    """When the station entered its summary state (None if not yet known)."""
    reason: str
    """The most common reason among its machines in that state (a failure mode), or empty."""
    machine_counts: dict[str, int]
    down_share: float
    good: int
    scrapped: int
    buffer_level: int | None
    buffer_capacity: int | None
    buffer_fill: float | None
    """Level over capacity (None for an unbounded buffer or before the first report)."""
    store: StoreOut | None
    process_values: dict[str, ProcessValueOut]
    machines: list[MachineOut] | None = None
    """Per machine, when asked for (``?machines=true``)."""


class StretchOut(_Out):
    """A stretch of the line's time: working (``reason`` None) or stopped by its calendar or a planned stop."""

    start: datetime
    """When it began (the first stretch: at most a week before ``at``, where the search for its start stops)."""
    end: datetime | None
    """When it ends (None: not within 400 days)."""
    reason: str | None
    """None while working; else ``off_shift``, ``break``, ``holiday`` or the line's planned stop's name."""


class CalendarNowOut(_Out):
    """Where the line's calendar stands at ``at``: whether the line is asked to work, why not, and until when."""

    at: datetime
    working: bool
    """Asked to work at ``at``: in a shift, not in a break, holiday or planned stop of the line (a station's own
    planned stops and changeovers show in its state)."""
    reason: str | None
    """Why not (None while working): ``off_shift``, ``break``, ``holiday`` or the line's planned stop's name."""
    since: datetime | None
    """When the current stretch began (None: the line works round the clock, or it began more than a week before)."""
    until: datetime | None
    """When it ends (None: not within 400 days; never, for a line without a calendar or planned stops)."""
    shift: str | None
    """The calendar's shift ``at`` falls in, by name (its start time when unnamed; None outside shifts or without a
    calendar)."""
    shift_start: datetime | None
    shift_end: datetime | None
    stretches: list[StretchOut]
    """The stretches from the current one's start through the next ``hours`` (the route's parameter; 24 in the
    status), in time order."""


class ShiftOut(_Out):
    """The current shift: good units shipped so far against the plan so far."""

    start: datetime
    end: datetime
    good: int
    plan: float
    attainment: float | None
    """good / plan (None while the plan is 0)."""


class StationOeeOut(_Out):
    """A station's OEE over a window, its three factors and how its time was spent."""

    id: str
    availability: float | None
    """None when the window lies wholly in a planned stop: nothing was asked of the station (so for the others)."""
    performance: float | None
    """Above 1 only when machines ran faster than their ideal cycle."""
    quality: float
    oee: float | None
    state_fractions: dict[str, float]
    throughput_per_hour: float
    good: int
    scrapped: int


class LineOeeOut(_Out):
    """The line's OEE: its constraint station's (the lowest ideal rate), with the line's good output beside it."""

    constraint: str
    availability: float | None
    performance: float | None
    quality: float
    oee: float | None
    throughput_per_hour: float
    good: int
    scrapped: int


class OeeOut(_Out):
    """OEE and its losses over ``[start, end)``, for the line and each station."""

    start: datetime
    end: datetime
    line: LineOeeOut
    stations: list[StationOeeOut]
    bottleneck: str
    """The station with the longest mean active period (Roser et al. 2001), over the window."""
    bottleneck_shares: dict[str, float] = {}
    """Per station, the share of the window it was the momentary bottleneck (shifting-bottleneck method, Roser et al.
    2002); given by ``/oee``, not in the status's shift-so-far figures."""
    active_periods: int = 0
    """Active periods of all stations in the window: the evidence the bottleneck is judged from (see the README)."""


class StatusOut(_Out):
    """The line now: every station, the shift's output against plan and the shift's OEE so far."""

    line: str
    now: datetime | None
    """The line's clock: the latest source timestamp taken (None before the first)."""
    shift: ShiftOut | None
    good: int
    scrapped: int
    released: int
    wip: int
    events: int
    late_events: int
    dropped_events: int
    stations: list[StationOut]
    oee: OeeOut | None
    """Over the shift so far (None at its very start)."""
    data_seen_at: datetime | None = None
    """When (wall clock) the service last took data of any station (None: none since it started)."""
    history_start: datetime | None = None
    """Where the retained history begins: the earliest ``start`` the live-state routes take."""
    stale_after_s: float = 120.0
    """Data older than this is stale (setting ``stale_after_s``)."""
    calendar: CalendarNowOut | None = None
    """Where the line's calendar stands at the line's clock (None before the first telemetry)."""


class ThroughputOut(_Out):
    """Good units shipped per interval, up to ``end`` (the line's clock): the last interval is still filling."""

    end: datetime
    good_total: int
    """Good units shipped since the live state began, at ``end`` (the counter the stream's ``kpi.good`` carries)."""
    every_s: float
    start: list[datetime]
    good: list[int]
    covered_s: list[float]
    """Seconds of each interval that the window covers: ``every_s``, less for the first (before the retained history
    began) and the last (still filling, up to ``end``)."""
    per_hour: list[float]
    """Good units per hour of each interval's covered part: the newest point does not dip because its interval has
    not finished."""


# -- history -------------------------------------------------------------------------------------------------------
class PointOut(_Out):
    """One stored point."""

    ts: datetime
    station: str
    machine: int
    signal: str
    fields: dict[str, float | int | str | bool]


class PointsOut(_Out):
    """A page of raw points; ask again with ``offset=next_offset`` for the next (None: no more)."""

    channel: str
    start: datetime
    end: datetime
    points: list[PointOut]
    next_offset: int | None


class BucketOut(_Out):
    """A field's statistics over one interval."""

    start: datetime
    mean: float | None
    min: float | None
    max: float | None
    count: int


class AggregateOut(_Out):
    """A field's windowed aggregates; intervals without values are left out."""

    channel: str
    field: str
    every_s: float
    start: datetime
    end: datetime
    buckets: list[BucketOut]


# -- downtime and attribution -------------------------------------------------------------------------------------
class DowntimeReasonOut(_Out):
    """Machine-hours one station spent in a stop state (down, setup, planned stop) for one reason, over how many stops,
    and its place in the Pareto (``share`` of the Pareto's total, ``cumulative_share`` with every larger entry)."""

    station: str
    state: str
    reason: str
    hours: float
    stops: int
    share: float
    cumulative_share: float


class StationDowntimeOut(_Out):
    """One station's downtime Pareto."""

    hours: float
    reasons: list[DowntimeReasonOut]


class DowntimeOut(_Out):
    """A Pareto of stop reasons over ``[start, end)``: the line's (``top`` entries) and each station's."""

    start: datetime
    end: datetime
    hours: float
    """Machine-hours lost to every stop reason of every station."""
    line: list[DowntimeReasonOut]
    stations: dict[str, StationDowntimeOut]


class CauseOut(_Out):
    """A cause of the chosen station's stops, with the hours and stops it explains."""

    station: str | None
    """None for ``supply`` (the first station was starved) and ``shipping`` (the last station was blocked)."""
    kind: str
    """``down``, ``setup``, ``planned_stop``, ``slow`` (a station working too slowly), ``supply`` or ``shipping``."""
    reason: str
    hours: float
    stops: int
    share: float
    cumulative_share: float
    lost_units: float = 0.0
    """Output lost to it: its hours times the plan's rate (``plan_per_hour``) - what the stopped station would have
    made to plan meanwhile (partial stops, some machines still working, are not counted)."""
    share_of_plan: float = 0.0
    """``lost_units`` over the plan for the window: its hours over the window's."""


class TraceStepOut(_Out):
    """A station the trace looked at: its state at ``at``, held since ``since``."""

    station: str
    state: str
    at: datetime
    since: datetime


class AttributedStopOut(_Out):
    """One stop of the chosen station and its cause, found by following starved and blocked states."""

    start: datetime
    end: datetime
    hours: float
    cause_station: str | None
    cause_kind: str
    cause_reason: str
    chain: list[TraceStepOut]
    """The trace: the stopped station first, the cause last."""


class AttributionOut(_Out):
    """The stops of ``station`` over ``[start, end)``, each attributed to one cause, and the causes ranked.

    ``stopped_hours`` is the station's stopped time: the sum of the causes' hours. ``stops`` lists the latest
    ``limit`` stops, newest first; ``total_stops`` counts them all.
    """

    station: str
    start: datetime
    end: datetime
    stopped_hours: float
    causes: list[CauseOut]
    total_stops: int
    stops: list[AttributedStopOut]


# -- dead letters, health ------------------------------------------------------------------------------------------
class DeadLetterOut(_Out):
    """A rejected message: when it arrived (on the receive clock and on the line's), its topic, its payload and why
    it was rejected."""

    received: datetime
    """When it was received, on the receive clock (the wall clock for MQTT; the demo's own clock in the demo)."""
    line_time: datetime | None
    """The line clock when it was received: the newest source timestamp accepted before it; null when none had been
    (or for letters kept before they carried it). The dashboard's times are on this clock."""
    topic: str
    payload: str
    """The payload as text (invalid UTF-8 replaced); ``payload_base64`` has the exact bytes."""
    payload_base64: str
    reason: str


class DeadLettersOut(_Out):
    """How many messages were rejected in all, and the latest."""

    count: int
    latest: list[DeadLetterOut]


class TaskOut(_Out):
    """A background task: ``running``, ``restarting`` or ``stopped``, how often it was restarted and its last error."""

    name: str
    state: str
    restarts: int
    last_error: str


class HealthOut(_Out):
    """Liveness: the process answers, and its background tasks."""

    status: Literal["ok", "degraded"]
    tasks: list[TaskOut]


class ReadinessOut(_Out):
    """Readiness: telemetry can come in (broker connected, or the demo feed running) and the store takes writes."""

    ready: bool
    source: str
    source_ok: bool
    store_writable: bool
    store_detail: str
    spooled_batches: int
    tasks: list[TaskOut]
    data_age_s: float | None = None
    """Seconds since the service last took data of any station (None: none since it started)."""
    stale_stations: list[str] = []
    """Stations whose newest data is older than ``stale_after_s``."""


# -- forecasts -----------------------------------------------------------------------------------------------------
class GoodOutputOut(_Out):
    """Good units the line's end ships from ``as_of`` to the horizon, over the replications."""

    mean: float
    sd: float
    p10: float
    p50: float
    p90: float


class HourlyOut(_Out):
    """The cumulative good output by ``end`` (each whole hour from ``as_of``, and the horizon): the fan chart."""

    end: datetime
    p10: float
    p50: float
    p90: float


class PlanOut(_Out):
    """The plan's units by the horizon and the share of replications that reach them."""

    target: float
    p_meet: float
    shift_good_so_far: int | None = None
    """The default forecast (to the end of the shift): the good units the shift made before ``as_of``; the target is
    the shift's plan less these."""


class RepairLeftOut(_Out):
    """Hours until every machine down at ``as_of`` is repaired: median and 90th percentile."""

    p50: float
    p90: float


class StationForecastOut(_Out):
    """A station's risks within the horizon."""

    p_failure: float
    """Probability that at least one of its machines starts a new failure (the repairs under way are not new)."""
    expected_downtime_h: float
    """Expected machine-hours down, the repairs under way included."""
    p_down_at_horizon: float
    """Probability that at least one of its machines is down at the horizon."""
    machines_down_at_horizon: float
    repair_left_h: RepairLeftOut | None
    """Null when none of its machines is down at ``as_of``."""
    p_bottleneck: float
    """Share of replications in which it is the bottleneck (active-period method)."""


class ForecastOut(_Out):
    """A forecast from the live state: replications of the line from what telemetry knows, summarised."""

    as_of: datetime
    horizon_h: float
    replications: int
    seed: int
    parameters: str
    """``line-file``: the line file's distributions (``calibrated`` once calibration exists)."""
    compute_s: float
    default: bool
    """The service's default forecast (to the end of the shift, refreshed every ``forecast_period_s``)."""
    good_output: GoodOutputOut
    hourly: list[HourlyOut]
    plan: PlanOut
    stations: dict[str, StationForecastOut]
    assumptions: dict[str, Any]
    """What the starting states had to assume: ages never seen (equilibrium residual lives), store units of unknown
    entry spread evenly, batch fills drawn, machines never reported."""


class LeadAccuracyOut(_Out):
    """How right the good-output forecasts were this many hours ahead (steps ``lead - 1 < h <= lead``)."""

    lead_h: float
    n: int
    """Forecast steps scored."""
    mape_p50: float | None
    """Mean absolute percentage error of the P50 against the actual good output (a fraction; null if every actual
    was 0)."""
    coverage_p10_p90: float
    """Share of steps whose actual fell within [P10, P90] (an honest 80 % interval: about 0.8)."""
    actual_mean: float


class FailureAccuracyOut(_Out):
    """How right ``p_failure`` was, against whether a new failure did start within the horizon."""

    brier: float | None
    """Mean squared error of the probabilities (0 is perfect; null without pairs)."""
    brier_base_rate: float | None
    """The Brier score of always forecasting the base rate: ``brier`` below it is skill."""
    base_rate: float | None
    """Share of (forecast, station) pairs in which a failure started."""
    auc: float | None
    """Probability that a station that failed had the higher ``p_failure`` (0.5: no skill; null if one class only)."""
    pairs: int


class FailureLeadAccuracyOut(FailureAccuracyOut):
    """``p_failure``'s accuracy for horizons of ``lead_h - 1`` to ``lead_h`` hours."""

    lead_h: float


class ForecastAccuracyOut(_Out):
    """How right the service's kept default forecasts were, scored once their horizon had passed."""

    start: datetime
    end: datetime
    """The forecasts made in [start, end) on the line's clock count (``days`` back from the line's newest data)."""
    forecasts: int
    """Forecasts scored in the window."""
    pending: int
    """Forecasts made in the window whose horizon has not passed yet (or that could not be scored)."""
    by_lead: list[LeadAccuracyOut]
    p_failure: FailureAccuracyOut
    p_failure_by_lead: list[FailureLeadAccuracyOut]


# -- what-ifs ------------------------------------------------------------------------------------------------------
MAX_WHATIF_HOURS = 24.0 * 90
"""The longest measured window (and warm-up) of a what-if: 90 days (the cost budget usually binds first)."""
MIN_WHATIF_HOURS = 1 / 60
"""The shortest measured window of a what-if: a minute."""
MAX_WHATIF_REPLICATIONS = 10_000


class WhatIfIn(BaseModel):
    """A what-if: a scenario (the fields of a scenario file: ``name``, ``description``, ``changes``) and how to run it
    against the baseline."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(examples=["faster_stacker_repairs"])
    """The scenario's name (letters, digits, ``_ . -``)."""
    description: str = ""
    changes: list[dict[str, Any]] = Field(
        default_factory=list,
        examples=[[{"station": "STACK", "scale": {"failures.*.ttr": 0.5}}, {"station": "CAL", "down": {"at": 0, "for": 4}}]],
    )
    """The scenario's changes, as in a scenario file (``scale``, ``set``, ``repair_crews``, ``planned_stop``, ``down``);
    durations are hours when bare numbers, or carry their unit (``"20min"``)."""
    hours: float = Field(ge=MIN_WHATIF_HOURS, le=MAX_WHATIF_HOURS)
    """The measured window in hours: from now, or after the warm-up (required: a what-if answers a question about a
    span of time, say the rest of the shift)."""
    replications: int = Field(30, ge=2, le=MAX_WHATIF_REPLICATIONS)
    """Paired replications (each runs the baseline and the scenario with the same random numbers); with ``hours`` and
    ``warmup`` within the setting ``whatif_max_replication_hours``."""
    seed: int = Field(0, ge=0, le=2**63 - 1)
    start: Literal["now", "steady_state"] = "now"
    """``now``: from the live plant's state (the forecasts' knowledge of it, a starting state drawn per replication);
    ``steady_state``: from an empty line warmed up for ``warmup`` hours."""
    warmup: float | None = Field(None, ge=0, le=MAX_WHATIF_HOURS)
    """Hours run and discarded before the window; required with ``steady_state``, not allowed with ``now``."""


class WhatIfProgressOut(_Out):
    """Replications finished, of all."""

    done: int
    total: int


class WhatIfJobOut(_Out):
    """A what-if job: where it stands, and its result once done."""

    id: str
    line: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: WhatIfProgressOut
    cancel_requested: bool
    """A cancellation was asked; a running job stops after the replications under way."""
    created: datetime
    """When it was asked (the service's wall clock, as ``started`` and ``finished``)."""
    started: datetime | None
    finished: datetime | None
    as_of: datetime | None
    """A what-if from now: the line's clock when it was asked, the instant it starts from (null from steady state)."""
    parameters: str
    """The line's values it runs: ``line-file`` or ``calibrated`` (those forecasts use)."""
    request: dict[str, Any]
    """What was asked: ``scenario`` (name, description, changes), ``hours``, ``replications``, ``seed``, ``start``,
    ``warmup``."""
    result: dict[str, Any] | None = None
    """Once done (not in lists): ``line``, ``config_hash``, ``parameters``, ``start`` (``snapshot`` or
    ``steady_state``), ``hours``, ``warmup``, ``replications``, ``seed``, ``baseline`` (the simulate JSON's KPIs) and
    ``scenarios.<name>`` with ``scenario_hash``, ``description``, ``kpis`` (the same shape), ``delta`` (scenario -
    baseline per replication: ``throughput_per_hour``, ``good``, ``scrap_rate``, ``wip_mean``, ``lead_time_mean_h``,
    and ``stations.<id>`` with ``down_h``, ``oee``, ``availability``, ``throughput_per_hour``; each ``{mean, ci95,
    ci95_unpaired}``, ``ci95`` the half-width of the paired Student-t 95 % interval) and ``bottleneck_votes``.
    A figure that is not a number (no unit finished) is null."""
    error: str | None = None
    """Why it failed, or ``cancelled``."""


class WhatIfJobsOut(_Out):
    """The what-if jobs kept, newest first (without their results: ask each job)."""

    jobs: list[WhatIfJobOut]
    queue_size: int
    """How many jobs may wait (setting ``whatif_queue``)."""
    keep_s: float
    """How long a finished job is kept (setting ``whatif_keep_s``)."""


class WhatIfScenarioOut(_Out):
    """An example scenario file, as a what-if's body takes it."""

    file: str
    name: str
    description: str
    changes: list[dict[str, Any]]
    fits: bool
    """Whether it fits the watched line (its stations, fields and values)."""
    problem: str | None = None
    """Why it does not fit."""


class WhatIfScenariosOut(_Out):
    """The scenario files of the folder ``scenario_dir``."""

    scenarios: list[WhatIfScenarioOut]
