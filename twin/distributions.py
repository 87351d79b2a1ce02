"""Duration distributions in line files, and the one place that samples them.

A distribution is a bare duration (constant) or a mapping with a ``dist`` key, e.g.
``{dist: lognormal, mean: 2h, cv: 0.8}``. Every location parameter is a duration (converted to
hours with the line's time unit); ``cv``, ``sigma`` and ``shape`` are dimensionless.
"""

from __future__ import annotations

import math
import zlib
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from twin.durations import to_hours

__all__ = [
    "Constant",
    "Distribution",
    "Empirical",
    "Exponential",
    "Gamma",
    "Lognormal",
    "Sampler",
    "Triangular",
    "Uniform",
    "Weibull",
    "named_stream",
]

_DURATION_FIELDS = ("value", "mean", "scale", "low", "mode", "high")


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator(*_DURATION_FIELDS, mode="before", check_fields=False)
    @classmethod
    def _duration(cls, value: Any, info: ValidationInfo) -> Any:
        unit = (info.context or {}).get("time_unit", "h")
        if value is None:
            return value
        return to_hours(value, unit)

    @property
    def mean_value(self) -> float:
        """The mean of the distribution, in hours."""
        raise NotImplementedError


class Constant(_Dist):
    """Always the same duration."""

    dist: Literal["constant"] = "constant"
    value: float

    @property
    def mean_value(self) -> float:
        return self.value


class Exponential(_Dist):
    """Exponential with the given mean (memoryless; shape 1 Weibull)."""

    dist: Literal["exponential"]
    mean: float = Field(gt=0)

    @property
    def mean_value(self) -> float:
        return self.mean


class Lognormal(_Dist):
    """Lognormal with the given mean and either a coefficient of variation ``cv`` or a log-sd ``sigma``."""

    dist: Literal["lognormal"]
    mean: float = Field(gt=0)
    cv: float | None = Field(default=None, gt=0)
    sigma: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_spread(self) -> Lognormal:
        if (self.cv is None) == (self.sigma is None):
            raise ValueError("give exactly one of cv or sigma")
        return self

    @property
    def log_sigma(self) -> float:
        """The standard deviation of the logarithm."""
        if self.sigma is not None:
            return self.sigma
        assert self.cv is not None
        return math.sqrt(math.log1p(self.cv**2))

    @property
    def mean_value(self) -> float:
        return self.mean


class Weibull(_Dist):
    """Weibull with ``shape`` and either ``scale`` or ``mean``."""

    dist: Literal["weibull"]
    shape: float = Field(gt=0)
    scale: float | None = Field(default=None, gt=0)
    mean: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_size(self) -> Weibull:
        if (self.scale is None) == (self.mean is None):
            raise ValueError("give exactly one of scale or mean")
        return self

    @property
    def scale_value(self) -> float:
        """The scale parameter, in hours."""
        if self.scale is not None:
            return self.scale
        assert self.mean is not None
        return self.mean / math.gamma(1.0 + 1.0 / self.shape)

    @property
    def mean_value(self) -> float:
        return self.scale_value * math.gamma(1.0 + 1.0 / self.shape)


class Gamma(_Dist):
    """Gamma with the given mean and coefficient of variation."""

    dist: Literal["gamma"]
    mean: float = Field(gt=0)
    cv: float = Field(gt=0)

    @property
    def mean_value(self) -> float:
        return self.mean


class Uniform(_Dist):
    """Uniform between ``low`` and ``high``."""

    dist: Literal["uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"high ({self.high} h) is below low ({self.low} h)")
        return self

    @property
    def mean_value(self) -> float:
        return (self.low + self.high) / 2.0


class Triangular(_Dist):
    """Triangular with ``low``, ``mode`` and ``high``."""

    dist: Literal["triangular"]
    low: float
    mode: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        if not self.low <= self.mode <= self.high or self.low == self.high:
            raise ValueError("need low <= mode <= high with low < high")
        return self

    @property
    def mean_value(self) -> float:
        return (self.low + self.mode + self.high) / 3.0


class Empirical(_Dist):
    """Draws uniformly from observed ``samples`` (durations)."""

    dist: Literal["empirical"]
    samples: list[float] = Field(min_length=1)

    @field_validator("samples", mode="before")
    @classmethod
    def _durations(cls, value: Any, info: ValidationInfo) -> Any:
        unit = (info.context or {}).get("time_unit", "h")
        if not isinstance(value, list):
            raise ValueError("samples must be a list of durations")
        return [to_hours(v, unit) for v in value]

    @property
    def mean_value(self) -> float:
        return sum(self.samples) / len(self.samples)


_Tagged = Annotated[
    Constant | Exponential | Lognormal | Weibull | Gamma | Uniform | Triangular | Empirical,
    Field(discriminator="dist"),
]


def _coerce_constant(value: Any) -> Any:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    return value


Distribution = Annotated[_Tagged, BeforeValidator(_coerce_constant)]
"""A duration distribution: a bare duration or one of the tagged forms."""

_FIRST_BLOCK, _MAX_BLOCK = 16, 512


class Sampler:
    """Draws from one distribution on one named random stream, a block at a time (numpy is slow per scalar).

    The stream is made on the first draw and blocks grow from 16 to 512 values, so the many samplers a big
    line has (a repair time per machine and failure mode) cost nothing until they are used.
    """

    __slots__ = ("_block", "_dist", "_entropy", "_i", "_name", "_next", "_rng", "constant")

    def __init__(self, dist: _Dist, entropy: int | tuple[int, ...], name: str) -> None:
        self._dist = dist
        self._entropy = entropy
        self._name = name
        self._rng: np.random.Generator | None = None
        self._block: list[float] = []
        self._i = 0
        self._next = _FIRST_BLOCK
        self.constant: float | None = dist.value if isinstance(dist, Constant) else None

    def _refill(self) -> None:
        if self._rng is None:
            self._rng = named_stream(self._entropy, self._name)
        d, rng, n = self._dist, self._rng, self._next
        self._next = min(2 * n, _MAX_BLOCK)
        if isinstance(d, Exponential):
            arr = rng.exponential(d.mean, n)
        elif isinstance(d, Lognormal):
            s = d.log_sigma
            arr = rng.lognormal(math.log(d.mean) - s * s / 2.0, s, n)
        elif isinstance(d, Weibull):
            arr = d.scale_value * rng.weibull(d.shape, n)
        elif isinstance(d, Gamma):
            k = 1.0 / (d.cv * d.cv)
            arr = rng.gamma(k, d.mean / k, n)
        elif isinstance(d, Uniform):
            arr = rng.uniform(d.low, d.high, n)
        elif isinstance(d, Triangular):
            arr = rng.triangular(d.low, d.mode, d.high, n)
        elif isinstance(d, Empirical):
            arr = rng.choice(np.asarray(d.samples), n)
        else:  # pragma: no cover - Constant never refills
            raise TypeError(f"cannot sample {d!r}")
        self._block = arr.tolist()
        self._i = 0

    def draw(self) -> float:
        """One duration, in hours."""
        if self.constant is not None:
            return self.constant
        if self._i >= len(self._block):
            self._refill()
        value = self._block[self._i]
        self._i += 1
        return value

    def draw_sum(self, n: int) -> float:
        """The total of ``n`` independent durations, in hours."""
        if self.constant is not None:
            return self.constant * n
        if n == 1:  # most machines take one unit at a time
            return self.draw()
        total = 0.0
        for _ in range(n):
            total += self.draw()
        return total


def named_stream(entropy: int | tuple[int, ...], name: str) -> np.random.Generator:
    """The random stream called ``name`` of the run seeded by ``entropy``.

    Streams depend only on the run's seed and their own name, so two scenarios that differ in one
    station draw the same numbers everywhere else (common random numbers).
    """
    key = zlib.crc32(name.encode("utf-8"))
    ent = list(entropy) if isinstance(entropy, tuple) else entropy
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(ent, spawn_key=(key,))))
