"""Closed-form queueing results, the oracles the simulator is tested against.

Pure functions of floats in SI units (seconds, per second). Each raises ValueError for invalid
inputs and for unstable queues (utilisation rho >= 1), where the stationary quantities do not exist.
Sources: L. Kleinrock, Queueing Systems, Vol. 1: Theory (Wiley, 1975); D. Gross, J. F. Shortle,
J. M. Thompson, C. M. Harris, Fundamentals of Queueing Theory, 4th ed. (Wiley, 2008).
"""
from __future__ import annotations

import math
import numbers


def _positive(name: str, v: float) -> float:
    v = float(v)
    if not 0.0 < v < math.inf:
        raise ValueError(f"{name} must be positive and finite, got {v!r}")
    return v


def _non_negative(name: str, v: float) -> float:
    v = float(v)
    if not 0.0 <= v < math.inf:
        raise ValueError(f"{name} must be >= 0 and finite, got {v!r}")
    return v


def _servers(c: int) -> int:
    if isinstance(c, bool) or not isinstance(c, numbers.Real) or c != c or int(c) != c or c < 1:
        raise ValueError(f"the number of servers must be a positive integer, got {c!r}")
    return int(c)


def _stable(rho: float) -> None:
    if rho >= 1.0:
        raise ValueError(f"unstable queue: utilisation rho = {rho:g} >= 1")


def erlang_c(c: int, a: float) -> float:
    """Erlang C: probability that an M/M/c arrival waits, for offered load a = lambda / mu (erlangs).

    C(c, a) = c B / (c - a (1 - B)), with Erlang B from the recursion B(0) = 1,
    B(k) = a B(k-1) / (k + a B(k-1)), which never forms a^c or c! and so is stable for large c
    (Kleinrock vol. 1, sec. 3.5 for M/M/m and 3.7 for Erlang B; Gross et al., sec. 2.3).
    """
    c = _servers(c)
    a = _non_negative("offered load a", a)
    _stable(a / c)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


def mm1_mean_sojourn(lam: float, mu: float) -> float:
    """M/M/1 mean time in system (s): T = 1 / (mu - lambda) (Kleinrock vol. 1, sec. 3.2)."""
    lam, mu = _non_negative("lam", lam), _positive("mu", mu)
    _stable(lam / mu)
    return 1.0 / (mu - lam)


def mmc_mean_wait(lam: float, mu: float, c: int) -> float:
    """M/M/c mean wait in queue (s): Wq = C(c, lambda/mu) / (c mu - lambda) (Gross et al., sec. 2.3)."""
    lam, mu, c = _non_negative("lam", lam), _positive("mu", mu), _servers(c)
    _stable(lam / (c * mu))
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mmc_mean_sojourn(lam: float, mu: float, c: int) -> float:
    """M/M/c mean time in system (s): T = Wq + 1 / mu (Gross et al., sec. 2.3)."""
    return mmc_mean_wait(lam, mu, c) + 1.0 / _positive("mu", mu)


def _hypoexp_sf(t: float, r1: float, r2: float) -> float:
    """P(X1 + X2 > t) for independent X1 ~ Exp(r1), X2 ~ Exp(r2), stable for r1 near or equal to r2.

    (r2 e^(-r1 t) - r1 e^(-r2 t)) / (r2 - r1) = e^(-a t) (1 + a t g(d t)), a = min rate,
    d = |r2 - r1|, g(x) = (1 - e^(-x)) / x with g(0) = 1, where r1 = r2 is the Erlang-2 tail.
    """
    a, d = min(r1, r2), abs(r2 - r1)
    x = d * t
    g = 1.0 if x == 0.0 else -math.expm1(-x) / x
    return math.exp(-a * t) * (1.0 + a * t * g)


def _mmc_sojourn_sf(t: float, lam: float, mu: float, c: int) -> float:
    """P(T > t) for the FIFO M/M/c sojourn T = S + W (inputs already validated)."""
    if t <= 0.0:
        return 1.0
    if math.isinf(t):
        return 0.0
    pw = erlang_c(c, lam / mu)
    theta = c * mu - lam  # rate of the conditional wait W | W > 0
    return (1.0 - pw) * math.exp(-mu * t) + pw * _hypoexp_sf(t, mu, theta)


def _mmc_args(lam: float, mu: float, c: int) -> tuple[float, float, int]:
    lam, mu, c = _non_negative("lam", lam), _positive("mu", mu), _servers(c)
    _stable(lam / (c * mu))
    return lam, mu, c


def mmc_sojourn_cdf(t: float, lam: float, mu: float, c: int) -> float:
    """P(T <= t) for the FIFO M/M/c time in system T (t in s).

    T = S + W with S ~ Exp(mu) and W = 0 w.p. 1 - C, else W ~ Exp(c mu - lambda), S, W independent:
    P(T > t) = (1 - C) e^(-mu t) + C (theta e^(-mu t) - mu e^(-theta t)) / (theta - mu),
    theta = c mu - lambda; when theta = mu, S + W is Erlang-2: C e^(-mu t) (1 + mu t)
    (Gross et al., sec. 2.3, the M/M/c waiting-time distributions).
    """
    lam, mu, c = _mmc_args(lam, mu, c)
    t = float(t)
    if t != t:
        raise ValueError("t must not be NaN")
    return 1.0 - _mmc_sojourn_sf(t, lam, mu, c)


def mmc_sojourn_quantile(p: float, lam: float, mu: float, c: int) -> float:
    """The p-quantile (s) of the FIFO M/M/c time in system, by bisection to 1e-12 relative.

    Solves P(T > t) = 1 - p on the survival function, which keeps its precision for p near 1
    (see `mmc_sojourn_cdf` for the distribution). p = 1 gives infinity.
    """
    lam, mu, c = _mmc_args(lam, mu, c)
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    if p == 0.0:
        return 0.0
    if p == 1.0:
        return math.inf
    target = 1.0 - p
    lo, hi = 0.0, 1.0 / mu
    while _mmc_sojourn_sf(hi, lam, mu, c) > target:
        lo, hi = hi, 2.0 * hi
    while hi - lo > 1e-12 * hi:
        mid = 0.5 * (lo + hi)
        if _mmc_sojourn_sf(mid, lam, mu, c) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def mg1_mean_wait(lam: float, mean_s: float, scv: float) -> float:
    """M/G/1 mean wait in queue (s), Pollaczek-Khinchine: Wq = lambda E[S^2] / (2 (1 - rho)).

    E[S^2] = mean_s^2 (1 + scv), scv the squared coefficient of variation of the service time,
    rho = lambda mean_s (Kleinrock vol. 1, ch. 5, the P-K mean-value formula; Gross et al., sec. 5.1.1).
    """
    lam, mean_s, scv = _non_negative("lam", lam), _positive("mean_s", mean_s), _non_negative("scv", scv)
    rho = lam * mean_s
    _stable(rho)
    return lam * mean_s**2 * (1.0 + scv) / (2.0 * (1.0 - rho))


def md1_mean_wait(lam: float, d: float) -> float:
    """M/D/1 mean wait in queue (s): Wq = rho d / (2 (1 - rho)), rho = lambda d: P-K with scv = 0.

    Half the M/M/1 wait at the same load (Kleinrock vol. 1, ch. 5; Gross et al., sec. 5.1.1).
    """
    lam, d = _non_negative("lam", lam), _positive("d", d)
    rho = lam * d
    _stable(rho)
    return rho * d / (2.0 * (1.0 - rho))


def lognormal_params(mean: float, cv: float) -> tuple[float, float]:
    """(mu, sigma) of the normal underlying a lognormal with the given mean and coefficient of variation.

    sigma^2 = ln(1 + cv^2), mu = ln(mean) - sigma^2 / 2, from E[X] = e^(mu + sigma^2/2) and
    Var[X] / E[X]^2 = e^(sigma^2) - 1 (Johnson, Kotz & Balakrishnan, Continuous Univariate
    Distributions, Vol. 1, 2nd ed., ch. 14).
    """
    mean, cv = _positive("mean", mean), _non_negative("cv", cv)
    s2 = math.log1p(cv * cv)
    return math.log(mean) - 0.5 * s2, math.sqrt(s2)
