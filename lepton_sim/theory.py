"""Closed-form queueing results, the oracles the simulator is tested against.

Pure functions of floats in SI units (seconds, per second), and `MDC`, the M/D/c queue's exact
distributions computed once per (rate, service time, servers). Each raises ValueError for invalid
inputs and for unstable queues (utilisation rho >= 1), where the stationary quantities do not exist.
Sources: L. Kleinrock, Queueing Systems, Vol. 1: Theory (Wiley, 1975); D. Gross, J. F. Shortle,
J. M. Thompson, C. M. Harris, Fundamentals of Queueing Theory, 4th ed. (Wiley, 2008).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np


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
    return sf_quantile(lambda t: _mmc_sojourn_sf(t, lam, mu, c), 1.0 - p, 1.0 / mu, 1e-12)


def sf_quantile(sf: Callable[[float], float], miss: float, start: float, rel_tol: float) -> float:
    """The least `t >= 0` with `sf(t) <= miss` for a non-increasing survival function, to `rel_tol`:
    doubling from `start` (> 0) until it brackets, then bisection; returns the upper end."""
    lo, hi = 0.0, start
    while sf(hi) > miss:
        lo, hi = hi, 2.0 * hi
    while hi - lo > rel_tol * hi:
        mid = 0.5 * (lo + hi)
        if sf(mid) > miss:
            lo = mid
        else:
            hi = mid
    return hi


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


# --- M/D/c: exact waiting and sojourn distributions -------------------------------------------------

_MDC_TAIL = 45.0  # the queue-length pmf is computed until its geometric tail is below e^-45
_MDC_POLY_ROOTS = 16  # up to this many roots, their product is one polynomial evaluated by FFT (error < 1e-12;
#                       it grows fast with more: 1e-7 at 40 roots and light load)


def _mdc_roots(rho: float, c: int) -> np.ndarray:
    """The c - 1 roots z_k != 1 of z^c = exp(rho c (z - 1)) in the unit disk, k = 1..c-1.

    z_k = w_k exp(rho (z_k - 1)) with w_k = exp(2 pi i k / c): the fixed point of that map is a
    contraction for rho < 1 (Janssen & van Leeuwaarden, "Analytic computation schemes for the
    discrete-time bulk service queue", Queueing Systems 50, 2005); 30 iterations from 0, then
    Newton until a step is below 1e-15. Compiled with Numba (the loop runs on c - 1 numbers, where
    numpy's per-call overhead dominated); the machine code is cached on disk.
    """
    global _ROOTS
    if _ROOTS is None:
        import numba

        _ROOTS = numba.njit(cache=True, nogil=True)(_mdc_roots_loop)
    w = np.exp(2j * np.pi * np.arange(1, c) / c)
    return _ROOTS(float(rho), w)


_ROOTS = None


def _mdc_roots_loop(rho, w):  # pragma: no cover - compiled; tested through _mdc_roots
    z = np.zeros(len(w), dtype=np.complex128)
    for i in range(len(w)):
        zi = 0.0 + 0.0j
        for _ in range(30):
            zi = w[i] * np.exp(rho * (zi - 1.0))
        for _ in range(100):
            e = w[i] * np.exp(rho * (zi - 1.0))
            step = (zi - e) / (1.0 - rho * e)
            zi = zi - step
            if abs(step) <= 1e-15:
                break
        z[i] = zi
    return z


def _mdc_decay(rho: float) -> float:
    """ln z*, z* > 1 the real root of ln z = rho (z - 1): the queue length's geometric decay per customer."""
    lo, hi = 1.0, 2.0
    while math.log(hi) > rho * (hi - 1.0):
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if math.log(mid) > rho * (mid - 1.0):
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    return math.log(hi)


def _smooth_length(n: int) -> int:
    """The least 2^a 3^b 5^c >= n: a length the FFT handles as fast as a power of two, with less padding."""
    best = 1 << math.ceil(math.log2(n))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            v = p35
            while v < n:
                v *= 2
            best = min(best, v)
            p35 *= 3
        p5 *= 5
    return best


def mdc_queue_pmf(lam: float, d: float, c: int) -> np.ndarray:
    """P(Q = m), m = 0, 1, ..., for Q the number of customers waiting (not in service) in M/D/c at a random time.

    Derivation (Crommelin 1932). With every service lasting d, each of the min(N(t), c) customers in
    service at t leaves by t + d and nobody who starts after t does, so N(t + d) = max(N(t) - c, 0) +
    A(t, t + d), A ~ Poisson(lambda d) independent of N(t). Hence N = Q + A in distribution, and Q
    has the generating function (Crommelin, "Delay probability formulae when the holding times are
    constant", P.O. Elec. Engrs. J. 25, 1932)

        Q(z) = c (1 - rho) (z - 1) / (z^c - e^(rho c (z - 1))) x prod_{k=1}^{c-1} (z - z_k) / (1 - z_k),

    rho = lambda d / c, z_k the roots of the denominator inside the unit disk (`_mdc_roots`). The pmf
    is its inverse discrete Fourier transform on the unit circle (Abate & Whitt, "Numerical inversion
    of probability generating functions", Oper. Res. Lett. 12, 1992), with enough points that the
    aliased tail, geometric with ratio 1/z* (`_mdc_decay`), is below e^-45.
    """
    lam, d, c = _non_negative("lam", lam), _positive("d", d), _servers(c)
    rho = lam * d / c
    _stable(rho)
    if rho == 0.0:
        return np.array([1.0])
    length = _MDC_TAIL / _mdc_decay(rho) + 2.0 * c + 10.0 * math.sqrt(c) + 16.0
    m = _smooth_length(max(64, math.ceil(length)))
    theta = 2.0 * np.pi * np.arange(1, m) / m
    z = np.exp(1j * theta)
    # z^c - e^(rho c (z - 1)) = e^(rho c (z - 1)) expm1(c (i theta - rho (z - 1))): no cancellation near z = 1
    log_q = (math.log(c * (1.0 - rho)) + np.log(np.expm1(1j * theta))
             - rho * c * (z - 1.0) - np.log(np.expm1(c * (1j * theta - rho * (z - 1.0)))))
    roots = _mdc_roots(rho, c)
    if 0 < len(roots) <= _MDC_POLY_ROOTS:
        # prod_k (z - z_k) / (1 - z_k) on all m points at once: the polynomial's coefficients, transformed
        coef = np.poly(roots)[::-1] / np.prod(1.0 - roots)
        log_q += np.log((np.fft.ifft(coef, m) * m)[1:])
    elif len(roots):
        log_q -= np.log(1.0 - roots).sum()
        per = max(1, (1 << 21) // m)  # roots per block: at most ~2M complex numbers at once
        for i in range(0, len(roots), per):
            log_q += np.log(z[:, None] - roots[None, i:i + per]).sum(axis=1)
    values = np.empty(m, dtype=complex)
    values[0] = 1.0
    values[1:] = np.exp(log_q)
    pmf = np.maximum(np.fft.fft(values).real / m, 0.0)
    return pmf / pmf.sum()


def _poisson_pmf(mean: float, n: int) -> np.ndarray:
    """P(A = j), j = 0..n-1, for A ~ Poisson(mean), in logs (no overflow for large n or mean)."""
    if mean <= 0.0:
        out = np.zeros(n)
        if n:
            out[0] = 1.0
        return out
    logfact = _log_factorials(n)
    return np.exp(_J[:n] * math.log(mean) - mean - logfact)


_J = np.arange(0.0)
_LOGFACT = np.zeros(0)


def _log_factorials(n: int) -> np.ndarray:
    """ln j!, j = 0..n-1 (one table, grown on demand: the same sums as computing it afresh)."""
    global _J, _LOGFACT
    if len(_LOGFACT) < n:
        size = max(n, 2 * len(_LOGFACT))
        _J = np.arange(size, dtype=float)
        _LOGFACT = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, size, dtype=float)))))
    return _LOGFACT[:n]


class MDC:
    """The FIFO M/D/c queue with arrival rate `lam`, service time `d` and `c` servers: exact wait and sojourn.

    A customer arriving at t waits at most k d + u (0 <= u < d) iff at t + k d + u fewer than c of
    the customers ahead of it are left. Those ahead at t + u are max(N(t + u - d) - c, 0) (left from
    before t + u - d, by the identity in `mdc_queue_pmf`) plus the Poisson(lambda (d - u)) arrivals
    in (t + u - d, t); after that, c leave every d. So with Q the number waiting at a random time,

        P(W <= k d + u) = P(Q + A <= (k + 1) c - 1),   A ~ Poisson(lambda (d - u)) independent of Q,

    and the sojourn is T = W + d (Crommelin 1932; Franx, "A simple solution for the M/D/c waiting
    time distribution", Oper. Res. Lett. 29, 2001, gives the same distribution in closed form).
    """

    def __init__(self, lam: float, d: float, c: int) -> None:
        self.lam, self.d, self.c = _non_negative("lam", lam), _positive("d", d), _servers(c)
        self.pmf = mdc_queue_pmf(self.lam, self.d, self.c)
        self.cdf = np.minimum(np.cumsum(self.pmf), 1.0)

    def _q_cdf(self, n: int) -> np.ndarray:
        """P(Q <= m) for m = 0..n-1 (1 beyond the computed tail)."""
        if n <= len(self.cdf):
            return self.cdf[:n]
        return np.concatenate((self.cdf, np.ones(n - len(self.cdf))))

    def wait_cdf(self, x: float) -> float:
        """P(W <= x), x in seconds."""
        if x < 0.0:
            return 0.0
        k = math.floor(x / self.d)
        u = x - k * self.d
        n = (k + 1) * self.c
        if k * self.c >= len(self.cdf) + 64 + 10 * math.sqrt(self.lam * self.d):
            return 1.0  # beyond the computed tail of Q plus any plausible A
        pois = _poisson_pmf(self.lam * (self.d - u), n)
        return float(min(1.0, (pois * self._q_cdf(n)[::-1]).sum()))

    def sojourn_sf(self, t: float) -> float:
        """P(T > t) for the time in system T = W + d."""
        return 1.0 - self.wait_cdf(t - self.d) if t >= self.d else 1.0

    def mean_wait(self) -> float:
        """E[W] = E[Q] / lambda (Little's law on the waiting room)."""
        return float((np.arange(len(self.pmf)) * self.pmf).sum()) / self.lam if self.lam > 0 else 0.0

    def sojourn_quantile(self, p: float) -> float:
        """The p-quantile (s) of T, by bisection to 1e-12 relative (T has an atom at d: P(T = d) = P(W = 0))."""
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        if p == 1.0:
            return math.inf
        target = 1.0 - p
        if self.sojourn_sf(self.d) <= target:
            return self.d
        lo, hi = self.d, 2.0 * self.d
        while self.sojourn_sf(hi) > target:
            lo, hi = hi, 2.0 * hi
        while hi - lo > 1e-12 * hi:
            mid = 0.5 * (lo + hi)
            if self.sojourn_sf(mid) > target:
                lo = mid
            else:
                hi = mid
        return hi


def mdc_sojourn_cdf(t: float, lam: float, d: float, c: int) -> float:
    """P(T <= t) for the FIFO M/D/c time in system (see `MDC`)."""
    return 1.0 - MDC(lam, d, c).sojourn_sf(float(t))


def mdc_sojourn_quantile(p: float, lam: float, d: float, c: int) -> float:
    """The p-quantile (s) of the FIFO M/D/c time in system (see `MDC`)."""
    return MDC(lam, d, c).sojourn_quantile(p)


def mdc_mean_wait(lam: float, d: float, c: int) -> float:
    """M/D/c mean wait in queue (s), E[Q] / lambda from the exact queue-length distribution (see `MDC`)."""
    return MDC(lam, d, c).mean_wait()
