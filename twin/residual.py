"""Residual life: what is left of a duration that is known to have lasted ``age`` hours already.

A forecast starts the line from the live plant, where a machine has been under repair for ``e`` hours or has
run ``a`` hours since its last failure. The unknowns must then be drawn conditioned on what is known: the rest
of the repair is ``T - e`` given ``T > e``, the time to the next failure ``T - a`` given ``T > a``. These are
pure functions over the line file's duration distributions (:mod:`twin.distributions`), parametrised exactly
as :class:`twin.distributions.Sampler` draws them:

* ``Exponential(mean)``: scale ``mean``;
* ``Lognormal``: the logarithm is normal with ``sigma = log_sigma`` and ``mu = ln(mean) - sigma**2 / 2``;
* ``Weibull``: shape ``shape``, scale ``scale_value``;
* ``Gamma(mean, cv)``: shape ``k = 1 / cv**2``, scale ``theta = mean / k``;
* ``Uniform(low, high)``, ``Triangular(low, mode, high)``: as named (``low == high`` is the constant ``low``);
* ``Constant(value)`` and ``Empirical(samples)``: discrete, the samples equally likely (repeats count).

Conventions, all in hours:

* ``S(t) = P(T > t)`` (right-continuous; ``S(t) = 1`` for ``t < 0``) and ``F^-1(p) = inf{t : P(T <= t) >= p}``.
* The residual ``R = T - age`` given ``T > age`` has survival ``S(age + u) / S(age)`` for ``u >= 0`` and ``1``
  for ``u < 0``.
* **Due now.** When ``S(age) == 0`` -- the age is beyond the support: a constant 2 h repair observed 3 h in,
  an empirical repair older than its longest sample, a uniform past its ``high`` -- the observation contradicts
  the model and the event is taken to be due now: ``R = 0`` (its survival is 0 for every ``u >= 0``, its
  quantiles and draws are 0, the expected time within any horizon is 0, the event falls within any horizon).
  The exponential, Weibull, lognormal and gamma have unbounded support and are conditioned in log space, so
  an age far in their tails (``S(age)`` below the smallest double) still gets its proper residual.
* A negative, infinite or NaN age, a negative or NaN horizon (an infinite one is fine), a probability outside
  [0, 1] or a bad draw count raises :class:`ValueError`.

Computation is exact wherever possible: closed forms for the exponential (memoryless) and the Weibull, inverse
transform through ``isf`` (or its log-space equivalent) for the other continuous families, exact counting for
the discrete ones. Nothing here uses rejection except the equilibrium draw of a triangular (see
:func:`sample_equilibrium_residual`).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import integrate, special, stats  # type: ignore[import-untyped]

from twin.distributions import Constant, Empirical, Exponential, Gamma, Lognormal, Triangular, Uniform, Weibull

__all__ = [
    "DurationDist",
    "equilibrium_mean",
    "expected_within",
    "p_event_within",
    "quantile",
    "residual_quantile",
    "residual_survival",
    "sample_equilibrium_residual",
    "sample_residual",
    "survival",
]

DurationDist: TypeAlias = Constant | Exponential | Lognormal | Weibull | Gamma | Uniform | Triangular | Empirical
"""Any duration distribution a line file can hold."""

FloatArray: TypeAlias = npt.NDArray[np.float64]

_LOG_TINY = math.log(1e-290)
"""Below this log-probability ``isf`` is not trusted (subnormal range): the unbounded families solve in log space."""
_SPLIT_P = np.concatenate([[0.1, 0.5, 0.9, 0.99], 1.0 - np.array([1e-3, 1e-4, 1e-5, 1e-6, 1e-8, 1e-10, 1e-12, 1e-14])])
"""Residual quantiles at which :func:`expected_within` splits its integral (quadrature then sees every scale)."""


# ---------------------------------------------------------------------------------------------------------------
# Parametrisation (must match twin.distributions.Sampler._refill)


def _points(dist: DurationDist) -> FloatArray | None:
    """The sorted, equally likely support points of a discrete distribution; None for a continuous one."""
    if isinstance(dist, Constant):
        return np.array([dist.value], dtype=float)
    if isinstance(dist, Empirical):
        return np.sort(np.asarray(dist.samples, dtype=float))
    if isinstance(dist, Uniform) and dist.high == dist.low:
        return np.array([dist.low], dtype=float)
    return None


def _lognormal_mu(dist: Lognormal) -> float:
    s = dist.log_sigma
    return math.log(dist.mean) - s * s / 2.0


def _gamma_k_theta(dist: Gamma) -> tuple[float, float]:
    k = 1.0 / (dist.cv * dist.cv)
    return k, dist.mean / k


def _frozen(dist: DurationDist) -> Any:
    """The scipy frozen distribution of a continuous ``dist``, parametrised as numpy samples it."""
    if isinstance(dist, Exponential):
        return stats.expon(scale=dist.mean)
    if isinstance(dist, Lognormal):
        return stats.lognorm(s=dist.log_sigma, scale=math.exp(_lognormal_mu(dist)))
    if isinstance(dist, Weibull):
        return stats.weibull_min(c=dist.shape, scale=dist.scale_value)
    if isinstance(dist, Gamma):
        k, theta = _gamma_k_theta(dist)
        return stats.gamma(a=k, scale=theta)
    if isinstance(dist, Uniform):
        return stats.uniform(loc=dist.low, scale=dist.high - dist.low)
    if isinstance(dist, Triangular):
        width = dist.high - dist.low
        return stats.triang(c=(dist.mode - dist.low) / width, loc=dist.low, scale=width)
    raise TypeError(f"{dist!r} is not a continuous duration distribution")


# ---------------------------------------------------------------------------------------------------------------
# Argument checks


def _ages(age: npt.ArrayLike) -> FloatArray:
    a = np.asarray(age, dtype=float)
    bad = ~(np.isfinite(a) & (a >= 0))
    if bad.any():
        raise ValueError(
            "age must be a finite non-negative number of hours (time since the repair started or since the last "
            f"failure), got {float(a[bad].flat[0])!r}"
        )
    return a


def _horizon(horizon: float) -> float:
    h = float(horizon)
    if not h >= 0.0:  # also NaN
        raise ValueError(f"horizon must be a non-negative number of hours, got {horizon!r}")
    return h


def _probabilities(p: npt.ArrayLike) -> FloatArray:
    q = np.asarray(p, dtype=float)
    if not ((q >= 0.0) & (q <= 1.0)).all():
        raise ValueError(f"probabilities must lie in [0, 1], got {p!r}")
    return q


def _count(n: int) -> int:
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"the number of draws must be a non-negative integer, got {n!r}")
    return int(n)


# ---------------------------------------------------------------------------------------------------------------
# Log survival and its inverse for the continuous families (exact far into the tails)


def _gamma_log_q(k: float, x: FloatArray) -> FloatArray:
    """log Q(k, x), the log regularised upper incomplete gamma, also where Q underflows (x > k + 1 there).

    Uses scipy's ``gammaincc`` where it is representable and the continued fraction of Gamma(k, x) (modified
    Lentz) where it is not.
    """
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)
    pos = x > 0
    if not pos.any():
        return out
    xp = x[pos]
    q = special.gammaincc(k, xp)
    with np.errstate(divide="ignore"):
        lq = np.log(q)
    deep = (q < 1e-290) & np.isfinite(xp)
    if deep.any():
        xd = xp[deep]
        tiny = 1e-300
        b = xd + 1.0 - k
        c = np.full_like(xd, 1.0 / tiny)
        d = 1.0 / b
        h = d.copy()
        for i in range(1, 1000):
            an = -i * (i - k)
            b = b + 2.0
            d = an * d + b
            d = np.where(np.abs(d) < tiny, tiny, d)
            c = b + an / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            d = 1.0 / d
            delta = d * c
            h = h * delta
            if np.all(np.abs(delta - 1.0) < 4e-16):
                break
        lq[deep] = -xd + k * np.log(xd) - special.gammaln(k) + np.log(h)
    lq[np.isinf(xp)] = -np.inf
    out[pos] = lq
    return out


def _logsf(dist: DurationDist, t: npt.ArrayLike) -> FloatArray:
    """log S(t) for a continuous ``dist``, accurate where S(t) itself would underflow."""
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if isinstance(dist, Exponential):
            return np.where(t > 0, -t / dist.mean, 0.0)
        if isinstance(dist, Weibull):
            return np.where(t > 0, -((np.maximum(t, 0.0) / dist.scale_value) ** dist.shape), 0.0)
        if isinstance(dist, Lognormal):
            z = (np.log(np.maximum(t, 0.0)) - _lognormal_mu(dist)) / dist.log_sigma
            return np.asarray(special.log_ndtr(-z), dtype=float)
        if isinstance(dist, Gamma):
            k, theta = _gamma_k_theta(dist)
            return _gamma_log_q(k, t / theta)
        return np.asarray(np.log(_bounded_sf(dist, t)), dtype=float)


def _bounded_sf(dist: DurationDist, t: FloatArray) -> FloatArray:
    """S(t) of a (non-degenerate) uniform or triangular in closed form: as scipy's ``sf`` but without its
    per-call overhead or the cancellation of ``1 - cdf`` near ``high`` (quadrature calls it point by point)."""
    if isinstance(dist, Uniform):
        return np.asarray(np.clip((dist.high - t) / (dist.high - dist.low), 0.0, 1.0), dtype=float)
    assert isinstance(dist, Triangular)
    lo, md, hi = dist.low, dist.mode, dist.high
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = 1.0 - (t - lo) ** 2 / ((hi - lo) * (md - lo))
        falling = (hi - t) ** 2 / ((hi - lo) * (hi - md))
    sf = np.where(t <= lo, 1.0, np.where(t <= md, rising, np.where(t < hi, falling, 0.0)))
    return np.asarray(sf, dtype=float)


def _isf_log(dist: DurationDist, logq: FloatArray) -> FloatArray:
    """The t with log S(t) = logq (logq <= 0) for a continuous ``dist``: isf of exp(logq), in log space."""
    logq = np.minimum(np.asarray(logq, dtype=float), 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if isinstance(dist, Exponential):
            return -dist.mean * logq
        if isinstance(dist, Weibull):
            return dist.scale_value * (-logq) ** (1.0 / dist.shape)
        if isinstance(dist, Lognormal):
            return np.asarray(np.exp(_lognormal_mu(dist) - dist.log_sigma * special.ndtri_exp(logq)), dtype=float)
        if isinstance(dist, Gamma):
            k, theta = _gamma_k_theta(dist)
            # scipy's upper inverse is precise but slow for small k in the middle; the lower one is as
            # precise there (1 - q from expm1 of the log is exact enough for q >= 0.1) and fast.
            upper = logq < math.log(0.1)
            out = np.empty(logq.shape)
            out[upper] = theta * special.gammainccinv(k, np.exp(logq[upper]))
            out[~upper] = theta * special.gammaincinv(k, -np.expm1(logq[~upper]))
            deep = logq < _LOG_TINY
            if deep.any():
                out[deep] = theta * _gamma_tail_solve(k, logq[deep])
            return out
        return np.asarray(_frozen(dist).isf(np.exp(logq)), dtype=float)


def _gamma_tail_solve(k: float, logq: FloatArray) -> FloatArray:
    """The x with log Q(k, x) = logq for logq far in the tail, by Newton's method on the log survival."""
    x = np.maximum(k - logq + np.sqrt(-2.0 * k * logq), 1.0)
    lgk = special.gammaln(k)
    for _ in range(100):
        lq = _gamma_log_q(k, x)
        hazard = np.exp((k - 1.0) * np.log(x) - x - lgk - lq)
        step = (lq - logq) / hazard
        x_new = np.maximum(x + step, x / 2.0)
        done = np.abs(x_new - x) <= 1e-15 * x
        x = x_new
        if done.all():
            break
    return np.asarray(x, dtype=float)


def _residual_from_log(dist: DurationDist, age: FloatArray, logv: FloatArray) -> FloatArray:
    """The residual r with P(R > r) = exp(logv) for a continuous ``dist`` of age ``age`` (broadcast).

    Due now (0) where S(age) == 0. Never negative.
    """
    age = np.asarray(age, dtype=float)
    la = None if isinstance(dist, Exponential | Weibull) else _logsf(dist, age)  # once per age, not per draw
    age, logv = np.broadcast_arrays(age, np.asarray(logv, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if isinstance(dist, Exponential):  # memoryless
            return np.array(-dist.mean * logv, dtype=float)
        if isinstance(dist, Weibull):
            # T = s ((a/s)^k + E)^(1/k) with E = -logv; for E < (a/s)^k written without cancellation.
            s, k = dist.scale_value, dist.shape
            x0 = (age / s) ** k
            e = -logv
            near = (x0 > 0) & (e < x0)
            r_near = age * np.expm1(np.log1p(e / np.where(near, x0, 1.0)) / k)
            r_far = s * (x0 + e) ** (1.0 / k) - age
            return np.array(np.maximum(np.where(near, r_near, r_far), 0.0), dtype=float)
        assert la is not None
        la = np.broadcast_to(la, age.shape)
        alive = np.isfinite(la)
        t = _isf_log(dist, np.where(alive, logv + np.where(alive, la, 0.0), 0.0))
        return np.array(np.where(alive, np.maximum(t - age, 0.0), 0.0), dtype=float)


# ---------------------------------------------------------------------------------------------------------------
# Public API


def survival(dist: DurationDist, t: npt.ArrayLike) -> FloatArray:
    """S(t) = P(T > t) for each t (hours), shaped like ``t``; 1 for t < 0.

    Continuous families use scipy's ``sf`` (precise in the upper tail); discrete ones count the samples above t.
    """
    tt = np.asarray(t, dtype=float)
    pts = _points(dist)
    if pts is not None:
        above = pts.size - np.searchsorted(pts, tt, side="right")
        return np.asarray(above / pts.size, dtype=float)
    return np.asarray(_frozen(dist).sf(tt), dtype=float)


def quantile(dist: DurationDist, p: npt.ArrayLike) -> FloatArray:
    """F^-1(p) = inf{t : P(T <= t) >= p} for each p in [0, 1], shaped like ``p`` (hours).

    Continuous families use scipy's ``ppf``; for discrete ones p = 0 gives the smallest sample.
    """
    q = _probabilities(p)
    pts = _points(dist)
    if pts is not None:
        return np.asarray(pts[_discrete_index(pts.size, q)], dtype=float)
    return np.asarray(_frozen(dist).ppf(q), dtype=float)


def _discrete_index(m: npt.ArrayLike, p: FloatArray) -> npt.NDArray[np.intp]:
    """The 0-based index, among m sorted equally likely points, of their p-quantile (generalised inverse)."""
    m_arr = np.asarray(m, dtype=float)
    j = np.ceil(m_arr * p - 1e-12 * np.maximum(m_arr, 1.0)) - 1.0
    idx: npt.NDArray[np.intp] = np.clip(j, 0.0, np.maximum(m_arr - 1.0, 0.0)).astype(np.intp)
    return idx


def residual_survival(dist: DurationDist, age: npt.ArrayLike, u: npt.ArrayLike) -> FloatArray:
    """P(T - age > u | T > age) = S(age + u) / S(age) for each u (hours; ``age`` and ``u`` broadcast).

    Equals 1 for u < 0. Due now: where S(age) == 0 (age beyond the support) the residual is 0, so this is 0
    for every u >= 0. Raises ValueError for a negative age.
    """
    a, uu = np.broadcast_arrays(_ages(age), np.asarray(u, dtype=float))
    pts = _points(dist)
    if pts is not None:
        n_age = pts.size - np.searchsorted(pts, a, side="right")
        n_both = pts.size - np.searchsorted(pts, a + uu, side="right")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(n_age > 0, n_both / np.maximum(n_age, 1), 0.0)
    else:
        la = _logsf(dist, a)
        lb = _logsf(dist, a + np.maximum(uu, 0.0))
        with np.errstate(invalid="ignore"):
            ratio = np.where(np.isfinite(la), np.exp(lb - np.where(np.isfinite(la), la, 0.0)), 0.0)
    return np.asarray(np.where(uu < 0, 1.0, np.minimum(ratio, 1.0)), dtype=float)


def residual_quantile(dist: DurationDist, age: npt.ArrayLike, p: npt.ArrayLike) -> FloatArray:
    """The p-quantile of T - age given T > age, for each p in [0, 1] (hours; ``age`` and ``p`` broadcast).

    Exact: the root of S(age + q) = (1 - p) S(age) through ``isf`` (in log space, so ages far in the tail are
    exact too), closed forms for the exponential and the Weibull, and the generalised inverse of the remaining
    samples for the discrete families. Due now (0) where S(age) == 0. Raises ValueError for a negative age.
    """
    a, q = np.broadcast_arrays(_ages(age), _probabilities(p))
    pts = _points(dist)
    if pts is not None:
        start = np.searchsorted(pts, a, side="right")
        m = pts.size - start
        idx = np.minimum(start + _discrete_index(m, q), pts.size - 1)
        return np.asarray(np.where(m > 0, np.maximum(pts[idx] - a, 0.0), 0.0), dtype=float)
    with np.errstate(divide="ignore"):
        logv = np.log1p(-q)
    return _residual_from_log(dist, a, logv)


def sample_residual(dist: DurationDist, age: npt.ArrayLike, rng: np.random.Generator, n: int) -> FloatArray:
    """``n`` independent draws of T - age given T > age (hours), never negative.

    ``age`` is one age for all draws or an array of ``n`` ages, one per draw. Exact inverse transform on the
    survival function, T = S^-1(v S(age)) with v ~ U(0, 1], one uniform per draw (no rejection); discrete
    families draw uniformly among the samples above the age. Due now: draws whose S(age) == 0 are 0.
    Raises ValueError for a negative age or an age array that is not of length ``n``.
    """
    n = _count(n)
    a = _ages(age)
    if a.ndim > 1 or (a.ndim == 1 and a.size != n):
        raise ValueError(f"age must be a number or an array of n = {n} ages, got shape {a.shape}")
    w = rng.random(n)  # in [0, 1)
    pts = _points(dist)
    if pts is not None:
        a = np.broadcast_to(a, (n,))
        start = np.searchsorted(pts, a, side="right")
        m = pts.size - start
        idx = np.minimum(start + np.floor(m * w).astype(np.intp), pts.size - 1)
        return np.asarray(np.where(m > 0, np.maximum(pts[idx] - a, 0.0), 0.0), dtype=float)
    return _residual_from_log(dist, a, np.log1p(-w))


def p_event_within(dist: DurationDist, age: float, horizon: float) -> float:
    """P(T - age <= horizon | T > age) = 1 - S(age + H) / S(age): that a machine of age ``age`` fails (or a
    repair ``age`` hours in ends) within the next ``horizon`` hours.

    Due now: 1 when S(age) == 0. Raises ValueError for a negative age or horizon.
    """
    a = float(_ages(age))
    h = _horizon(horizon)
    pts = _points(dist)
    if pts is not None:
        return float(1.0 - residual_survival(dist, a, h))
    la = float(_logsf(dist, a))
    if not math.isfinite(la):
        return 1.0
    return float(-np.expm1(float(_logsf(dist, a + h)) - la))


def expected_within(dist: DurationDist, age: float, horizon: float) -> float:
    """E[min(T - age, H) | T > age] = integral over [0, H] of S(age + u) / S(age) du (hours).

    The expected part of the next ``horizon`` hours that a repair ``age`` hours in still takes (or that a
    machine of age ``age`` still runs before failing). ``horizon`` may be infinite (the mean residual life).
    Closed form for the exponential, exact sums for the discrete families, otherwise adaptive quadrature split
    at residual quantiles and support breakpoints (relative error far below 1e-6). 0 for horizon 0 and when
    the event is due now (S(age) == 0). Raises ValueError for a negative age or horizon.
    """
    a = float(_ages(age))
    h = _horizon(horizon)
    if h == 0.0:
        return 0.0
    pts = _points(dist)
    if pts is not None:
        rest = pts[pts > a] - a
        return float(np.minimum(rest, h).mean()) if rest.size else 0.0
    if isinstance(dist, Exponential):
        return float(-dist.mean * np.expm1(-h / dist.mean))
    la = float(_logsf(dist, a))
    if not math.isfinite(la):
        return 0.0

    cap = h
    breaks: list[float] = []
    if isinstance(dist, Uniform | Triangular):
        cap = min(h, dist.high - a)
        corners = [dist.low, dist.high] + ([dist.mode] if isinstance(dist, Triangular) else [])
        breaks = [c - a for c in corners]
    breaks.extend(float(x) for x in residual_quantile(dist, a, _SPLIT_P))
    edges = sorted({0.0, cap, *(b for b in breaks if 0.0 < b < cap and math.isfinite(b))})

    def integrand(u: float) -> float:
        return math.exp(float(_logsf(dist, a + u)) - la)

    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        value = integrate.quad(integrand, lo, hi, epsabs=0.0, epsrel=1e-12, limit=200, full_output=1)[0]
        total += float(value)
    return total


def equilibrium_mean(dist: DurationDist) -> float:
    """E[T^2] / (2 E[T]): the mean residual life seen at a random instant by an observer who does not know the
    age (the inspection paradox); 0 for a distribution that is identically 0."""
    if isinstance(dist, Exponential):
        return dist.mean
    if isinstance(dist, Lognormal):
        return dist.mean * math.exp(dist.log_sigma**2) / 2.0
    if isinstance(dist, Weibull):
        k = dist.shape
        return dist.scale_value * math.gamma(1.0 + 2.0 / k) / (2.0 * math.gamma(1.0 + 1.0 / k))
    if isinstance(dist, Gamma):
        return dist.mean * (1.0 + dist.cv**2) / 2.0
    if isinstance(dist, Triangular):
        lo, md, hi = dist.low, dist.mode, dist.high
        second = (lo * lo + md * md + hi * hi + lo * md + lo * hi + md * hi) / 6.0
        return second / (2.0 * dist.mean_value)
    if isinstance(dist, Uniform) and dist.high > dist.low:
        lo, hi = dist.low, dist.high
        return (lo * lo + lo * hi + hi * hi) / 3.0 / (lo + hi)
    pts = _points(dist)
    assert pts is not None
    total = float(pts.sum())
    return float((pts * pts).sum() / (2.0 * total)) if total > 0 else 0.0


def sample_equilibrium_residual(dist: DurationDist, rng: np.random.Generator, n: int) -> FloatArray:
    """``n`` draws from the equilibrium (stationary) residual life, density S(r) / E[T] on r >= 0 (hours).

    The residual seen at a random instant by an observer who does not know the age, e.g. for a machine whose
    age was never seen. Exact, by the inspection paradox: the interval that covers a random instant is
    length-biased (density t f(t) / E[T]) and the instant falls uniformly within it, so R = U * T~ with U
    uniform on (0, 1) and T~ length-biased. T~ has closed forms: Gamma(k + 1, theta) for the gamma (so
    Gamma(2, mean) for the exponential, whose R is again exponential and drawn directly), the lognormal with
    mu + sigma^2, scale * Gamma(1 + 1/k)^(1/k) for the Weibull, sqrt(low^2 + v (high^2 - low^2)) for the
    uniform, a sample picked with probability proportional to its value for the discrete families (Constant c
    gives Uniform(0, c)); the triangular's is drawn by accepting a triangular draw t with probability t / high.
    A distribution that is identically 0 gives zeros.
    """
    n = _count(n)
    if isinstance(dist, Exponential):
        return rng.exponential(dist.mean, n)
    if isinstance(dist, Lognormal):
        s = dist.log_sigma
        biased = rng.lognormal(_lognormal_mu(dist) + s * s, s, n)
    elif isinstance(dist, Gamma):
        k, theta = _gamma_k_theta(dist)
        biased = rng.gamma(k + 1.0, theta, n)
    elif isinstance(dist, Weibull):
        biased = dist.scale_value * rng.gamma(1.0 + 1.0 / dist.shape, 1.0, n) ** (1.0 / dist.shape)
    elif isinstance(dist, Uniform) and dist.high > dist.low:
        lo, hi = dist.low, dist.high
        biased = np.sqrt(lo * lo + rng.random(n) * (hi * hi - lo * lo))
    elif isinstance(dist, Triangular):
        biased = np.empty(n)
        filled = 0
        while filled < n:
            want = n - filled
            batch = int(want * dist.high / dist.mean_value * 1.1) + 16
            t = rng.triangular(dist.low, dist.mode, dist.high, batch)
            kept = t[rng.random(batch) * dist.high < t][:want]
            biased[filled : filled + kept.size] = kept
            filled += kept.size
    else:
        pts = _points(dist)
        assert pts is not None
        cum = np.cumsum(pts)
        if cum[-1] <= 0.0:
            return np.zeros(n)
        idx = np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), pts.size - 1)
        biased = pts[idx]
    return np.asarray(rng.random(n) * biased, dtype=float)
