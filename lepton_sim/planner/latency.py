"""Pool latency at a percentile, exact where queueing theory is exact: the `tight` latency model.

A pool (`lepton_sim.sim.pools.Pool`) is one FIFO queue served by `c` replicas. With `max_batch` 1
a replica takes one request at a time (the schema zeroes `max_wait_ms` then), and the time of each
is one draw of the service's `service_time` override, or `t(1)` of the service-time model
(`BatchTimes`, roofline or measured), which is the same every time: the pool is an M/G/c queue
with the service-time distribution below (`ServiceDist`). Demand is planned as Poisson at its peak
rate (`demand.py`); weighted routing splits it by independent draws, which keeps it Poisson. For
each pool kind the planner needs `P(T > b)`, the chance that a request spends more than `b` in the
pool, as a function of the rate; the capacity `cap(c)` is the largest rate with `P(T > b) <= m`
(`m` the pool's miss probability, `b` its latency budget), found by bracketed root finding to
`REL_TOL` and rounded down (`capacity_table`). A route's miss probability `1 - percentile/100`
is the pool's alone on a route without links; on one with links the links get `NETWORK_SHARE` of
it (`paths.py`, a union bound) and the pool the rest (`Problem.arc_miss`).

- **M/M/c** (`service_time: exponential`): exact. `T = S + W`, `W = 0` with probability `1 - C`
  (Erlang C) and else exponential of rate `c mu - lambda` (`lepton_sim.theory.mmc_sojourn_cdf`).
- **M/D/c** (`service_time: deterministic`, and every roofline or measured pool of batch 1): exact,
  Crommelin's distribution (`lepton_sim.theory.MDC`: roots of `z^c = exp(rho c (z - 1))` and an
  inverse discrete Fourier transform; checked against Erlang's M/D/1 formula, a truncated solve of
  the embedded chain and the simulator in `tests/planner/test_latency.py`).
- **M/G/c** (`service_time: lognormal`): an approximation. `P(W > 0)` is Erlang C, and given that
  a request waits, its wait is a mixture of two shapes with the same mean, Lee and Longton's
  `(1 + cv^2) / 2` times the M/M/c one: with weight `1/sqrt(c)` the wait of an M/G/1 queue at the
  same utilisation whose service is `S / c` (while all `c` replicas are busy the pool drains like
  one server `c` times as fast: the heavy-traffic scaling of e.g. Whitt, "Approximations for the
  GI/G/m queue", Production and Operations Management 2, 1993), computed exactly as the compound
  geometric sum of equilibrium residuals of `S / c` (Pollaczek-Khinchine in Benes' form; Asmussen,
  Applied Probability and Queues, 2003, ch. VIII) on a grid of `GRID` points by a power-series
  inverse; with weight `1 - 1/sqrt(c)` an exponential (departures from `c` busy replicas are a
  superposition of `c` streams, closer to Poisson the more there are). The sojourn is that wait
  convolved with the pool's own lognormal `S`. The rule is exact for `c = 1` (any distribution)
  and for exponential service at any `c`. The weight `1/sqrt(c)` is fitted: **measured error** of
  the p99 sojourn against a FIFO M/G/c simulation (the queue discipline of the simulator's pool at
  batch 1) of one million requests per point, lognormal cv 0.5, 1, 1.5, 2, c = 1, 2, 4, 8,
  utilisation 0.5, 0.7, 0.85 (48 points, where it was chosen): -2.3 % to +1.7 % for cv <= 1, -2.3 %
  to +6.6 % for cv 1.5 and 2 (the M/G/1 shape alone: up to +15.5 %; the exponential alone: down to
  -28 %). Held out (cv 0.75, 1.25, 2.5, 3; c = 3, 6, 16; utilisation 0.6, 0.8, 0.92; 36 points,
  1-2 million requests): p99 within -3.6 %..+3.7 % for cv <= 1.25, -11.5 %..+21.5 % for cv 2.5 and
  3 (above, conservative, at moderate load and few replicas; below only at utilisation 0.92), and
  p99.9 down to -19 % at utilisation 0.92. Against the project's own simulator:
  `tests/planner/test_latency.py::test_mgc_against_the_simulator`, and
  `benchmarks/planner_truth.py` on whole plans.
- **Batching pools** (`max_batch > 1`): no closed form. Capacity tables are **measured** by
  simulating the pool alone with the engine's dispatch rule (`lepton_sim.planner.measured`: common
  random numbers, bisection, a stated sampling error, a cache), and a plan's predicted latency for
  such a pool is the same simulation at its planned rate. Its idle floor is exact: a request alone
  in an idle pool waits `max_wait_ms` for a batch that does not fill and is then served alone, so
  the least it can take at the pool's percentile is `w + ` the `(1 - m)`-quantile of one batch of
  one (`idle_floor_s`), not the bound's `max(w, T) + T`; any budget above it is met at low rates.

**Shape.** Adding a replica never slows a FIFO pool, so `cap(c)` is non-decreasing (the table takes
a running maximum to make that exact under rounding), but it is neither concave nor convex in
general: the MILP (`model.py`) writes any non-decreasing table exactly.

**Cost.** An M/D/c evaluation is one inverse FFT of a few hundred to a few thousand points. In
time units of the service time, P(T > b) depends only on the count, the utilisation and `b / d`,
so the queues at a fixed grid of utilisations (`_unit_mdc`, 1024 points on `ln(1 - rho)`) are
computed once per count and shared by every service time and budget: they bracket a capacity and
guess it by inverse interpolation, and about two exact evaluations at fresh rates close it to
`REL_TOL` (`_mdc_capacity`; the generic search `_capacity`, used for M/M/c and M/G/c, takes about
eight). Tables stop at the count that carries the tier's demand, are memoised per (service time,
budget, miss), and only the fastest batch-1 variant of a line gets one (`problem._fastest_single`).

**What is not exact.** Arrivals are Poisson at the planned peak (constant arrivals are smoother; a
link's FIFO queue ahead of the pool changes the stream slightly); the M/G/c rule above; and the
measured tables' sampling error. The `bound` model (`--latency-model bound`) keeps `capacity.py`
for every pool.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

import numpy as np

from lepton_sim import theory
from lepton_sim.planner.capacity import BatchProfile, CapacityTable, ServiceDist, curve, sojourn_bound_s
from lepton_sim.planner.capacity import capacity_table as bound_table
from lepton_sim.planner.capacity import erfc as _erfc
from lepton_sim.planner.measured import MEMORY, TableStore, measured_capacities, simulated_quantile_s
from lepton_sim.planner.options import LatencyModel
from lepton_sim.scenario.schema import Deterministic, Exponential, Service

QueueKind = Literal["M/M/c", "M/D/c", "M/G/c", "batching (simulated)"]

REL_TOL = 1e-8  # capacities are found to this relative precision, and rounded down
MIN_GAP = 2e-5  # a capacity search never probes utilisation above 1 - MIN_GAP (the M/D/c pmf grows as 1/gap)
GRID = 1024  # points of the M/G/c wait on [0, b]


def override_dist(service: Service) -> ServiceDist | None:
    """The distribution the simulator draws each batch's time from when the service overrides it, else None."""
    st = service.service_time
    if st is None:
        return None
    if isinstance(st, Deterministic):
        return ServiceDist("deterministic", st.ms / 1e3)
    if isinstance(st, Exponential):
        return ServiceDist("exponential", st.mean_ms / 1e3, 1.0)
    return ServiceDist("lognormal", st.mean_ms / 1e3, st.cv)


def with_distribution(profile: BatchProfile, service: Service) -> BatchProfile:
    """`profile` carrying the service's `service_time` distribution (batch profiles hold only its quantile)."""
    dist = override_dist(service)
    return profile if dist is None else replace(profile, dist=dist)


def queue_kind(profile: BatchProfile) -> QueueKind:
    """Which closed form (or bound) the tight model uses for a pool with this profile."""
    if profile.max_batch > 1:
        return "batching (simulated)"
    kinds: dict[str, QueueKind] = {"deterministic": "M/D/c", "exponential": "M/M/c", "lognormal": "M/G/c"}
    return kinds[profile.single.kind]


def idle_floor_s(profile: BatchProfile, miss: float, model: LatencyModel = "tight") -> float:
    """The least latency a pool can promise at miss probability `miss`: an idle pool's quantile."""
    if model == "bound":
        return profile.floor_s
    return profile.max_wait_s + profile.single.quantile(1.0 - miss)


# --- P(T > t) per queue kind ------------------------------------------------------------------------------


def sojourn_sf(profile: BatchProfile, rate_rps: float, count: int, t: float) -> float:
    """P(T > t) for a batch-1 pool of `count` replicas at `rate_rps` (1 when unstable)."""
    dist = profile.single
    if rate_rps * dist.mean_s >= count:
        return 1.0
    if dist.kind == "exponential":
        return theory._mmc_sojourn_sf(t, rate_rps, 1.0 / dist.mean_s, count)
    if dist.kind == "deterministic":
        return theory.MDC(rate_rps, dist.mean_s, count).sojourn_sf(t)
    return _mgc_sojourn_sf(dist, rate_rps, count, t)


_EQUILIBRIUM: dict[tuple[ServiceDist, int, float], tuple[np.ndarray, np.ndarray]] = {}


def _mgc_grid(dist: ServiceDist, c: int, b: float) -> tuple[np.ndarray, np.ndarray]:
    """(pmf of the equilibrium residual of S / c on the grid h = b / GRID, rounded to the nearest point; P(S <= b - k h))."""
    key = (dist, c, b)
    if key not in _EQUILIBRIUM:
        if len(_EQUILIBRIUM) > 4096:
            _EQUILIBRIUM.clear()
        h = b / GRID
        mu, sigma = dist._lognormal
        mu -= math.log(c)  # S / c
        mean = math.exp(mu + sigma * sigma / 2.0)
        y = (np.arange(GRID + 1) + 0.5) * h
        z = (np.log(y) - mu) / sigma
        # integral_0^y P(S/c > u) du = y P(S/c > y) + E[S/c; S/c <= y]
        upper = 0.5 * _erfc(z / math.sqrt(2.0))
        below = 0.5 * _erfc(-(z - sigma) / math.sqrt(2.0))
        cdf_e = (y * upper + mean * below) / mean
        pmf = np.diff(np.concatenate(([0.0], cdf_e)))
        s_cdf = dist.cdf(b - np.arange(GRID + 1) * h)
        _EQUILIBRIUM[key] = (pmf, s_cdf)
    return _EQUILIBRIUM[key]


def _series_inverse(f: np.ndarray, n: int) -> np.ndarray:
    """The first n coefficients of 1 / f(z) for a power series f with f[0] != 0 (Newton iteration, FFT products)."""
    g = np.array([1.0 / f[0]])
    k = 1
    while k < n:
        k = min(2 * k, n)
        size = 1 << (2 * k - 1).bit_length()
        fg = np.fft.irfft(np.fft.rfft(f[:k], size) * np.fft.rfft(g, size), size)[:k]
        corr = -fg
        corr[0] += 2.0
        g = np.fft.irfft(np.fft.rfft(g, size) * np.fft.rfft(corr, size), size)[:k]
    return g


def _mgc_sojourn_sf(dist: ServiceDist, lam: float, c: int, b: float) -> float:
    """P(T > b) under the M/G/c rule of the module docstring (lognormal service)."""
    if b <= 0.0:
        return 1.0
    if lam <= 0.0:
        return float(1.0 - dist.cdf(np.array([b]))[0])
    rho = lam * dist.mean_s / c
    wait_c = theory.erlang_c(c, lam * dist.mean_s)
    y, s_cdf = _mgc_grid(dist, c, b)
    f = -rho * y
    f[0] += 1.0
    w1 = (1.0 - rho) * _series_inverse(f, GRID + 1)  # pmf of the M/G/1 wait: (1 - rho) / (1 - rho Y(z))
    heavy = (1.0 - np.minimum(np.cumsum(w1), 1.0)) / rho  # P(W_1 > k h | W_1 > 0), each point rounded to nearest
    mean_wait = (1.0 + dist.cv**2) / (2.0 * (c / dist.mean_s - lam))  # Lee and Longton, given a wait
    light = np.exp(-(np.arange(GRID + 1) + 0.5) * (b / GRID) / mean_wait)
    weight = 1.0 / math.sqrt(c)
    w_cdf = 1.0 - wait_c * (weight * heavy + (1.0 - weight) * light)
    w_pmf = np.diff(np.concatenate(([0.0], w_cdf)))
    return float(min(1.0, max(0.0, 1.0 - w_pmf @ s_cdf)))


# --- capacity and prediction ------------------------------------------------------------------------------


def _guess_rho(dist: ServiceDist, count: int, budget_s: float, miss: float, steps: int = 40) -> float:
    """A starting utilisation for the capacity search: P(T > b) ~ C e^(-2 c (1 - rho) (b - s) / (mean (1 + cv^2))).

    Erlang C for the chance to wait, an exponential wait of Lee and Longton's mean and the service's own
    (1 - miss)-quantile s; only a first guess (the search then brackets the exact root).
    """
    slack = max(budget_s - dist.quantile(1.0 - miss), 1e-3 * dist.mean_s) / dist.mean_s
    scale = 2.0 * count * slack / (1.0 + dist.cv**2)

    def excess(rho: float) -> float:
        return math.log(max(theory.erlang_c(count, rho * count), 1e-300)) - scale * (1.0 - rho) - math.log(miss)

    lo, hi = 0.0, 1.0 - MIN_GAP
    if excess(hi) <= 0.0:
        return hi
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if excess(mid) <= 0.0:
            lo = mid
        else:
            hi = mid
    return min(max(lo, 1e-3), 1.0 - MIN_GAP)


def _capacity(profile: BatchProfile, budget_s: float, miss: float, count: int, start: float) -> float:
    """cap(count) for a batch-1 pool: the largest rate with P(T > budget) <= miss, at least `start`.

    The search runs on x = ln(1 - rho), where ln P(T > b) is close to linear: a bracket around the
    guess, then Illinois regula falsi on h(x) = ln P(T > b) - ln(miss) (decreasing in x) until the
    rate is known to REL_TOL; the feasible end of the bracket is returned.
    """
    dist = profile.single
    if dist.kind == "deterministic":
        return _mdc_capacity(dist.mean_s, count, budget_s, miss, start)
    full = count / dist.mean_s  # utilisation 1

    def h(x: float) -> float:
        sf = sojourn_sf(profile, full * -math.expm1(x), count, budget_s)
        return math.log(max(sf, 1e-300)) - math.log(miss)

    x_min = math.log(MIN_GAP)
    x_start = math.log1p(-start / full) if start > 0 else 0.0  # start is feasible (cap(c - 1), or rate 0)
    x = min(math.log1p(-_guess_rho(dist, count, budget_s, miss)), x_start)
    hx = h(x) if x < x_start else -1.0
    step = 0.15
    if hx <= 0.0:  # feasible: push the load up until it is not
        ok, h_ok = x, hx
        while True:
            x_bad = max(ok - step, x_min)
            h_bad = h(x_bad)
            if h_bad > 0.0:
                break
            if x_bad <= x_min:
                return full * -math.expm1(x_min)  # within MIN_GAP of utilisation 1 and still within budget
            ok, h_ok, step = x_bad, h_bad, 2.0 * step
    else:
        x_bad, h_bad = x, hx
        while True:
            ok = min(x_bad + step, x_start)
            h_ok = h(ok) if ok < x_start else -1.0
            if h_ok <= 0.0:
                break
            x_bad, h_bad, step = ok, h_ok, 2.0 * step
    if ok >= x_start and start <= 0.0 and h(ok) > 0.0:
        return 0.0
    return _refine(h, ok, h_ok, x_bad, h_bad, full, start)


def _refine(h: Callable[[float], float], ok: float, h_ok: float, x_bad: float, h_bad: float, full: float,
            start: float) -> float:
    """Illinois regula falsi on a bracket x_bad < ok (h(x_bad) > 0 >= h(ok)) until the rate is known to REL_TOL."""
    side = 0
    while True:
        lam_ok, lam_bad = full * -math.expm1(ok), full * -math.expm1(x_bad)
        if lam_bad - lam_ok <= REL_TOL * lam_bad:
            return max(lam_ok, start)
        x = ok - h_ok * (x_bad - ok) / (h_bad - h_ok) if h_bad != h_ok else 0.5 * (ok + x_bad)
        if not x_bad < x < ok:
            x = 0.5 * (ok + x_bad)
        hx = h(x)
        if hx <= 0.0:
            ok, h_ok = x, hx
            if side == -1:
                h_bad *= 0.5
            side = -1
        else:
            x_bad, h_bad = x, hx
            if side == 1:
                h_ok *= 0.5
            side = 1


MDC_STEPS = 1024  # M/D/c: points of the shared grid on ln(1 - rho), from 0 down to ln(MIN_GAP)
_UNIT: dict[tuple[int, int], theory.MDC] = {}  # (servers, grid point) -> the queue at d = 1


def _unit_mdc(count: int, i: int) -> theory.MDC:
    """The M/D/c queue with d = 1 at grid point `i`: utilisation 1 - MIN_GAP^(i / MDC_STEPS)."""
    q = _UNIT.get((count, i))
    if q is None:
        if len(_UNIT) >= 2048:
            _UNIT.clear()
        rho = -math.expm1(math.log(MIN_GAP) * i / MDC_STEPS)
        q = _UNIT[(count, i)] = theory.MDC(rho * count, 1.0, count)
    return q


def _mdc_capacity(d: float, count: int, budget_s: float, miss: float, start: float) -> float:
    """cap(count) of an M/D/c pool: the largest rate with P(T > budget) <= miss, at least `start`.

    P(T > b) at rate lambda is, with time in units of d, that of the queue at d = 1 with the same
    utilisation at b / d; so the queue-length distributions at grid utilisations (`_unit_mdc`) serve
    every service time and budget of a count. A search over the grid (from the heavy-traffic guess,
    doubling, then halving) brackets the root between two neighbouring points; inverse cubic
    interpolation through the four nearest points guesses it (to about 1e-8 in ln(1 - rho)), and
    the exact queue at the guess and REL_TOL / 2 beyond usually closes the bracket in two
    evaluations (else regula falsi on the exact queue goes on, as in `_capacity`).
    """
    t = budget_s / d
    full = count / d
    x_min = math.log(MIN_GAP)
    log_miss = math.log(miss)

    seen: dict[int, float] = {}

    def hg(i: int) -> float:
        if i not in seen:
            seen[i] = math.log(max(_unit_mdc(count, i).sojourn_sf(t), 1e-300)) - log_miss
        return seen[i]

    def h(x: float) -> float:
        rho = -math.expm1(x)
        return math.log(max(theory.MDC(rho * count, 1.0, count).sojourn_sf(t), 1e-300)) - log_miss

    guess = math.log1p(-_guess_rho(ServiceDist("deterministic", d), count, budget_s, miss, 16))
    i0 = min(max(round(guess / x_min * MDC_STEPS), 0), MDC_STEPS)
    step = 1
    if hg(i0) <= 0.0:  # feasible: more load until it is not
        lo = i0
        while lo + step <= MDC_STEPS and hg(lo + step) <= 0.0:
            lo, step = lo + step, 2 * step
        hi = min(lo + step, MDC_STEPS)
        if hi == lo or (hi == MDC_STEPS and hg(hi) <= 0.0):
            return max(full * -math.expm1(x_min), start)  # within MIN_GAP of utilisation 1 and still within budget
    else:
        hi = i0
        while hi - step >= 0 and hg(hi - step) > 0.0:
            hi, step = hi - step, 2 * step
        lo = max(hi - step, 0)
        if hg(lo) > 0.0:
            return max(0.0, start)  # not even an idle pool
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if hg(mid) <= 0.0:
            lo = mid
        else:
            hi = mid
    ok, h_ok, bad, h_bad = x_min * lo / MDC_STEPS, hg(lo), x_min * hi / MDC_STEPS, hg(hi)
    pts = [i for i in (lo - 1, lo, hi, hi + 1) if 0 <= i <= MDC_STEPS and hg(i) > _FLOOR - log_miss]
    xg = _inverse_interpolation([x_min * i / MDC_STEPS for i in pts], [hg(i) for i in pts])
    if xg is not None and bad < xg < ok:  # a guess within ~1e-8: probe it and a point REL_TOL / 2 beyond
        dx = 0.5 * REL_TOL * -math.expm1(xg) / math.exp(xg)
        hx = h(xg)
        if hx <= 0.0:
            ok, h_ok = xg, hx
            probe = max(xg - dx, bad)
        else:
            bad, h_bad = xg, hx
            probe = min(xg + dx, ok)
        if bad < probe < ok:
            hp = h(probe)
            if hp <= 0.0:
                ok, h_ok = probe, hp
            else:
                bad, h_bad = probe, hp
    return _refine(h, ok, h_ok, bad, h_bad, full, start)


_FLOOR = math.log(1e-300)


def _inverse_interpolation(xs: list[float], hs: list[float]) -> float | None:
    """The x where the polynomial through (h_i, x_i) takes h = 0 (Lagrange, in h); None without distinct h."""
    if len(xs) < 2 or len(set(hs)) < len(hs):
        return None
    out = 0.0
    for j, (xj, hj) in enumerate(zip(xs, hs)):
        w = xj
        for k, hk in enumerate(hs):
            if k != j:
                w *= -hk / (hj - hk)
        out += w
    return out


_TABLES: dict[tuple[ServiceDist, float, float], list[float]] = {}


def tight_capacities(profile: BatchProfile, budget_s: float, miss: float, max_count: int,
                     enough_rps: float = math.inf) -> list[float]:
    """cap(1), cap(2), ... for a batch-1 pool, up to `max_count` or the first count whose capacity reaches `enough_rps`."""
    key = (profile.single, budget_s, miss)
    if key not in _TABLES:
        if len(_TABLES) > 8192:
            _TABLES.clear()
        _TABLES[key] = []
    caps = _TABLES[key]
    while len(caps) < max_count and (not caps or caps[-1] < enough_rps):
        prev = caps[-1] if caps else 0.0
        caps.append(max(prev, _capacity(profile, budget_s, miss, len(caps) + 1, prev) * (1.0 - 2 * REL_TOL)))
    out = caps[:max_count]
    for i, v in enumerate(out):
        if v >= enough_rps:
            return out[:i + 1]
    return out


EXACT_METHOD = "exact-2"  # bump when a closed form or the capacity search changes: stored tables stop matching


def _stored_capacities(profile: BatchProfile, budget_s: float, miss: float, max_count: int, enough_rps: float,
                       store: TableStore | None) -> list[float]:
    """`tight_capacities`, its computed counts kept in `store` too (a second plan of a scenario computes none)."""
    store = MEMORY if store is None else store
    d = profile.single
    key = json.dumps([EXACT_METHOD, d.kind, d.mean_s, d.cv, budget_s, miss, REL_TOL, MIN_GAP, GRID])
    memo = (d, budget_s, miss)
    if memo not in _TABLES:
        hit = store.get(key)
        if hit is not None:
            _TABLES[memo] = list(hit["caps"])
    known = len(_TABLES.get(memo, ()))
    caps = tight_capacities(profile, budget_s, miss, max_count, enough_rps)
    if len(_TABLES[memo]) > known:
        store.put(key, {"caps": list(_TABLES[memo])})
    return caps


def feasible(profile: BatchProfile, budget_s: float, miss: float, model: LatencyModel = "tight") -> bool:
    """Whether some positive rate keeps the pool within `budget_s` at `miss` under the model."""
    if model == "bound":
        return curve(profile, budget_s, miss) is not None
    return budget_s > idle_floor_s(profile, miss, model)


def capacity_table(profile: BatchProfile, budget_s: float, miss: float, max_count: int, model: LatencyModel = "tight",
                   enough_rps: float = math.inf, store: TableStore | None = None) -> CapacityTable | None:
    """The pool's capacity at 1..max_count replicas (or fewer: up to the first count carrying `enough_rps`).

    None when no rate fits the budget. The `bound` model uses `capacity.py` (its line-or-table rule
    included); the tight model's batching pools are measured (`measured.py`, kept in `store`), and
    its exact tables are linear only when they are exactly the line `c cap(1)`.
    """
    if not feasible(profile, budget_s, miss, model):
        return None
    if model == "bound":
        a = curve(profile, budget_s, miss)
        assert a is not None
        return bound_table(profile, a, max_count)
    if profile.max_batch > 1:
        entries = measured_capacities(profile, budget_s, miss, max_count, enough_rps, store, idle_floor_s(profile, miss))
        errors = [e.rel_se for e in entries if e.rel_se is not None]
        return CapacityTable(tuple(e.rate_rps for e in entries), False, max(errors) if errors else None)
    caps = _stored_capacities(profile, budget_s, miss, max_count, enough_rps, store)
    linear = all(abs(v - (i + 1) * caps[0]) <= 1e-12 * v for i, v in enumerate(caps))
    return CapacityTable(tuple(caps), linear)


def sojourn_quantile_s(profile: BatchProfile, rate_rps: float, count: int, miss: float,
                       model: LatencyModel = "tight") -> float:
    """The pool's latency at miss probability `miss` under the model: exact, approximate or simulated (tight), a bound."""
    if model == "bound":
        return sojourn_bound_s(profile, rate_rps, count, miss)
    if profile.max_batch > 1:
        return simulated_quantile_s(profile, rate_rps, count, miss)
    dist = profile.single
    if count < 1 or rate_rps * dist.mean_s >= count:
        return math.inf
    if dist.kind == "exponential":
        return theory.mmc_sojourn_quantile(1.0 - miss, rate_rps, 1.0 / dist.mean_s, count)
    if dist.kind == "deterministic":
        return theory.MDC(rate_rps, dist.mean_s, count).sojourn_quantile(1.0 - miss)
    return theory.sf_quantile(lambda t: _mgc_sojourn_sf(dist, rate_rps, count, t), miss,
                              max(dist.quantile(1.0 - miss), dist.mean_s), 1e-9)
