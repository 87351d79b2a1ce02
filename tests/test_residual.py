"""Residual life for forecasts from a live plant: T - age given T > age, for every duration family.

Statistical checks use fixed seeds and tolerances from the sampling error (4 standard errors of a mean or of an
empirical CDF, whose count at a point is binomial), never tuned: the parametrisation is pinned against the
engine's own sampler (``twin.distributions.Sampler``), the conditional law against filtered sampler draws.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from twin.distributions import Constant, Empirical, Exponential, Gamma, Lognormal, Sampler, Triangular, Uniform, Weibull
from twin.residual import (
    DurationDist,
    equilibrium_mean,
    expected_within,
    p_event_within,
    quantile,
    residual_quantile,
    residual_survival,
    sample_equilibrium_residual,
    sample_residual,
    survival,
)

Z = 4.0  # standard errors
N_SAMPLER = 200_000
N_DRAWS = 100_000

FAMILIES: dict[str, DurationDist] = {
    "constant": Constant(value=2.0),
    "exponential": Exponential(dist="exponential", mean=2.0),
    "lognormal_cv": Lognormal(dist="lognormal", mean=2.0, cv=0.8),
    "lognormal_ttr": Lognormal(dist="lognormal", mean=0.5, sigma=0.8),  # a 30 min repair
    "weibull_2.5": Weibull(dist="weibull", shape=2.5, scale=3.0),
    "weibull_mean": Weibull(dist="weibull", shape=0.7, mean=2.0),  # scale from the mean
    "weibull_1": Weibull(dist="weibull", shape=1.0, scale=2.0),
    "gamma": Gamma(dist="gamma", mean=2.0, cv=0.5),
    "gamma_cv2": Gamma(dist="gamma", mean=1.0, cv=1.5),  # shape below 1
    "uniform": Uniform(dist="uniform", low=1.0, high=3.0),
    "triangular": Triangular(dist="triangular", low=0.5, mode=1.0, high=4.0),
    "empirical": Empirical(dist="empirical", samples=[0.5, 1.0, 1.0, 2.5, 4.0]),
}
CONTINUOUS = [name for name in FAMILIES if name not in ("constant", "empirical")]
DISCRETE = ["constant", "empirical"]


@functools.cache
def sampler_draws(name: str) -> np.ndarray:
    """N_SAMPLER draws of family ``name`` by the engine's own sampler."""
    sampler = Sampler(FAMILIES[name], 20240611, f"residual-{name}")
    return np.fromiter((sampler.draw() for _ in range(N_SAMPLER)), dtype=float, count=N_SAMPLER)


def assert_cdf_at(sample: np.ndarray, x: float, cdf: float) -> None:
    """The empirical P(X <= x) of ``sample`` is within Z binomial standard errors of ``cdf``."""
    observed = float(np.mean(sample <= x))
    se = math.sqrt(cdf * (1.0 - cdf) / sample.size)
    assert abs(observed - cdf) <= Z * se + 1e-12, f"P(X <= {x}) = {observed}, expected {cdf} (se {se:.2e})"


def assert_same_mean(a: np.ndarray, b: np.ndarray) -> None:
    """Two independent samples have means within Z standard errors of their difference."""
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert abs(a.mean() - b.mean()) <= Z * se + 1e-12, f"means {a.mean()} and {b.mean()} (se {se:.2e})"


def assert_mean(sample: np.ndarray, expected: float) -> None:
    """A sample mean is within Z standard errors of ``expected``."""
    se = math.sqrt(sample.var(ddof=1) / sample.size)
    assert abs(sample.mean() - expected) <= Z * se + 1e-12, f"mean {sample.mean()}, expected {expected} (se {se:.2e})"


# --- 1. survival and quantile agree with the engine's sampler (the parametrisation) -------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_survival_matches_the_engines_sampler(name: str) -> None:
    dist, draws = FAMILIES[name], sampler_draws(name)
    points = np.unique(np.concatenate([quantile(dist, [0.05, 0.25, 0.5, 0.75, 0.95, 0.99]), [0.0, 1.0, 2.0, 2.5]]))
    for t, s in zip(points, survival(dist, points), strict=True):
        assert_cdf_at(draws, float(t), 1.0 - float(s))


@pytest.mark.parametrize("name", CONTINUOUS)
def test_quantile_inverts_survival_and_matches_the_sampler(name: str) -> None:
    dist, draws = FAMILIES[name], sampler_draws(name)
    p = np.array([0.01, 0.1, 0.5, 0.9, 0.99])
    q = quantile(dist, p)
    np.testing.assert_allclose(survival(dist, q), 1.0 - p, rtol=1e-9)
    for x, pi in zip(q, p, strict=True):
        assert_cdf_at(draws, float(x), float(pi))


def test_survival_is_one_before_zero_and_discrete_quantiles_are_the_generalised_inverse() -> None:
    for dist in FAMILIES.values():
        assert np.all(survival(dist, [-5.0, -1e-9]) == 1.0)
    ten = Empirical(dist="empirical", samples=[float(i) for i in range(10, 0, -1)])
    np.testing.assert_array_equal(quantile(ten, [0.0, 0.1, 0.15, 0.7, 0.71, 1.0]), [1.0, 1.0, 2.0, 7.0, 8.0, 10.0])
    np.testing.assert_array_equal(survival(ten, [0.5, 1.0, 9.99, 10.0]), [1.0, 0.9, 0.1, 0.0])
    np.testing.assert_array_equal(quantile(FAMILIES["constant"], [0.0, 0.5, 1.0]), [2.0, 2.0, 2.0])
    assert survival(Exponential(dist="exponential", mean=2.0), 2.0).shape == ()


def test_lognormal_and_gamma_parametrisation_in_closed_form() -> None:
    s = 0.8
    mu = math.log(0.5) - s * s / 2.0
    t = 1.0
    assert float(survival(FAMILIES["lognormal_ttr"], t)) == pytest.approx(
        0.5 * math.erfc((math.log(t) - mu) / (s * math.sqrt(2.0))), rel=1e-12
    )
    k = 1.0 / 0.25  # Gamma mean 2 cv 0.5: k = 4, theta = 0.5; integer k has a closed-form survival
    x = 3.0 / 0.5
    assert float(survival(FAMILIES["gamma"], 3.0)) == pytest.approx(
        math.exp(-x) * sum(x**j / math.factorial(j) for j in range(int(k))), rel=1e-12
    )


# --- 2. the residual's law -----------------------------------------------------------------------------------

CONDITIONAL_CASES = [
    ("lognormal_ttr", 1.0),  # a 30 min lognormal repair observed 1 h in
    ("weibull_2.5", 0.8 * 3.0),  # a wearing-out machine at 0.8 * scale
    ("weibull_1", 1.5),  # memoryless
    ("weibull_mean", 2.0),
    ("exponential", 5.0),
    ("lognormal_cv", 3.0),
    ("gamma", 3.0),
    ("gamma_cv2", 2.0),
    ("uniform", 0.5),  # before the support: the residual is shifted
    ("uniform", 2.0),
    ("triangular", 2.0),
    ("empirical", 1.0),
    ("empirical", 0.0),
    ("constant", 0.5),
]


@pytest.mark.parametrize(("name", "age"), CONDITIONAL_CASES)
def test_sample_residual_matches_the_conditional_law(name: str, age: float) -> None:
    dist = FAMILIES[name]
    draws = sampler_draws(name)
    conditioned = draws[draws > age] - age
    assert conditioned.size > 10_000
    drawn = sample_residual(dist, age, np.random.default_rng(7), N_DRAWS)
    assert drawn.shape == (N_DRAWS,)
    assert np.all(drawn >= 0.0)
    assert_same_mean(conditioned, drawn)
    for p in (0.1, 0.5, 0.9):
        q = float(residual_quantile(dist, age, p))
        cdf = 1.0 - float(residual_survival(dist, age, q))
        if name not in DISCRETE:
            assert cdf == pytest.approx(p, rel=1e-9)
        assert_cdf_at(conditioned, q, cdf)
        assert_cdf_at(drawn, q, cdf)


def test_memoryless_weibull_residual_is_the_unconditional_law() -> None:
    dist = FAMILIES["weibull_1"]
    p = np.array([0.001, 0.1, 0.5, 0.9, 0.999])
    for age in (0.0, 1.5, 40.0):
        np.testing.assert_allclose(residual_quantile(dist, age, p), quantile(dist, p), rtol=1e-9)
        np.testing.assert_allclose(residual_survival(dist, age, [0.3, 2.0, 7.0]), survival(dist, [0.3, 2.0, 7.0]), rtol=1e-9)
    exp = FAMILIES["exponential"]
    np.testing.assert_allclose(residual_quantile(exp, 123.0, p), quantile(exp, p), rtol=1e-12)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_residual_quantile_inverts_residual_survival(name: str) -> None:
    dist = FAMILIES[name]
    p = np.array([1e-6, 0.01, 0.5, 0.99, 1.0 - 1e-6])
    for age in (0.0, 0.7, float(quantile(dist, 0.9))):
        q = residual_quantile(dist, age, p)
        assert np.all(np.diff(q) > 0)
        assert q[0] >= 0.0
        np.testing.assert_allclose(residual_survival(dist, age, q), 1.0 - p, rtol=1e-8)


def test_ages_deep_in_the_tail_keep_their_proper_residual() -> None:
    """Unbounded families are conditioned in log space: S(age) underflowing is not 'due now'."""
    p = np.array([0.1, 0.5, 0.9])
    gamma = FAMILIES["gamma"]  # theta = 0.5: S(400) ~ 1e-340 underflows; the residual tends to Exp(theta)
    assert float(survival(gamma, 400.0)) == 0.0
    q = residual_quantile(gamma, 400.0, p)
    np.testing.assert_allclose(q, -0.5 * np.log1p(-p), rtol=0.02)
    np.testing.assert_allclose(residual_survival(gamma, 400.0, q), 1.0 - p, rtol=1e-9)
    lognormal = FAMILIES["lognormal_ttr"]
    q = residual_quantile(lognormal, 1e9, p)
    assert np.all(q > 0)
    assert np.all(np.isfinite(q))
    np.testing.assert_allclose(residual_survival(lognormal, 1e9, q), 1.0 - p, rtol=1e-6)
    weibull = FAMILIES["weibull_2.5"]
    q = residual_quantile(weibull, 300.0, p)  # S = exp(-1e5)
    np.testing.assert_allclose(q, 300.0 * np.expm1(np.log1p(-np.log1p(-p) / 100.0**2.5) / 2.5), rtol=1e-12)
    drawn = sample_residual(gamma, 400.0, np.random.default_rng(3), 50_000)
    assert_mean(drawn, expected_within(gamma, 400.0, math.inf))


# --- 3. expected time within a horizon -------------------------------------------------------------------------

WITHIN_CASES = [
    ("lognormal_ttr", 1.0, 0.5),
    ("lognormal_ttr", 0.0, 2.0),
    ("lognormal_cv", 3.0, 8.0),
    ("weibull_2.5", 2.4, 1.0),
    ("weibull_mean", 0.0, 5.0),
    ("weibull_1", 1.0, 3.0),
    ("exponential", 4.0, 3.0),
    ("gamma", 1.0, 2.0),
    ("gamma_cv2", 0.5, 4.0),
    ("uniform", 0.5, 1.8),
    ("uniform", 2.0, 5.0),
    ("triangular", 0.8, 2.0),
    ("triangular", 2.0, 1.0),
]


@pytest.mark.parametrize(("name", "age", "horizon"), WITHIN_CASES)
def test_expected_within_is_the_integral_and_the_monte_carlo_mean(name: str, age: float, horizon: float) -> None:
    dist = FAMILIES[name]
    u = np.linspace(0.0, horizon, 100_001)
    trapezoid = float(np.trapezoid(residual_survival(dist, age, u), u))
    value = expected_within(dist, age, horizon)
    assert value == pytest.approx(trapezoid, rel=1e-6)
    drawn = sample_residual(dist, age, np.random.default_rng(11), N_DRAWS)
    assert_mean(np.minimum(drawn, horizon), value)


@pytest.mark.parametrize(("name", "age"), [(n, a) for n, a in CONDITIONAL_CASES if n not in DISCRETE])
def test_expected_within_an_infinite_horizon_is_the_mean_residual_life(name: str, age: float) -> None:
    draws = sampler_draws(name)
    assert_mean(draws[draws > age] - age, expected_within(FAMILIES[name], age, math.inf))


def test_expected_within_closed_forms() -> None:
    exp = FAMILIES["exponential"]
    assert expected_within(exp, 9.0, 3.0) == pytest.approx(2.0 * (1.0 - math.exp(-1.5)), rel=1e-14)
    assert expected_within(FAMILIES["weibull_mean"], 0.0, math.inf) == pytest.approx(2.0, rel=1e-9)
    assert expected_within(FAMILIES["lognormal_ttr"], 0.0, 1e4) == pytest.approx(0.5, rel=1e-9)
    # empirical [0.5, 1, 1, 2.5, 4] 0.8 h in: residuals 0.2, 0.2, 1.7, 3.2 equally likely
    assert expected_within(FAMILIES["empirical"], 0.8, 2.0) == pytest.approx((0.2 + 0.2 + 1.7 + 2.0) / 4, rel=1e-14)
    assert expected_within(FAMILIES["constant"], 0.5, 1.0) == 1.0
    assert expected_within(FAMILIES["constant"], 0.5, 2.0) == 1.5
    for dist in FAMILIES.values():
        assert expected_within(dist, 0.7, 0.0) == 0.0


# --- 4. probability of the event within a horizon ---------------------------------------------------------------


@pytest.mark.parametrize(("shape", "scale"), [(2.5, 3.0), (1.7, 100.0), (4.0, 0.5)])
def test_p_event_within_is_exact_for_a_wearing_out_weibull(shape: float, scale: float) -> None:
    dist = Weibull(dist="weibull", shape=shape, scale=scale)
    for a_rel, h_rel in [(0.0, 0.3), (0.8, 0.1), (0.8, 2.0), (1.5, 0.01), (0.2, 0.0)]:
        a, h = a_rel * scale, h_rel * scale
        expected = 1.0 - math.exp(-(((a + h) / scale) ** shape) + (a / scale) ** shape)
        assert p_event_within(dist, a, h) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_p_event_within_is_one_minus_the_residual_survival(name: str) -> None:
    dist = FAMILIES[name]
    for age, h in [(0.0, 1.0), (0.7, 0.5), (1.2, 3.0)]:
        assert p_event_within(dist, age, h) == pytest.approx(1.0 - float(residual_survival(dist, age, h)), abs=1e-14)


# --- 5. the equilibrium residual (age never seen) ------------------------------------------------------------


def exact_equilibrium_cdf(dist: DurationDist, r: np.ndarray) -> np.ndarray:
    """G(r) = (1 / E[T]) * integral_0^r S(x) dx, by the trapezoid rule on a fine grid (independent of the module)."""
    top = float(quantile(dist, 1.0 - 1e-12))
    x = np.linspace(0.0, top, 200_001)
    s = survival(dist, x)
    area = np.concatenate([[0.0], np.cumsum((s[1:] + s[:-1]) / 2.0 * np.diff(x))])
    assert area[-1] / dist.mean_value == pytest.approx(1.0, abs=1e-5)
    return np.interp(r, x, area) / dist.mean_value


@pytest.mark.parametrize("name", list(FAMILIES))
def test_equilibrium_residual_has_density_survival_over_mean(name: str) -> None:
    dist = FAMILIES[name]
    n = 400_000
    drawn = np.sort(sample_equilibrium_residual(dist, np.random.default_rng(5), n))
    assert drawn.shape == (n,)
    assert drawn[0] >= 0.0
    assert_mean(drawn, equilibrium_mean(dist))
    grid = np.linspace(0.0, float(quantile(dist, 0.999)), 400)
    ecdf = np.searchsorted(drawn, grid, side="right") / n
    ks = float(np.max(np.abs(ecdf - exact_equilibrium_cdf(dist, grid))))
    assert ks < 1.95 / math.sqrt(n)  # Kolmogorov's 0.1 % critical value


def test_equilibrium_mean_closed_forms() -> None:
    assert equilibrium_mean(FAMILIES["exponential"]) == 2.0
    assert equilibrium_mean(FAMILIES["constant"]) == 1.0
    assert equilibrium_mean(FAMILIES["uniform"]) == pytest.approx((1 + 3 + 9) / 3 / 4)
    assert equilibrium_mean(FAMILIES["empirical"]) == pytest.approx((0.25 + 1 + 1 + 6.25 + 16) / 5 / (2 * 1.8))
    for name in CONTINUOUS:  # E[T^2] / (2 E[T]) against an independent quadrature of 2 t S(t)
        dist = FAMILIES[name]
        t = np.linspace(0.0, float(quantile(dist, 1.0 - 1e-13)), 200_001)
        second = float(np.trapezoid(2.0 * t * survival(dist, t), t))
        assert equilibrium_mean(dist) == pytest.approx(second / (2.0 * dist.mean_value), rel=1e-5)


def test_equilibrium_residual_of_an_exponential_is_the_exponential_and_of_a_constant_uniform() -> None:
    n = 400_000
    exp = np.sort(sample_equilibrium_residual(FAMILIES["exponential"], np.random.default_rng(1), n))
    r = np.linspace(0.0, 12.0, 200)
    assert np.max(np.abs(np.searchsorted(exp, r, side="right") / n - (1.0 - np.exp(-r / 2.0)))) < 1.95 / math.sqrt(n)
    const = np.sort(sample_equilibrium_residual(FAMILIES["constant"], np.random.default_rng(2), n))
    assert const[0] >= 0.0
    assert const[-1] <= 2.0
    r = np.linspace(0.0, 2.0, 200)
    assert np.max(np.abs(np.searchsorted(const, r, side="right") / n - r / 2.0)) < 1.95 / math.sqrt(n)
    zero = sample_equilibrium_residual(Constant(value=0.0), np.random.default_rng(3), 10)
    np.testing.assert_array_equal(zero, np.zeros(10))
    assert equilibrium_mean(Constant(value=0.0)) == 0.0


# --- 6. edge cases --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "age"),
    [
        ("constant", 3.0),
        ("constant", 2.0),
        ("uniform", 3.0),
        ("uniform", 5.0),
        ("triangular", 4.0),
        ("empirical", 4.0),
        ("empirical", 9.0),
    ],
)
def test_age_beyond_the_support_is_due_now(name: str, age: float) -> None:
    dist = FAMILIES[name]
    assert float(survival(dist, age)) == 0.0
    np.testing.assert_array_equal(sample_residual(dist, age, np.random.default_rng(0), 100), np.zeros(100))
    np.testing.assert_array_equal(residual_quantile(dist, age, [0.0, 0.5, 1.0]), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(residual_survival(dist, age, [-1.0, 0.0, 0.5, 10.0]), [1.0, 0.0, 0.0, 0.0])
    assert expected_within(dist, age, 5.0) == 0.0
    assert p_event_within(dist, age, 0.0) == 1.0


@pytest.mark.parametrize("name", list(FAMILIES))
def test_age_zero_gives_the_unconditional_law(name: str) -> None:
    dist = FAMILIES[name]  # every family here has all its mass above 0
    p = np.array([0.0, 0.05, 0.5, 0.95])
    np.testing.assert_allclose(residual_quantile(dist, 0.0, p), quantile(dist, p), rtol=1e-12)
    t = np.array([0.1, 1.0, 2.0, 3.5])
    np.testing.assert_allclose(residual_survival(dist, 0.0, t), survival(dist, t), rtol=1e-12)
    assert expected_within(dist, 0.0, math.inf) == pytest.approx(dist.mean_value, rel=1e-9)


def test_bad_arguments_raise_clear_errors() -> None:
    dist = FAMILIES["weibull_2.5"]
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="age must be a finite non-negative number of hours"):
        sample_residual(dist, -1.0, rng, 3)
    with pytest.raises(ValueError, match="age must be a finite non-negative number of hours"):
        sample_residual(dist, np.array([1.0, -0.5, 2.0]), rng, 3)
    for call in (residual_survival, residual_quantile):
        with pytest.raises(ValueError, match="age must be a finite non-negative"):
            call(dist, -0.1, 0.5)
    with pytest.raises(ValueError, match="age must be a finite non-negative"):
        expected_within(dist, math.nan, 1.0)
    with pytest.raises(ValueError, match="age must be a finite non-negative"):
        p_event_within(dist, math.inf, 1.0)
    with pytest.raises(ValueError, match="horizon must be a non-negative number of hours"):
        expected_within(dist, 1.0, -1.0)
    with pytest.raises(ValueError, match="horizon must be a non-negative number of hours"):
        p_event_within(dist, 1.0, -0.5)
    with pytest.raises(ValueError, match="probabilities must lie in"):
        residual_quantile(dist, 1.0, 1.5)
    with pytest.raises(ValueError, match="array of n = 3 ages"):
        sample_residual(dist, np.array([1.0, 2.0]), rng, 3)
    with pytest.raises(ValueError, match="non-negative integer"):
        sample_residual(dist, 1.0, rng, -2)


def test_vectorised_ages_condition_each_draw_on_its_own_age() -> None:
    rng = np.random.default_rng(13)
    dist = FAMILIES["weibull_2.5"]
    ages = np.tile([0.0, 2.4, 6.0], N_DRAWS // 3)
    drawn = sample_residual(dist, ages, rng, ages.size)
    assert np.all(drawn >= 0.0)
    for age in (0.0, 2.4, 6.0):
        mine = drawn[ages == age]
        for p in (0.1, 0.5, 0.9):
            assert_cdf_at(mine, float(residual_quantile(dist, age, p)), p)
    np.testing.assert_array_equal(
        sample_residual(FAMILIES["constant"], np.array([0.0, 1.5, 2.0, 3.0]), rng, 4), [2.0, 0.5, 0.0, 0.0]
    )
    emp = sample_residual(FAMILIES["empirical"], np.array([3.0] * 500 + [9.0] * 500), rng, 1000)
    np.testing.assert_array_equal(emp[:500], np.ones(500))  # only the 4.0 sample is left, 1 h away
    np.testing.assert_array_equal(emp[500:], np.zeros(500))
    assert sample_residual(dist, 1.0, rng, 0).shape == (0,)
