"""Exact long-run results the statistical tests compare the simulator with.

- :func:`mm1k`: the M/M/1/K birth-death chain (closed form).
- :func:`mg1_breakdowns_wip`: M/M/1 with operating-basis breakdowns, which is exactly an M/G/1 queue
  (Pollaczek-Khinchine).
- :func:`mm1_breakdowns`: M/M/1 with breakdowns of either basis, by its (truncated) Markov chain.
- :func:`solve_line`: a serial line of single exponential machines, optionally with exponential
  failures, and finite buffers, by its Markov chain.

The chains are written from the engine's documented rules (blocking after service, the first station never
starves, the last never blocks, failures interrupt the unit which resumes after the repair), not from its code.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

Basis = Literal["operating", "calendar"]


def stationary(q: np.ndarray) -> np.ndarray:
    """The stationary distribution of an irreducible generator ``q``: π Q = 0 with one balance equation
    replaced by Σ π = 1 (then checked: the solution must satisfy every balance equation)."""
    n = q.shape[0]
    lhs = q.T.copy()
    lhs[-1, :] = 1.0
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    pi = np.linalg.solve(lhs, rhs)
    assert np.abs(pi @ q).max() < 1e-10 * max(1.0, np.abs(q).max()), "the chain's balance equations are not solved"
    assert pi.min() > -1e-12, "negative stationary probability: the chain is not irreducible"
    return pi


# -- M/M/1/K ------------------------------------------------------------------------------------------------


def mm1k(lam: float, mu: float, k: int) -> list[float]:
    """Stationary probabilities P_0..P_K of M/M/1/K: P_n ∝ ρ^n, i.e. (1−ρ)ρ^n/(1−ρ^(K+1)), or 1/(K+1) at ρ = 1."""
    rho = lam / mu
    if math.isclose(rho, 1.0):
        return [1.0 / (k + 1)] * (k + 1)
    norm = (1.0 - rho) / (1.0 - rho ** (k + 1))
    return [norm * rho**n for n in range(k + 1)]


# -- M/M/1 with breakdowns -----------------------------------------------------------------------------------


def mg1_breakdowns_wip(lam: float, mu: float, mttf: float, mttr: float) -> float:
    """Mean number in system of Poisson(λ) arrivals at one Exp(μ) machine with Exp(MTTF) operating-basis
    failures and Exp(MTTR) repairs (preemptive resume).

    Failures strike only while a unit is worked on, as a Poisson process of rate f = 1/MTTF in operating
    time (memoryless, so the clock carried over between units changes nothing). A unit's completion time is
    T = S + D_1 + ... + D_N with S ~ Exp(μ), N | S ~ Poisson(f S) and D_k ~ Exp(MTTR), independent of
    everything else; the machine never fails while idle. So this is an M/G/1 queue with service time T:
      E[T]  = E[S] (1 + f E[D]),
      E[T²] = E[S²] (1 + f E[D])² + f E[S] E[D²],   E[S²] = 2/μ², E[D²] = 2 MTTR²,
    and by Pollaczek-Khinchine L = ρ + λ² E[T²] / (2 (1 − ρ)) with ρ = λ E[T].
    """
    f = 1.0 / mttf
    es, es2, ed, ed2 = 1.0 / mu, 2.0 / mu**2, mttr, 2.0 * mttr**2
    et = es * (1.0 + f * ed)
    et2 = es2 * (1.0 + f * ed) ** 2 + f * es * ed2
    rho = lam * et
    assert rho < 1.0, "unstable queue"
    return rho + lam**2 * et2 / (2.0 * (1.0 - rho))


@dataclass(frozen=True)
class QueueSolution:
    wip: float
    working: float
    starved: float
    down: float


def mm1_breakdowns(lam: float, mu: float, mttf: float, mttr: float, basis: Basis, nmax: int = 400) -> QueueSolution:
    """Poisson(λ) arrivals at one Exp(μ) machine with Exp(MTTF)/Exp(MTTR) failures, by the Markov chain of
    (units in system n, machine up or down), truncated at ``nmax`` units (checked to carry no mass).

    Up → down at rate 1/MTTF: on the operating basis only while working (n ≥ 1); on the calendar basis in
    any state, including idle (the machine then waits down, and a unit that arrives meanwhile is loaded
    and waits for the repair). Down → up at rate 1/MTTR; arrivals at rate λ in every state; completions at
    rate μ while up with n ≥ 1.
    """
    f, r = 1.0 / mttf, 1.0 / mttr
    size = 2 * (nmax + 1)

    def ix(n: int, down: int) -> int:
        return 2 * n + down

    q = np.zeros((size, size))

    def add(a: int, b: int, rate: float) -> None:
        q[a, b] += rate
        q[a, a] -= rate

    for n in range(nmax + 1):
        for down in (0, 1):
            if basis == "operating" and down and n == 0:
                continue  # unreachable: an operating-basis failure needs a unit in work
            s = ix(n, down)
            if n < nmax:
                add(s, ix(n + 1, down), lam)
            if down:
                add(s, ix(n, 0), r)
            else:
                if n > 0:
                    add(s, ix(n - 1, 0), mu)
                if basis == "calendar" or n > 0:
                    add(s, ix(n, 1), f)
    keep = [ix(n, d) for n in range(nmax + 1) for d in (0, 1) if not (basis == "operating" and d and n == 0)]
    pi_kept = stationary(q[np.ix_(keep, keep)])
    pi = np.zeros(size)
    pi[keep] = pi_kept
    pi2 = pi.reshape(nmax + 1, 2)
    assert pi2[-1].sum() < 1e-12, "truncation carries probability mass: raise nmax"
    ns = np.arange(nmax + 1)
    return QueueSolution(
        wip=float((pi2.sum(axis=1) * ns).sum()),
        working=float(pi2[1:, 0].sum()),
        starved=float(pi2[0, 0]),
        down=float(pi2[:, 1].sum()),
    )


# -- serial lines --------------------------------------------------------------------------------------------

# Machine statuses. Up: W working, B blocked (holding a finished unit), S starved (waiting for a unit).
# Down (under repair): DW with a unit still to work on (failed while working, or failed while starved and a
# unit came meanwhile); DB blocked; DS starved, still taking the next unit that comes; DE empty because its
# finished unit was taken while it was down (it asks for the next unit after the repair). DB, DS and DE
# happen only on the calendar basis: operating-basis failures strike only while working.
W, B, S, DW, DB, DS, DE = "W", "B", "S", "DW", "DB", "DS", "DE"
_DOWN = {DW, DB, DS, DE}
_FAIL = {W: DW, B: DB, S: DS}
_REPAIR = {DW: W, DB: B, DS: S}
LineState = tuple[tuple[str, ...], tuple[int, ...]]


@dataclass(frozen=True)
class Machine:
    """One exponential machine: mean cycle, and optionally an exponential failure mode."""

    cycle: float
    mttf: float | None = None
    mttr: float | None = None
    basis: Basis = "operating"

    def fails(self, status: str) -> bool:
        if self.mttf is None:
            return False
        return status == W if self.basis == "operating" else status in _FAIL


@dataclass(frozen=True)
class LineSolution:
    throughput: float
    buffer_levels: list[float]
    fractions: list[dict[str, float]]
    """Per station: the long-run fraction of time working, blocked, starved and down."""
    states: int


def _pull(i: int, m: list[str], buf: list[int]) -> None:
    """Machine ``i`` is free and up: it loads a unit if one is there, which may free a blocked upstream
    machine (cascading upstream); otherwise it starves. The first machine always finds a unit."""
    if i == 0:
        m[0] = W
        return
    up = m[i - 1]
    if buf[i - 1] > 0:
        buf[i - 1] -= 1
        m[i] = W
        if up in (B, DB):  # the blocked upstream machine drops its unit into the freed place
            buf[i - 1] += 1
            _unblocked(i - 1, m, buf)
    elif up in (B, DB):  # direct hand-off (buffer of 0) from a blocked upstream machine
        m[i] = W
        _unblocked(i - 1, m, buf)
    else:
        m[i] = S


def _unblocked(i: int, m: list[str], buf: list[int]) -> None:
    if m[i] == B:
        _pull(i, m, buf)
    else:  # DB: the unit leaves, the machine stays down, empty
        m[i] = DE


def _complete(i: int, state: LineState, caps: list[int]) -> LineState:
    m, buf = list(state[0]), list(state[1])
    if i == len(m) - 1:
        _pull(i, m, buf)
    elif m[i + 1] in (S, DS):  # the downstream machine waits for a unit: straight in (buffer empty)
        m[i + 1] = W if m[i + 1] == S else DW
        _pull(i, m, buf)
    elif buf[i] < caps[i]:
        buf[i] += 1
        _pull(i, m, buf)
    else:
        m[i] = B
    return tuple(m), tuple(buf)


def _repaired(i: int, state: LineState) -> LineState:
    m, buf = list(state[0]), list(state[1])
    if m[i] == DE:
        _pull(i, m, buf)
    else:
        m[i] = _REPAIR[m[i]]
    return tuple(m), tuple(buf)


def _failed(i: int, state: LineState) -> LineState:
    m = list(state[0])
    m[i] = _FAIL[m[i]]
    return tuple(m), state[1]


def solve_line(machines: list[Machine], caps: list[int]) -> LineSolution:
    """Long-run throughput, mean buffer levels and state fractions of a serial line of single exponential
    machines with buffers ``caps`` (units waiting between machines, 0 = direct hand-off)."""
    assert len(caps) == len(machines) - 1
    start: LineState = (tuple([W] + [S] * (len(machines) - 1)), tuple([0] * len(caps)))
    index: dict[LineState, int] = {start: 0}
    edges: list[tuple[int, int, float]] = []
    todo = deque([start])
    while todo:
        s = todo.popleft()
        for i, (status, mach) in enumerate(zip(s[0], machines, strict=True)):
            moves: list[tuple[LineState, float]] = []
            if status == W:
                moves.append((_complete(i, s, caps), 1.0 / mach.cycle))
            if mach.fails(status):
                assert mach.mttf is not None
                moves.append((_failed(i, s), 1.0 / mach.mttf))
            if status in _DOWN:
                assert mach.mttr is not None
                moves.append((_repaired(i, s), 1.0 / mach.mttr))
            for t, rate in moves:
                if t not in index:
                    index[t] = len(index)
                    todo.append(t)
                edges.append((index[s], index[t], rate))
    n = len(index)
    q = np.zeros((n, n))
    for a, b, rate in edges:
        if a != b:
            q[a, b] += rate
            q[a, a] -= rate
    pi = stationary(q)
    states = sorted(index, key=index.__getitem__)
    last = len(machines) - 1
    throughput = sum(p / machines[last].cycle for p, s in zip(pi, states, strict=True) if s[0][last] == W)
    levels = [float(sum(p * s[1][k] for p, s in zip(pi, states, strict=True))) for k in range(len(caps))]
    fractions = []
    for i in range(len(machines)):
        frac = dict.fromkeys(("working", "blocked", "starved", "down"), 0.0)
        for p, s in zip(pi, states, strict=True):
            status = s[0][i]
            key = "down" if status in _DOWN else {W: "working", B: "blocked", S: "starved"}[status]
            frac[key] += float(p)
        fractions.append(frac)
    return LineSolution(throughput=float(throughput), buffer_levels=levels, fractions=fractions, states=n)


# -- a two-input merge (assembly) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeSolution:
    throughput: float
    """Units the merge machine completes per hour."""
    starved: tuple[float, float]
    """Fractions of time the merge machine waits on input 1 (empty) and on input 2 (input 1 has a unit, 2 none)."""
    buffer_levels: tuple[float, float]
    blocked: tuple[float, float]
    """Fractions of time each feeding machine holds a finished unit it cannot place."""
    states: int


def solve_merge(mu1: float, mu2: float, mu3: float, caps: tuple[int, int]) -> MergeSolution:
    """Machines 1 and 2 (exponential rates ``mu1``, ``mu2``, never starved) each feed a buffer of ``caps[k]``
    (0 = direct hand-off) in front of machine 3 (rate ``mu3``, never blocked), which takes one unit from each
    buffer at once, as soon as both have one.

    From the engine's documented rules: blocking after service (a feeding machine that finishes with its buffer
    full holds the unit and stops), a merge takes from all its inputs at once when every input has what it
    needs, and a waiting merge machine is starved on the first input (in input order) that is short. State:
    ``y_k`` = units in buffer k plus the unit machine k holds blocked (0 .. caps[k] + 1), and whether machine 3
    works. Machine 3 idle with both ``y_k >= 1`` is vanishing (it takes at once), so it is left out.
    """
    n1, n2 = caps[0] + 1, caps[1] + 1

    def settle(y1: int, y2: int, w: int) -> tuple[int, int, int]:
        if w == 0 and y1 >= 1 and y2 >= 1:
            return (y1 - 1, y2 - 1, 1)
        return (y1, y2, w)

    states = [(y1, y2, w) for y1 in range(n1 + 1) for y2 in range(n2 + 1) for w in (0, 1) if w == 1 or y1 == 0 or y2 == 0]
    index = {s: i for i, s in enumerate(states)}
    q = np.zeros((len(states), len(states)))
    for s in states:
        y1, y2, w = s
        moves = []
        if y1 < n1:
            moves.append((mu1, settle(y1 + 1, y2, w)))
        if y2 < n2:
            moves.append((mu2, settle(y1, y2 + 1, w)))
        if w == 1:
            moves.append((mu3, settle(y1, y2, 0)))
        for rate, target in moves:
            q[index[s], index[target]] += rate
            q[index[s], index[s]] -= rate
    pi = stationary(q)
    p = dict(zip(states, pi.tolist(), strict=True))
    busy = sum(v for (_a, _b, w), v in p.items() if w == 1)
    starved1 = sum(v for (y1, _b, w), v in p.items() if w == 0 and y1 == 0)
    starved2 = sum(v for (y1, y2, w), v in p.items() if w == 0 and y1 > 0 and y2 == 0)
    level1 = sum(min(y1, caps[0]) * v for (y1, _b, _w), v in p.items())
    level2 = sum(min(y2, caps[1]) * v for (_a, y2, _w), v in p.items())
    blocked1 = sum(v for (y1, _b, _w), v in p.items() if y1 == n1)
    blocked2 = sum(v for (_a, y2, _w), v in p.items() if y2 == n2)
    return MergeSolution(mu3 * busy, (starved1, starved2), (level1, level2), (blocked1, blocked2), len(states))
