"""Exact throughput of small serial lines with exponential times, by solving their Markov chain.

Each station is one machine, WORKING, BLOCKED (holding a finished unit) or STARVED; buffers hold
0..capacity units. Blocking after service, the first station never starves, the last never blocks: the
same rules as the engine, so the chain's stationary distribution gives the exact long-run values.
"""

from __future__ import annotations

from collections import deque

import numpy as np

W, B, S = "W", "B", "S"
State = tuple[tuple[str, ...], tuple[int, ...]]


def _pull(i: int, m: list[str], buf: list[int], caps: list[int]) -> None:
    """Station ``i`` is free: it loads a unit if one is there (cascading upstream), else it starves."""
    if i == 0:
        m[0] = W
        return
    if buf[i - 1] > 0:
        buf[i - 1] -= 1
        m[i] = W
        if m[i - 1] == B:  # the blocked upstream machine drops its unit into the freed place
            buf[i - 1] += 1
            _pull(i - 1, m, buf, caps)
    elif m[i - 1] == B:  # direct hand-off from a blocked upstream machine (capacity 0)
        m[i] = W
        _pull(i - 1, m, buf, caps)
    else:
        m[i] = S


def _complete(i: int, state: State, caps: list[int]) -> State:
    m, buf = list(state[0]), list(state[1])
    last = len(m) - 1
    if i == last:
        _pull(i, m, buf, caps)
    elif m[i + 1] == S:
        m[i + 1] = W
        _pull(i, m, buf, caps)
    elif buf[i] < caps[i]:
        buf[i] += 1
        _pull(i, m, buf, caps)
    else:
        m[i] = B
    return tuple(m), tuple(buf)


def solve_line(means: list[float], caps: list[int]) -> tuple[float, list[float]]:
    """Throughput per unit time and mean buffer levels of a line with exponential cycle ``means`` and buffer ``caps``."""
    rates = [1.0 / x for x in means]
    start: State = (tuple([W] + [S] * (len(means) - 1)), tuple([0] * len(caps)))
    index: dict[State, int] = {start: 0}
    edges: list[tuple[int, int, float]] = []
    todo = deque([start])
    while todo:
        s = todo.popleft()
        for i, status in enumerate(s[0]):
            if status != W:
                continue
            t = _complete(i, s, caps)
            if t not in index:
                index[t] = len(index)
                todo.append(t)
            edges.append((index[s], index[t], rates[i]))
    n = len(index)
    q = np.zeros((n, n))
    for a, b, r in edges:
        if a != b:
            q[a, b] += r
            q[a, a] -= r
    # pi Q = 0 with sum(pi) = 1: replace one balance equation by the normalisation
    lhs = q.T.copy()
    lhs[-1, :] = 1.0
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    pi = np.linalg.solve(lhs, rhs)
    states = sorted(index, key=index.__getitem__)
    throughput = sum(p * rates[-1] for p, s in zip(pi, states, strict=True) if s[0][-1] == W)
    levels = [sum(p * s[1][k] for p, s in zip(pi, states, strict=True)) for k in range(len(caps))]
    return throughput, levels
