"""Fitting duration distributions to right-censored observations: the statistics core of calibration.

An observation is a duration and whether it ended: ``observed[i]`` True is a complete observation (the failure or
the end of the repair happened after ``durations[i]``); False is right-censored (it had not happened yet after
``durations[i]``: a running clock at the window's end, a repair still in progress). Censored observations are
neither dropped (which biases the mean down: the long ones are the ones cut) nor taken as complete.
Durations are in any one unit (the calibration passes hours); every result is in that unit.

**Likelihood.** For a family with density ``f`` and survival ``S = 1 - F`` the log-likelihood is
``sum(log f(t_i), complete) + sum(log S(t_i), censored)`` (independent, non-informative censoring).

* ``exponential`` (rate ``1 / scale``): closed form, ``scale = T / r`` with ``T`` the total time on test (every
  duration, complete or not) and ``r`` the number of complete observations.
* ``weibull`` (``shape``, ``scale``), ``lognormal`` (``mu``, ``sigma`` of the logarithm) and ``gamma``
  (``shape``, ``scale``): ``scipy.optimize.minimize`` (BFGS, then Nelder-Mead if BFGS fails) over the logarithms
  of the positive parameters (``mu`` as is), so that the search is unconstrained. The log-densities and
  log-survivals are written out with ``scipy.special`` (the same formulas as ``scipy.stats``' ``logpdf`` and
  ``logsf``, at a tenth of their cost, which the bootstrap repeats hundreds of times). The search starts from
  the censoring-aware exponential mean ``T / r`` and the coefficient of variation of the complete observations,
  and runs on ``-loglik / n`` shifted so that the start is the origin (well scaled whatever the time unit).
  A family whose search fails, or ends at a degenerate point (a shape or sigma outside [1e-3, 1e3], a likelihood
  that is not finite), is left out of :attr:`FitResult.fits`, with the reason in :attr:`FitResult.note`. The
  two-parameter families need at least two distinct complete durations.

**Choice.** The smallest ``AIC = 2 k - 2 loglik`` (``k`` = 1 for the exponential, 2 otherwise); ties go to the
family listed first. Two families whose AIC differ by less than 2 are about equally supported: the note says so.

**Interval of the mean** (``level``, 0.95 by default), for the chosen family only:

* exponential: the chi-square interval on the total time on test ``[2T / chi2((1 + L) / 2, 2r + 2),
  2T / chi2((1 - L) / 2, 2r)]``. It is exact when observation stops at the ``r``-th failure and conservative
  (at least ``L``) when it stops at a time, as a window does (hence ``2r + 2`` in the lower limit: the
  time-terminated test of MIL-HDBK-781);
* the others: parametric bootstrap, percentile interval. ``bootstrap`` samples of the same size are drawn from
  the fitted model and censored as the data were: each draw gets a censoring time from the **reverse
  Kaplan-Meier** estimate of the censoring distribution (censorings as events, complete observations as
  censored; the mass it leaves beyond the last censoring is "never censored"). This is the standard scheme under
  random censorship (a window end cutting clocks that started at unrelated times): it reproduces the data's
  share of censoring instead of censoring only where the data happened to be censored. Each bootstrap sample is
  refitted with the chosen family (the interval is conditional on the family choice), starting from the fit;
  samples without a complete observation, or whose refit fails, are skipped and counted in the note.

**Goodness of fit.** :attr:`FitResult.ks_distance` is the censoring-aware Kolmogorov distance
``sup |F_KM(t) - F_fit(t)|`` over ``0 <= t <= max(durations)`` between the Kaplan-Meier estimate and the fitted
CDF (beyond the largest duration the Kaplan-Meier estimate says nothing). Its null distribution is not
Kolmogorov's (estimated parameters, censoring), so the p-value :attr:`FitResult.ks_pvalue` comes from the same
parametric bootstrap: the share of bootstrap samples whose distance to their own refit is at least the data's.

**No complete observation** raises :class:`FitError` (a ``ValueError``): no family has a finite estimate of the
mean then (the exponential's is infinite); the message gives the total time and the one-sided lower bound of
the mean ``T / -ln(1 - L)``, which is what the data do say. So does every family failing.

:func:`clopper_pearson` is the exact binomial interval (scrap over processed); :func:`kaplan_meier` the
product-limit estimate of the survival.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import optimize, special, stats  # type: ignore[import-untyped]

from twin.errors import TwinError

__all__ = ["FAMILIES", "FamilyFit", "FitError", "FitResult", "clopper_pearson", "fit_censored", "kaplan_meier"]

FAMILIES: tuple[str, ...] = ("exponential", "weibull", "lognormal", "gamma")
"""The families :func:`fit_censored` knows, in its default order of preference on equal AIC."""

Array = npt.NDArray[np.float64]
Durations = Sequence[float] | Array
Flags = Sequence[bool] | npt.NDArray[Any]

_PENALTY = 1e10  # the objective where the likelihood is not finite: finite, so BFGS's line search backs off
_SPREAD_BOUNDS = (1e-3, 1e3)  # a shape or sigma outside is a degenerate fit, not a distribution


class FitError(TwinError, ValueError):
    """Observations that cannot be fitted: bad input (the message names it), or nothing estimable."""


@dataclass(frozen=True)
class FamilyFit:
    """One family fitted by censored maximum likelihood.

    ``params`` are scipy's: exponential ``{"scale"}`` (the mean); weibull ``{"shape", "scale"}``; lognormal
    ``{"mu", "sigma"}`` of the logarithm; gamma ``{"shape", "scale"}``. ``mean`` is the fitted mean,
    ``loglik`` the maximised log-likelihood, ``aic`` its Akaike criterion.
    """

    family: str
    params: dict[str, float]
    mean: float
    loglik: float
    aic: float

    def as_line_dist(self) -> dict[str, Any]:
        """The fit as a line file's distribution mapping (durations in the input's unit), e.g.
        ``{"dist": "weibull", "shape": 2.1, "mean": 5.3}``; ``twin.distributions`` builds it to the same law."""
        p = self.params
        if self.family == "exponential":
            return {"dist": "exponential", "mean": self.mean}
        if self.family == "weibull":
            return {"dist": "weibull", "shape": p["shape"], "mean": self.mean}
        if self.family == "lognormal":
            return {"dist": "lognormal", "mean": self.mean, "sigma": p["sigma"]}
        if self.family == "gamma":
            return {"dist": "gamma", "mean": self.mean, "cv": 1.0 / math.sqrt(p["shape"])}
        raise ValueError(f"unknown family {self.family!r}")  # pragma: no cover - FamilyFit is only made here


@dataclass(frozen=True)
class FitResult:
    """The outcome of :func:`fit_censored` (module docstring for the methods).

    ``best`` is the family chosen by AIC and ``mean`` its mean; ``ci95`` the ``level`` interval of the mean
    (``(nan, nan)`` when no bootstrap sample could be refitted, or ``bootstrap`` is 0 for a bootstrap family),
    made by ``ci_method``; ``n_events`` and ``n_censored`` count the complete and censored observations and
    ``total_time`` sums every duration; ``fits`` holds every family fitted, best AIC first; ``ks_distance``
    and ``ks_pvalue`` (NaN without bootstrap) measure the fit against the Kaplan-Meier estimate; ``note``
    says what was left out or is worth knowing ("" when nothing).
    """

    best: FamilyFit
    mean: float
    ci95: tuple[float, float]
    n_events: int
    n_censored: int
    total_time: float
    fits: list[FamilyFit]
    ks_distance: float
    note: str
    level: float = 0.95
    ci_method: str = ""
    ks_pvalue: float = math.nan


# ---------------------------------------------------------------------------------------------------------------
# The families. Each works on a natural vector ``v`` of unconstrained parameters.


@dataclass(frozen=True)
class _Family:
    name: str
    k: int
    start: Callable[[float, float], Array]  # (mean, cv) -> v
    params: Callable[[Array], dict[str, float]]  # v -> scipy parameters
    mean: Callable[[dict[str, float]], float]
    logpdf: Callable[[dict[str, float], Array], Array]
    logsf: Callable[[dict[str, float], Array], Array]
    cdf: Callable[[dict[str, float], Array], Array]
    draw: Callable[[dict[str, float], np.random.Generator, int], Array]


def _weibull_shape_for_cv(cv: float) -> float:
    # The usual approximation shape ~ cv**-1.086 (good for shapes 0.5 to 10): a start, not an estimate.
    return float(cv**-1.086)


def _weibull_start(mean: float, cv: float) -> Array:
    c = _weibull_shape_for_cv(cv)
    return np.array([math.log(c), math.log(mean / math.gamma(1.0 + 1.0 / c))])


def _lognormal_start(mean: float, cv: float) -> Array:
    sigma = math.sqrt(math.log1p(cv * cv))
    return np.array([math.log(mean) - sigma * sigma / 2.0, math.log(sigma)])


def _gamma_start(mean: float, cv: float) -> Array:
    a = 1.0 / (cv * cv)
    return np.array([math.log(a), math.log(mean / a)])


def _gamma_logsf(p: dict[str, float], x: Array) -> Array:
    q = special.gammaincc(p["shape"], x / p["scale"])
    out: Array = np.log(q, where=q > 0, out=np.full_like(x, -np.inf))
    tiny = q < 1e-300
    if tiny.any():  # far in the tail the regularised function underflows; scipy.stats has the asymptotics
        out[tiny] = stats.gamma.logsf(x[tiny], p["shape"], scale=p["scale"])
    return out


_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

_FAMILY: dict[str, _Family] = {
    "exponential": _Family(
        name="exponential",
        k=1,
        start=lambda mean, cv: np.array([math.log(mean)]),
        params=lambda v: {"scale": math.exp(v[0])},
        mean=lambda p: p["scale"],
        logpdf=lambda p, x: -math.log(p["scale"]) - x / p["scale"],
        logsf=lambda p, x: -x / p["scale"],
        cdf=lambda p, x: -np.expm1(-x / p["scale"]),
        draw=lambda p, rng, n: rng.exponential(p["scale"], n),
    ),
    "weibull": _Family(
        name="weibull",
        k=2,
        start=_weibull_start,
        params=lambda v: {"shape": math.exp(v[0]), "scale": math.exp(v[1])},
        mean=lambda p: p["scale"] * math.gamma(1.0 + 1.0 / p["shape"]),
        logpdf=lambda p, x: (
            math.log(p["shape"] / p["scale"]) + (p["shape"] - 1.0) * np.log(x / p["scale"]) - (x / p["scale"]) ** p["shape"]
        ),
        logsf=lambda p, x: -((x / p["scale"]) ** p["shape"]),
        cdf=lambda p, x: -np.expm1(-((x / p["scale"]) ** p["shape"])),
        draw=lambda p, rng, n: p["scale"] * rng.weibull(p["shape"], n),
    ),
    "lognormal": _Family(
        name="lognormal",
        k=2,
        start=_lognormal_start,
        params=lambda v: {"mu": float(v[0]), "sigma": math.exp(v[1])},
        mean=lambda p: math.exp(p["mu"] + p["sigma"] ** 2 / 2.0),
        logpdf=lambda p, x: -np.log(x) - math.log(p["sigma"]) - _LOG_SQRT_2PI - 0.5 * ((np.log(x) - p["mu"]) / p["sigma"]) ** 2,
        logsf=lambda p, x: special.log_ndtr((p["mu"] - np.log(x)) / p["sigma"]),
        cdf=lambda p, x: special.ndtr((np.log(x) - p["mu"]) / p["sigma"]),
        draw=lambda p, rng, n: rng.lognormal(p["mu"], p["sigma"], n),
    ),
    "gamma": _Family(
        name="gamma",
        k=2,
        start=_gamma_start,
        params=lambda v: {"shape": math.exp(v[0]), "scale": math.exp(v[1])},
        mean=lambda p: p["shape"] * p["scale"],
        logpdf=lambda p, x: (
            (p["shape"] - 1.0) * np.log(x / p["scale"]) - x / p["scale"] - special.gammaln(p["shape"]) - math.log(p["scale"])
        ),
        logsf=_gamma_logsf,
        cdf=lambda p, x: special.gammainc(p["shape"], x / p["scale"]),
        draw=lambda p, rng, n: rng.gamma(p["shape"], p["scale"], n),
    ),
}


def _spread(family: str, p: dict[str, float]) -> float:
    return p["sigma"] if family == "lognormal" else p.get("shape", 1.0)


# ---------------------------------------------------------------------------------------------------------------
# Input checks


def _check(durations: Durations, observed: Flags) -> tuple[Array, npt.NDArray[np.bool_]]:
    x = np.asarray(durations, dtype=np.float64)
    raw = np.asarray(observed)
    if x.ndim != 1 or raw.ndim != 1:
        raise FitError(f"durations and observed must be flat sequences, got shapes {x.shape} and {raw.shape}")
    if x.size != raw.size:
        raise FitError(f"durations and observed differ in length: {x.size} durations, {raw.size} flags")
    if x.size == 0:
        raise FitError("no observations: durations is empty")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise FitError(f"durations[{bad[0]}] is {x[bad[0]]}: durations must be finite ({bad.size} are not)")
    neg = np.flatnonzero(x < 0)
    if neg.size:
        raise FitError(f"durations[{neg[0]}] is {x[neg[0]]}: durations must be >= 0 ({neg.size} are negative)")
    if raw.dtype != np.bool_ and (raw.dtype.kind not in "iu" or not np.isin(raw, (0, 1)).all()):
        raise FitError(f"observed must hold booleans (True = complete, False = censored), got dtype {raw.dtype}")
    obs = raw.astype(np.bool_)
    zero = np.flatnonzero(obs & (x == 0))
    if zero.size:
        # A density is 0 or infinite at 0 for most families: an event that took no time is a recording artefact
        # (two changes with one timestamp), to be merged or floored at the clock's resolution by the caller.
        raise FitError(f"durations[{zero[0]}] is a complete observation of 0: complete durations must be > 0 ({zero.size} are 0)")
    return x, obs


# ---------------------------------------------------------------------------------------------------------------
# Kaplan-Meier and Clopper-Pearson


def kaplan_meier(durations: Durations, observed: Flags) -> tuple[Array, Array]:
    """The Kaplan-Meier (product-limit) estimate of the survival: its distinct complete-observation ``times``
    (ascending) and ``survival`` just after each, ``S(t_j) = prod(1 - d_i / n_i, t_i <= t_j)``.

    ``n_i`` counts the observations with a duration at least ``t_i`` (a censoring tied with an event is still at
    risk at it, the usual convention). No complete observation gives two empty arrays. Raises :class:`FitError`
    on bad input (as :func:`fit_censored`, but complete observations of 0 are allowed here).
    """
    x = np.asarray(durations, dtype=np.float64)
    raw = np.asarray(observed)
    if x.shape != raw.shape or x.ndim != 1:
        raise FitError(f"durations and observed differ in length: shapes {x.shape} and {raw.shape}")
    if not np.isfinite(x).all() or (x < 0).any():
        raise FitError("durations must be finite and >= 0")
    obs = raw.astype(np.bool_)
    uniq, inverse = np.unique(x, return_inverse=True)
    total = np.bincount(inverse, minlength=uniq.size)
    events = np.bincount(inverse, weights=obs.astype(np.float64), minlength=uniq.size)
    at_risk = x.size - np.concatenate(([0], np.cumsum(total)[:-1]))
    keep = events > 0
    surv = np.cumprod(1.0 - events[keep] / at_risk[keep])
    return uniq[keep], surv


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) ``level`` interval of a binomial proportion from ``k`` successes in ``n``
    trials: beta quantiles, with the lower limit 0 when ``k == 0`` and the upper 1 when ``k == n``.

    Raises :class:`FitError` unless ``0 <= k <= n``, ``n >= 1`` and ``0 < level < 1``.
    """
    if not 0.0 < level < 1.0:
        raise FitError(f"level must lie in (0, 1), got {level}")
    if n < 1 or not 0 <= k <= n:
        raise FitError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    alpha = 1.0 - level
    lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2.0, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1.0 - alpha / 2.0, k + 1, n - k))
    return lo, hi


def _ks(fam: _Family, p: dict[str, float], x: Array, obs: npt.NDArray[np.bool_]) -> float:
    times, surv = kaplan_meier(x, obs)
    # KM is a step function and F_fit increases, so the supremum over [0, max(x)] is at the steps: compare the
    # fit at each step with the KM value just before and just after it, and at max(x) with the last value.
    f_km_after = 1.0 - surv
    f_km_before = np.concatenate(([0.0], f_km_after[:-1]))
    with np.errstate(all="ignore"):
        f_fit = fam.cdf(p, times)
        f_end = float(fam.cdf(p, np.array([x.max()]))[0])
    d = max(float(np.max(np.abs(f_fit - f_km_after))), float(np.max(np.abs(f_fit - f_km_before))))
    return max(d, abs(f_end - float(f_km_after[-1])))


# ---------------------------------------------------------------------------------------------------------------
# Maximum likelihood


def _loglik(fam: _Family, p: dict[str, float], x_obs: Array, x_cens: Array) -> float:
    with np.errstate(all="ignore"):
        return float(np.sum(fam.logpdf(p, x_obs)) + np.sum(fam.logsf(p, x_cens)))


def _mle(fam: _Family, x: Array, obs: npt.NDArray[np.bool_], v0: Array | None = None) -> tuple[FamilyFit | None, str]:
    """The family's fit, or None and why not."""
    x_obs, x_cens = x[obs], x[~obs]
    r, total = x_obs.size, float(x.sum())
    if r == 0:
        return None, "no complete observation"
    mean0 = total / r  # the exponential MLE: censoring-aware, a good start for every family's mean
    if fam.name == "exponential":
        p = {"scale": mean0}
        ll = -r * math.log(mean0) - r  # r log(rate) - rate T at rate = r / T
        return FamilyFit("exponential", p, mean0, ll, 2.0 * fam.k - 2.0 * ll), ""
    if np.unique(x_obs).size < 2:
        return None, "fewer than 2 distinct complete durations"
    if v0 is None:
        cv0 = float(np.std(x_obs) / np.mean(x_obs))
        v0 = fam.start(mean0, min(max(cv0, 0.1), 10.0))
    n = x.size

    def objective(theta: Array) -> float:
        # -loglik / n around the start: of order 1 whatever the unit and the sample size
        ll = _loglik(fam, fam.params(v0 + theta), x_obs, x_cens)
        return -ll / n if math.isfinite(ll) else _PENALTY

    zero = np.zeros_like(v0)
    with np.errstate(all="ignore"):
        res = optimize.minimize(objective, zero, method="BFGS")
        if not res.success or res.fun >= _PENALTY:
            res = optimize.minimize(objective, zero, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12})
    if not res.success or res.fun >= _PENALTY:
        return None, f"optimiser failed ({res.message})"
    p = fam.params(v0 + res.x)
    lo, hi = _SPREAD_BOUNDS
    if not lo <= _spread(fam.name, p) <= hi:
        return None, f"degenerate fit ({p})"
    ll = _loglik(fam, p, x_obs, x_cens)
    mean = fam.mean(p)
    if not (math.isfinite(ll) and math.isfinite(mean) and mean > 0):
        return None, f"degenerate fit ({p})"
    return FamilyFit(fam.name, p, mean, ll, 2.0 * fam.k - 2.0 * ll), ""


def _natural(fit: FamilyFit) -> Array:
    p = fit.params
    if fit.family == "exponential":
        return np.array([math.log(p["scale"])])
    if fit.family == "lognormal":
        return np.array([p["mu"], math.log(p["sigma"])])
    return np.array([math.log(p["shape"]), math.log(p["scale"])])


def _censoring_sampler(x: Array, obs: npt.NDArray[np.bool_]) -> Callable[[np.random.Generator, int], Array]:
    """Draws censoring times from the reverse Kaplan-Meier estimate (censorings as the events)."""
    times, g = kaplan_meier(x, ~obs)
    cdf = 1.0 - g  # P(C <= t_j), ascending; 1 - cdf[-1] is the mass never censored

    def draw(rng: np.random.Generator, n: int) -> Array:
        # inverse transform: the first time whose CDF reaches u; past the last one, never censored
        idx = np.searchsorted(cdf, rng.random(n), side="left")
        out = np.full(n, np.inf)
        hit = idx < times.size
        out[hit] = times[idx[hit]]
        return out

    return draw


def fit_censored(
    durations: Durations,
    observed: Flags,
    *,
    families: Sequence[str] = FAMILIES,
    level: float = 0.95,
    bootstrap: int = 200,
    rng: np.random.Generator | None = None,
) -> FitResult:
    """Fit right-censored durations by maximum likelihood for each of ``families``, choose by AIC, and give the
    chosen mean with its ``level`` interval and a goodness-of-fit figure (module docstring for every method).

    ``observed[i]`` True: the event happened at ``durations[i]``; False: it had not by then (censored).
    ``bootstrap`` is the number of parametric bootstrap samples (the interval of a non-exponential mean, the
    goodness-of-fit p-value); ``rng`` draws them (``np.random.default_rng(0)`` when None, so results repeat).

    Raises :class:`FitError` (a ``ValueError``) naming the problem for empty, mismatched, negative or non-finite
    input, a complete observation of 0, unknown families, no complete observation, or no family fitted.
    """
    x, obs = _check(durations, observed)
    if not families:
        raise FitError("families is empty")
    unknown = [f for f in families if f not in _FAMILY]
    if unknown:
        raise FitError(f"unknown families {unknown}: known are {list(FAMILIES)}")
    if not 0.0 < level < 1.0:
        raise FitError(f"level must lie in (0, 1), got {level}")
    if bootstrap < 0:
        raise FitError(f"bootstrap must be >= 0, got {bootstrap}")
    rng = np.random.default_rng(0) if rng is None else rng
    r, total = int(obs.sum()), float(x.sum())
    if r == 0:
        raise FitError(
            f"no complete observations among {x.size} (all censored, total time {total:g}): the mean cannot be "
            f"estimated; at {level:.0%} it exceeds {total / -math.log(1.0 - level):g}"
        )

    fits: list[FamilyFit] = []
    notes: list[str] = []
    for name in dict.fromkeys(families):  # in order, without repeats: ties go to the first listed
        fit, why = _mle(_FAMILY[name], x, obs)
        if fit is None:
            notes.append(f"{name} left out: {why}")
        else:
            fits.append(fit)
    if not fits:
        raise FitError("no family could be fitted: " + "; ".join(notes))
    fits.sort(key=lambda f: f.aic)  # stable: equal AIC keeps the listed order
    best = fits[0]
    close = [f.family for f in fits[1:] if f.aic - best.aic < 2.0]
    if close:
        notes.append(f"{', '.join(close)} within 2 AIC of {best.family}: about equally supported")
    fam = _FAMILY[best.family]
    ks = _ks(fam, best.params, x, obs)

    # Parametric bootstrap: the chosen family's refits on samples censored like the data.
    means: list[float] = []
    ks_boot: list[float] = []
    skipped = 0
    if bootstrap:
        censor = _censoring_sampler(x, obs)
        v_best = _natural(best)
        for _ in range(bootstrap):
            t = fam.draw(best.params, rng, x.size)
            c = censor(rng, x.size)
            bx, bobs = np.minimum(t, c), t <= c
            if not bobs.any() or (bobs & (bx == 0)).any():
                skipped += 1
                continue
            bfit, _why = _mle(fam, bx, bobs, v0=v_best)
            if bfit is None:
                skipped += 1
                continue
            means.append(bfit.mean)
            ks_boot.append(_ks(fam, bfit.params, bx, bobs))
        if skipped:
            notes.append(f"{skipped} of {bootstrap} bootstrap samples skipped (no complete observation or no fit)")
    ks_p = float(np.mean(np.asarray(ks_boot) >= ks)) if ks_boot else math.nan

    alpha = 1.0 - level
    if best.family == "exponential":
        chi_lo = float(stats.chi2.ppf(1.0 - alpha / 2.0, 2 * r + 2))
        chi_hi = float(stats.chi2.ppf(alpha / 2.0, 2 * r))
        ci = (2.0 * total / chi_lo, 2.0 * total / chi_hi)
        method = "chi-square on the total time on test (2r+2 and 2r degrees of freedom)"
    elif means:
        q = np.quantile(np.asarray(means), [alpha / 2.0, 1.0 - alpha / 2.0])
        ci = (float(q[0]), float(q[1]))
        method = f"parametric bootstrap, percentile ({len(means)} samples, reverse Kaplan-Meier censoring)"
    else:
        ci = (math.nan, math.nan)
        method = "none (no bootstrap sample refitted)"
        notes.append("no interval: no bootstrap sample could be refitted" if bootstrap else "no interval: bootstrap=0")
    return FitResult(
        best=best,
        mean=best.mean,
        ci95=ci,
        n_events=r,
        n_censored=int(x.size - r),
        total_time=total,
        fits=fits,
        ks_distance=ks,
        note="; ".join(notes),
        level=level,
        ci_method=method,
        ks_pvalue=ks_p,
    )
