"""A snapshot of the live line to start a replication from: what telemetry tells, and the rest drawn given it.

:class:`~twin.knowledge.LineKnowledge` says what the wire told (states, since when, repair reasons, failure ages,
buffer levels, store entries). :func:`sample_snapshot` draws, for one replication, what it does not tell, each
from its distribution **conditioned on what is known** (``twin.residual``):

- **repair left** of a machine down for ``e`` hours: TTR - e given TTR > e (the mode's repair distribution);
- **time to the next failure** of each mode of each machine: TTF - a given TTF > a, where ``a`` is the mode's age
  on its basis. A mode whose repair was never seen has an unknown age: its time to failure comes from the mode's
  equilibrium residual life (what an observer arriving at a random instant sees), and the result says how many
  ages were so drawn. The mode under repair starts afresh after it (a full TTF from the repair's end);
- **condition signals**: given a fitted ``twin.condition.ConditionModel``, a machine that is up and has recent
  condition features fails within the model's window ``w`` with the model's probability (given its features and
  its age-only probability). Each replication draws whether it does; if it does, its failure times are drawn given
  that the first of them falls within ``w`` (each mode's TTF given its age, restricted to ``(0, w]`` for the mode
  that fails first: competing risks, mode by mode); if not, every mode's TTF given that it survives ``w``. An
  unknown age is drawn with it: candidate ages from the equilibrium law (the age at a random instant has the same
  law as the residual life), resampled in proportion to the probability of the condition (sampling importance
  resampling). The notes say per station which hazard was used (``hazard``: ``condition-signal`` when at least
  one of its machines was drawn so, else ``age-only``);
- **work left** on a working machine: the cycle of its lot (``lot`` units, or one batch) given the working hours of
  its current cycle so far; on a machine that broke down while working, the same, resumed after the repair;
- **units in machines** are not on the wire either (only counters): ``twin.knowledge`` infers them (a lot the size
  of the machine's last one; a starved batch machine's fill by conservation at its upstream buffer). Where it
  cannot (a batch machine that loads from the line's supply), the fill is drawn uniformly from 0 to
  ``batch_size - 1`` and counted in the notes. A merge station's starved machines hold none (it takes its inputs
  all at once);
- **changeovers**: a machine in SETUP for ``e`` hours starts in SETUP with the changeover's duration less ``e``
  given that it exceeds ``e``; the units a machine made since its last changeover are counted from the events, or,
  when no changeover was seen, drawn uniformly from 0 to ``every_units - 1`` (counted in the notes). A machine in
  SETUP at a station without a changeover in the line file starts idle, counted in the notes
  (``idle_for_unmodelled``);
- **planned stops**: a machine in a planned stop starts in it as the stop found it: holding its lot mid-cycle (the
  work left drawn as for a working machine), holding finished units (blocked), or idle; one the stop found down or
  in a changeover is repaired or changed over behind the stop, so its repair (setup) is drawn given that it lasted
  until the stop began: where it runs past now the machine starts DOWN (SETUP) with what is left, else in the
  planned stop. The engine's calendar then keeps it stopped until the stop ends;
- **store faults**: a store's failure mode under repair for ``e`` hours starts with its repair time less ``e`` given
  that it exceeds ``e``; the others with their time to the next fault given their age (the hours since their last
  repair ended), or from the equilibrium residual life when no repair was seen (counted with the machines' ages);
- **dwell left** of the units in a store: their dwell given the time since they entered, for the entries the
  events saw; units that entered before the events began (``unknown_units``) are spread evenly over the dwell
  still possible for them (from 0 to the mean dwell less the time observed), and the notes say how many.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.condition import AgeOnlyHazard, ConditionModel
from twin.distributions import Constant, Gamma
from twin.events import MachineState
from twin.knowledge import LineKnowledge, MachineKnowledge
from twin.residual import (
    DurationDist,
    equilibrium_mean,
    residual_quantile,
    residual_survival,
    sample_equilibrium_residual,
    sample_residual,
)
from twin.schema import FailureMode, Line, Station
from twin.snapshot import LineSnapshot, MachineSnapshot, StationSnapshot, StoreLot, trusted

__all__ = ["SampledSnapshot", "SamplingNotes", "sample_snapshots"]

WORKING, STARVED, BLOCKED, DOWN = MachineState.WORKING, MachineState.STARVED, MachineState.BLOCKED, MachineState.DOWN
SETUP, PLANNED_STOP = MachineState.SETUP, MachineState.PLANNED_STOP
UNKNOWN_STORE_LOTS = 64
"""Lots the units of unknown entry time in a store are spread over."""
CANDIDATE_AGES = 64
"""Candidate ages per replication drawn for an unknown age conditioned on failing within (or beyond) a window."""
CONDITION_SIGNAL, AGE_ONLY = "condition-signal", "age-only"


@dataclass(frozen=True)
class SamplingNotes:
    """What a sampled snapshot had to assume, beyond drawing from conditional distributions."""

    equilibrium_ages: int = 0
    """Failure modes (of all machines) whose age was never seen: their time to failure is an equilibrium residual."""
    unreported_machines: int = 0
    """Machines that never reported a state: started idle and empty."""
    idle_for_unmodelled: int = 0
    """Machines in a state the line file cannot model (SETUP at a station without a changeover), started idle."""
    sampled_batch_fills: int = 0
    """Starved batch machines whose partial fill was drawn uniformly."""
    sampled_changeover_counts: int = 0
    """Machines of stations changing over every so many units that were never seen to change over: the units since
    their last changeover drawn uniformly."""
    store_units_spread: dict[str, int] = field(default_factory=dict)
    """Per store, the units whose entry the events did not see, spread evenly over their possible dwell left."""
    hazard: dict[str, str] = field(default_factory=dict)
    """Per station with failure modes, the hazard its machines' failure times were drawn with: ``condition-signal``
    (at least one machine) or ``age-only``."""

    def as_dict(self) -> dict[str, object]:
        """As plain values, for a forecast's result."""
        return {
            "equilibrium_ages": self.equilibrium_ages,
            "unreported_machines": self.unreported_machines,
            "idle_for_unmodelled": self.idle_for_unmodelled,
            "sampled_batch_fills": self.sampled_batch_fills,
            "sampled_changeover_counts": self.sampled_changeover_counts,
            "store_units_spread": dict(self.store_units_spread),
            "hazard": dict(self.hazard),
        }


@dataclass(frozen=True)
class SampledSnapshot:
    """One replication's starting state and what had to be assumed for it."""

    snapshot: LineSnapshot
    notes: SamplingNotes


def _work_left(spec: Station, units: int, worked: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws of the work left on a lot of ``units`` (one batch for batch stations) after ``worked`` hours of
    its cycle."""
    cycle = spec.cycle_time
    assert cycle is not None
    k = 1 if spec.batch_size is not None else units
    if isinstance(cycle, Constant):
        return np.full(n, max(cycle.value * k - worked, 0.0))
    if k == 1:
        return sample_residual(cycle, worked, rng, n)
    # The total of k unit cycles given that it exceeds `worked`: its law is no named family; the gamma with its
    # mean and variance stands in for it (exact for exponential and gamma cycles, close for k of a few or more).
    mean = cycle.mean_value
    second = 2.0 * mean * equilibrium_mean(cycle)  # E[T^2] = 2 E[T] E[equilibrium residual]
    cv = math.sqrt(max(second - mean * mean, 0.0)) / mean / math.sqrt(k) if mean > 0 else 0.0
    if cv <= 0:
        return np.full(n, max(mean * k - worked, 0.0))
    return sample_residual(Gamma(dist="gamma", mean=mean * k, cv=cv), worked, rng, n)


def _repair_mode(mk: MachineKnowledge) -> str:
    """The failure mode under repair, shown (DOWN) or behind a planned stop ("": none)."""
    return mk.repair_mode or (mk.reason if mk.state is DOWN else "")


def _ttf_left(
    spec: Station, mk: MachineKnowledge, repair_left: np.ndarray, rng: np.random.Generator, n: int
) -> tuple[dict[str, np.ndarray], int]:
    """Per failure mode, ``n`` draws of the time to its next failure; and how many modes' ages were unknown."""
    ttf: dict[str, np.ndarray] = {}
    unknown = 0
    for mode in spec.failures:
        if mode.name == _repair_mode(mk):
            # the mode under repair starts afresh when the repair ends (a calendar clock counts from then on)
            fresh = sample_residual(mode.ttf, 0.0, rng, n)
            ttf[mode.name] = fresh + repair_left if mode.basis == "calendar" else fresh
            continue
        age = mk.ages_h.get(mode.name)
        if age is None:
            unknown += 1
            ttf[mode.name] = sample_equilibrium_residual(mode.ttf, rng, n)
        else:
            ttf[mode.name] = sample_residual(mode.ttf, age, rng, n)
    return ttf, unknown


def _resample(weights: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` indices drawn with probability proportional to ``weights`` (all alike when they sum to 0)."""
    total = float(weights.sum())
    if not total > 0:
        return rng.integers(0, weights.size, n)
    return np.minimum(np.searchsorted(np.cumsum(weights), rng.random(n) * total, side="right"), weights.size - 1)


def _window_draws(
    dist: DurationDist, age: float | None, p: float, w: float, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` draws each of a mode's time to failure given its age (None: unknown), and given in addition that it
    fails within ``w`` (``p``: the probability of that), or beyond: ``(within, beyond, free)``."""
    if age is not None:
        free = sample_residual(dist, age, rng, n)
        beyond = w + sample_residual(dist, age + w, rng, n)
        within = residual_quantile(dist, age, rng.random(n) * p)
    else:
        free = sample_equilibrium_residual(dist, rng, n)
        ages = sample_equilibrium_residual(dist, rng, CANDIDATE_AGES * n)
        p_ages = 1.0 - residual_survival(dist, ages, w)
        a_in = ages[_resample(p_ages, rng, n)]
        within = residual_quantile(dist, a_in, rng.random(n) * (1.0 - residual_survival(dist, a_in, w)))
        a_out = ages[_resample(1.0 - p_ages, rng, n)]
        beyond = w + sample_residual(dist, a_out + w, rng, n)
    return np.minimum(within, w), beyond, free


def _ttf_by_condition(
    spec: Station, mk: MachineKnowledge, p_fail: float, hazard: AgeOnlyHazard, rng: np.random.Generator, n: int
) -> tuple[dict[str, np.ndarray], int]:
    """Per failure mode, ``n`` draws of the time to its next failure of a machine that is up and fails within the
    window with probability ``p_fail`` (module docstring); and how many modes' ages were unknown."""
    w = hazard.window_h
    fails = rng.random(n) < p_fail
    modes: list[tuple[FailureMode, float]] = []
    unknown = 0
    for mode in spec.failures:
        age = mk.ages_h.get(mode.name)
        unknown += age is None
        modes.append((mode, hazard.mode_p(spec.id, mode, age)))
    # Given that the first failure falls within w: mode i is the one (or one of them) with probability
    # p_i / P(some mode from i on fails within w); the modes after the first that does are unconstrained.
    still = [1.0]
    for _, p in reversed(modes):
        still.append(still[-1] * (1.0 - p))
    reach = [1.0 - s for s in reversed(still[1:])]  # reach[i] = P(some mode from i on fails within w)
    need = fails.copy()
    ttf: dict[str, np.ndarray] = {}
    for i, (mode, p) in enumerate(modes):
        within, beyond, free = _window_draws(mode.ttf, mk.ages_h.get(mode.name), p, w, rng, n)
        pick = need & (rng.random(n) * reach[i] < p) if i < len(modes) - 1 else need
        out = np.where(fails, free, beyond)
        out[pick] = within[pick]
        out[need & ~pick] = beyond[need & ~pick]
        need &= ~pick
        ttf[mode.name] = out
    return ttf, unknown


def _hidden_left(dist: DurationDist, mk: MachineKnowledge, now: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws of what is left at ``now`` of a repair or changeover (``dist``) that a planned stop hid: it lasted
    at least until the stop began; <= 0 where it ended behind the stop."""
    began = mk.began_h if math.isfinite(mk.began_h) else mk.stopped_since_h
    before = max(mk.stopped_since_h - began, 0.0)
    return sample_residual(dist, before, rng, n) - max(now - mk.stopped_since_h, 0.0)


def _machines(
    spec: Station,
    known: tuple[MachineKnowledge, ...],
    now: float,
    rng: np.random.Generator,
    n: int,
    tally: Counter[str],
    model: ConditionModel | None = None,
    hazard: AgeOnlyHazard | None = None,
) -> list[list[MachineSnapshot]]:
    """The station's machines in each of ``n`` replications (``[replication][machine]``); with ``model``, the
    failure times of its machines that are up with recent condition features are drawn with it."""
    modes = {f.name: f for f in spec.failures}
    full = spec.batch_size or spec.lot
    change = spec.changeover
    per_rep: list[list[MachineSnapshot]] = [[] for _ in range(n)]
    zeros = np.zeros(n)
    for mk in known:
        state = mk.state
        stopped_from = mk.stopped_from if state is PLANNED_STOP else None
        down = state is DOWN and mk.reason in modes
        repairing = stopped_from is DOWN and mk.repair_mode in modes
        repair_left = zeros
        states: MachineState | list[MachineState] = STARVED
        reasons: str | list[str] = ""
        setup_left: np.ndarray | float = 0.0
        if down:
            elapsed = max(mk.now_elapsed(now), 0.0)
            repair_left = sample_residual(modes[mk.reason].ttr, elapsed, rng, n)
        elif repairing:  # down when the planned stop came: repaired behind it, perhaps done by now
            repair_left = _hidden_left(modes[mk.repair_mode].ttr, mk, now, rng, n)
        if model is not None and hazard is not None and mk.condition is not None and state not in (None, DOWN) and spec.failures:
            p_fail = float(model.p_within(hazard.p_within(spec, mk.ages_h), mk.condition.level, mk.condition.trend))
            ttf, unknown = _ttf_by_condition(spec, mk, p_fail, hazard, rng, n)
            tally[f"condition:{spec.id}"] += 1
        else:
            ttf, unknown = _ttf_left(spec, mk, np.maximum(repair_left, 0.0), rng, n)
        tally["equilibrium_ages"] += unknown
        held = min(mk.units or full, full)  # a lot the size of its last one (knowledge), else a full one
        units: np.ndarray | int = 0
        work, finished = zeros, False
        was = mk.down_from if (down or repairing) else stopped_from if state is PLANNED_STOP else state
        if state is None or (state is SETUP and change is None):
            tally["unreported_machines" if state is None else "idle_for_unmodelled"] += 1
        elif state is SETUP:
            assert change is not None
            elapsed = max(now - mk.began_h if math.isfinite(mk.began_h) else mk.now_elapsed(now), 0.0)
            states, reasons = SETUP, change.name
            setup_left = sample_residual(change.duration, elapsed, rng, n)
        else:
            if was is WORKING:
                units, work = held, _work_left(spec, held, mk.cycle_worked_h, rng, n)
            elif was is BLOCKED:
                units, finished = held, state is not BLOCKED
            elif down or repairing:  # broke down idle: repaired, then it loads on (a batch machine keeps its fill)
                units = (mk.units or 0) if spec.batch_size is not None else 0
            elif spec.batch_size is not None and was is STARVED:
                if mk.units is not None:
                    units = min(mk.units, spec.batch_size - 1)
                else:
                    tally["sampled_batch_fills"] += 1
                    units = rng.integers(0, spec.batch_size, n)
            if down:
                states, reasons = DOWN, mk.reason
            elif state is WORKING or state is BLOCKED:
                states = state
            elif state is PLANNED_STOP:
                stop = mk.reason
                if repairing:
                    going = (repair_left > 0).tolist()
                    states = [DOWN if g else PLANNED_STOP for g in going]
                    reasons = [mk.repair_mode if g else stop for g in going]
                    repair_left = np.maximum(repair_left, 0.0)
                elif stopped_from is SETUP and change is not None:
                    left = _hidden_left(change.duration, mk, now, rng, n)
                    going = (left > 0).tolist()
                    states = [SETUP if g else PLANNED_STOP for g in going]
                    reasons = [change.name if g else stop for g in going]
                    setup_left = np.maximum(left, 0.0)
                else:
                    states, reasons = PLANNED_STOP, stop
            # else STARVED (or DOWN for a reason the line file does not know: idle, as the model cannot repair it)
        since_change: np.ndarray | int = 0
        if change is not None and change.every_units is not None:
            if mk.since_changeover is not None:
                since_change = min(mk.since_changeover, change.every_units)
            else:
                tally["sampled_changeover_counts"] += 1
                since_change = rng.integers(0, change.every_units, n)
        _append(per_rep, states, units, finished, work, repair_left, reasons, ttf, setup_left, since_change)
    return per_rep


def _append(
    per_rep: list[list[MachineSnapshot]],
    state: MachineState | list[MachineState],
    units: np.ndarray | int,
    finished: bool,
    work: np.ndarray,
    repair_left: np.ndarray,
    reason: str | list[str],
    ttf: dict[str, np.ndarray],
    setup_left: np.ndarray | float = 0.0,
    since_changeover: np.ndarray | int = 0,
) -> None:
    """One machine's snapshot in each replication, from per-replication arrays or lists (a scalar: the same in all)."""
    n = len(per_rep)
    names = list(ttf)

    def column(values: np.ndarray | float) -> list[Any]:
        # as Python numbers once: indexing a numpy array per replication costs more than the snapshot itself
        out: list[Any] = np.broadcast_to(np.asarray(values), (n,)).tolist()
        return out

    counts, works, repairs = column(units), column(work), column(repair_left)
    states = state if isinstance(state, list) else [state] * n
    reasons = reason if isinstance(reason, list) else [reason] * n
    setups = column(setup_left) if not isinstance(setup_left, float) or setup_left else None
    changed = column(since_changeover) if not isinstance(since_changeover, int) or since_changeover else None
    cols = [column(ttf[name]) for name in names]
    for i, machines in enumerate(per_rep):
        st = states[i]
        machines.append(
            trusted(  # checked once, with the whole snapshot
                MachineSnapshot,
                {
                    "state": st,
                    "units": counts[i],
                    "finished": finished,
                    "work_left_h": works[i],
                    "repair_left_h": repairs[i] if st is DOWN else 0.0,
                    "reason": reasons[i],
                    "ttf_left_h": {name: col[i] for name, col in zip(names, cols, strict=True)},
                    "setup_left_h": setups[i] if setups is not None and st is SETUP else 0.0,
                    "units_since_changeover": changed[i] if changed is not None else 0,
                    "changeover_due": False,
                    "micro_stop_left_h": None,
                },
            )
        )


def _store_faults(
    spec: Station, knowledge: LineKnowledge, rng: np.random.Generator, n: int, tally: Counter[str]
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """A store's faults (repair left per mode under repair) and its time to the next fault of every other mode, in
    each of ``n`` replications."""
    if not spec.failures:
        return [{} for _ in range(n)], [{} for _ in range(n)]
    sk = knowledge.stores.get(spec.id)
    now = knowledge.time_h
    faults: dict[str, list[float]] = {}
    ttf: dict[str, list[float]] = {}
    for f in spec.failures:
        since = sk.faults.get(f.name) if sk is not None else None
        if since is not None:
            faults[f.name] = sample_residual(f.ttr, max(now - since, 0.0), rng, n).tolist()
            continue
        age = sk.fault_ages_h.get(f.name) if sk is not None else None
        if age is None:
            tally["equilibrium_ages"] += 1
            ttf[f.name] = sample_equilibrium_residual(f.ttf, rng, n).tolist()
        else:
            ttf[f.name] = sample_residual(f.ttf, age, rng, n).tolist()
    return (
        [{k: v[i] for k, v in faults.items()} for i in range(n)],
        [{k: v[i] for k, v in ttf.items()} for i in range(n)],
    )


def _store_lots(
    spec: Station,
    knowledge: LineKnowledge,
    rng: np.random.Generator,
    n: int,
    spread: dict[str, int],
    horizon_h: float | None,
) -> list[list[StoreLot]]:
    """The store's lots in each of ``n`` replications (shared lists when its dwell is a constant)."""
    sk = knowledge.stores.get(spec.id)
    if sk is None or sk.occupancy <= 0:
        return [[] for _ in range(n)]
    dwell = spec.dwell
    assert dwell is not None and spec.capacity is not None
    now = knowledge.time_h
    unknown_units = np.zeros(0, dtype=np.int64)
    unknown_left = np.zeros(0)
    if sk.unknown_units > 0:
        spread[spec.id] = sk.unknown_units
        observed = now - sk.known_since_h
        span = max(dwell.mean_value - observed, 0.0)
        m = min(UNKNOWN_STORE_LOTS, sk.unknown_units)
        unknown_units = np.full(m, sk.unknown_units // m, dtype=np.int64)
        unknown_units[: sk.unknown_units % m] += 1
        # oldest first: evenly spaced dwell left from 0 (entered longest ago) to the most they can have left
        unknown_left = span * np.arange(m) / m
    entries = [(t, u) for t, u in sk.entries if u > 0]
    units = np.concatenate((unknown_units, np.array([u for _, u in entries], dtype=np.int64)))
    ages = np.array([max(now - t, 0.0) for t, _ in entries])
    if isinstance(dwell, Constant) or not entries:
        left = np.maximum(dwell.mean_value - ages, 0.0) if isinstance(dwell, Constant) else ages
        lots = _lots(spec.capacity, units, np.concatenate((unknown_left, left)), horizon_h)
        return [lots] * n
    return [
        _lots(spec.capacity, units, np.concatenate((unknown_left, sample_residual(dwell, ages, rng, len(entries)))), horizon_h)
        for _ in range(n)
    ]


def _lots(capacity: int, units: np.ndarray, left: np.ndarray, horizon_h: float | None) -> list[StoreLot]:
    """A store's lots from their units and dwell left, oldest first.

    Never more than the store holds (reports of different instants can disagree): the oldest units go first. With
    a horizon, the lots whose dwell runs out after it become one lot (their units, the earliest of their dwell
    lefts): within the horizon a replication runs the same (they hold the same room and none leaves), and a store
    of two weeks' dwell starts from a few hundred lots instead of 17,000.
    """
    excess = int(units.sum()) - capacity
    if excess > 0:
        cum = np.cumsum(units)
        k = int(np.searchsorted(cum, excess, side="right"))  # the first lot not wholly taken away
        units, left = units[k:].copy(), left[k:]
        if units.size:
            units[0] = cum[k] - excess
    if horizon_h is not None:
        far = left > horizon_h
        if int(far.sum()) > 1:
            units = np.append(units[~far], units[far].sum())
            left = np.append(left[~far], left[far].min())
    build = StoreLot.model_construct  # checked once, with the whole snapshot
    return [build(units=u, dwell_left_h=d) for u, d in zip(units.tolist(), left.tolist(), strict=True)]


def sample_snapshots(
    line: Line,
    knowledge: LineKnowledge,
    rng: np.random.Generator,
    n: int,
    condition_model: ConditionModel | None = None,
    horizon_h: float | None = None,
) -> list[SampledSnapshot]:
    """``n`` replications' starting states: what ``knowledge`` says, and the unknowns drawn given it with ``rng``
    (see the module docstring); the machines' failure times with ``condition_model`` where it applies, else by
    their ages alone. Drawn together, one distribution call per unknown for all ``n``. With ``horizon_h`` (the
    replications' length), a store's lots that cannot leave within it are one lot (:func:`_lots`): the same run
    up to the horizon, from far fewer lots."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    hazard = AgeOnlyHazard(condition_model.window_h) if condition_model is not None else None
    tally: Counter[str] = Counter()
    spread: dict[str, int] = {}
    machines: dict[str, list[list[MachineSnapshot]]] = {}
    lots: dict[str, list[list[StoreLot]]] = {}
    store_faults: dict[str, tuple[list[dict[str, float]], list[dict[str, float]]]] = {}
    for spec in line.stations:
        if spec.kind == "delay":
            lots[spec.id] = _store_lots(spec, knowledge, rng, n, spread, horizon_h)
            store_faults[spec.id] = _store_faults(spec, knowledge, rng, n, tally)
        else:
            known = knowledge.machines.get(spec.id, ())
            machines[spec.id] = _machines(spec, known, knowledge.time_h, rng, n, tally, condition_model, hazard)
    buffers: dict[str, int] = {}
    last = line.stations[-1].id
    for spec in line.stations:
        level = knowledge.buffers.get(spec.id)
        if level is None or spec.id == last:
            continue
        cap = spec.buffer_after
        buffers[spec.id] = max(0, level if cap is None else min(level, cap))
    notes = SamplingNotes(
        equilibrium_ages=tally["equilibrium_ages"],
        unreported_machines=tally["unreported_machines"],
        idle_for_unmodelled=tally["idle_for_unmodelled"],
        sampled_batch_fills=tally["sampled_batch_fills"],
        sampled_changeover_counts=tally["sampled_changeover_counts"],
        store_units_spread=spread,
        hazard={
            s.id: CONDITION_SIGNAL if tally[f"condition:{s.id}"] else AGE_ONLY
            for s in line.stations
            if s.kind == "process" and s.failures
        },
    )
    out = []
    for i in range(n):
        stations = {sid: StationSnapshot.model_construct(machines=ms[i], lots=[]) for sid, ms in machines.items()}
        stations.update(
            {
                sid: StationSnapshot.model_construct(
                    machines=[], lots=ls[i], faults=store_faults[sid][0][i], ttf_left_h=store_faults[sid][1][i]
                )
                for sid, ls in lots.items()
            }
        )
        snapshot = LineSnapshot.model_construct(time_h=knowledge.time_h, buffers=buffers, arrivals_queued=0, stations=stations)
        if i == 0:
            snapshot.check(line)  # one check: every replication has the same structure
        out.append(SampledSnapshot(snapshot, notes))
    return out
