"""Pool capacity at a latency percentile: how many requests per second `c` replicas can take while the
pool's part of the latency stays within a budget `D` for all but a fraction `q` of requests.

The pool (`lepton_sim.sim.pools`) is one FIFO queue and `c` replicas; a free replica takes up to
`B = max_batch` queued requests, waiting at most `w = max_wait_ms` for the batch to fill, and a
batch of `b` takes `t(b)` from the shared service-time model. Let `T = max_b t(b)` (the full batch).

**Latency of one request** (a bound, path by path). The request finds `N` requests queued ahead.
FIFO dispatch takes at most `B` each time, so it leaves in the `ceil((N+1)/B)`-th dispatch; each
replica frees within `T` (its current batch) and then dispatches at least every `T`, so with `c`
replicas that dispatch happens within `T ceil(ceil((N+1)/B)/c) <= T (1 + N/(cB))`. A replica that
is free but holds fewer than `B` waits for the batch at most until the oldest request is `w` old,
and the oldest arrived no later than ours. Its own batch then takes at most `T`:

    sojourn <= max(w, T (1 + N/(cB))) + T.

**Queue length tail.** While requests are queued, the pool clears at least `cB` of them per `T`,
so `N` is dominated by the supremum of a random walk whose steps are `A - cB`, with `A` the
Poisson(`lam T`) arrivals in one batch time. Kingman's exponential bound for that supremum gives
`P(N > n) <= exp(-theta n)`, `theta > 0` the root of `E[exp(theta (A - cB))] = 1`, i.e.

    lam T (e^theta - 1) = theta c B,

so the `(1 - q)`-quantile of `N` is at most `ln(1/q) / theta`. Requiring the sojourn bound at that
quantile to fit `D` gives the largest rate in closed form: with `mu = B/T` (one replica's full-batch
throughput) and `a = ln(1/q) T / (B (D - 2T))`,

    cap(c) = c mu g(a / c),     g(x) = x / (e^x - 1),

feasible only when `D > 2T` and `D >= w + T` (else no rate meets the budget).

**What is conservative, and why.** Every request is charged a full batch `T` of compute and a full
residual `T` before the first dispatch, though at light load batches are small and replicas idle;
all replicas are assumed to free at the worst moment; Poisson arrivals are assumed (mmpp, diurnal and
trace demand are planned at their peak rate, constant arrivals are smoother than Poisson); and the
Kingman bound holds for the supremum of the walk, not just its stationary value. On a grid of
batch sizes 1-16, 1-4 replicas and utilisations 0.2-0.93 against the simulator the bound was above
the simulated p99 in every case but one at M/D/1 utilisation 0.85, where it was 2 % below, inside
the sampling error of a p99 at that load (`tests/planner/test_capacity.py` checks a few points).

**Pooling.** `g` is convex and decreasing, so `cap` is the perspective of a convex function: convex
in `c`, with `cap(c) >= c cap(1)`. The planner takes `cap` exactly at every count (`capacity_table`);
where it is within `LINEAR_TOLERANCE` of the line `c cap(1)` it uses that line instead (safe, since
it lies below, and linear in the MILP). The MILP writes any non-decreasing table exactly with
ordered increments (`lepton_sim.planner.model`); convexity is not needed for that.

**Where it is used.** This bound is the `bound` latency model (`--latency-model bound`) for every
pool; the default `tight` model (`lepton_sim.planner.latency`) gives pools of batch 1 exact M/M/c
and M/D/c tables and a validated M/G/c approximation, and measures batching pools by simulation
(`lepton_sim.planner.measured`, which still uses this bound to skip simulating rates under it). `ServiceDist` records what the simulator draws a batch's time from, for that model.

**Verification.** A per-pool factor `f` scales `cap` under every latency model: the verify loop
(`lepton_sim.verification`) lowers it below 1 where simulation misses a target and raises it above
1 where simulation shows slack.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

from lepton_sim.theory import lognormal_params

LINEAR_TOLERANCE = 0.02  # the line c cap(1) replaces the exact table when it under-states it by at most 2 %
_NORMAL = NormalDist()


@dataclass(frozen=True)
class ServiceDist:
    """The time of one batch as the simulator draws it: `deterministic`, `exponential` or `lognormal`."""

    kind: Literal["deterministic", "exponential", "lognormal"]
    mean_s: float
    cv: float = 0.0  # coefficient of variation (lognormal only; 0 deterministic, 1 exponential)

    @property
    def _lognormal(self) -> tuple[float, float]:
        return lognormal_params(self.mean_s, self.cv)

    def quantile(self, p: float) -> float:
        """The p-quantile in seconds."""
        if self.kind == "deterministic":
            return self.mean_s
        if self.kind == "exponential":
            return -self.mean_s * math.log1p(-p)
        mu, sigma = self._lognormal
        return math.exp(mu + sigma * _NORMAL.inv_cdf(p))

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """P(S <= x), elementwise."""
        x = np.asarray(x, dtype=float)
        if self.kind == "deterministic":
            return (x >= self.mean_s).astype(float)
        if self.kind == "exponential":
            return -np.expm1(-np.maximum(x, 0.0) / self.mean_s)
        mu, sigma = self._lognormal
        z = (np.log(np.maximum(x, 1e-300)) - mu) / (sigma * math.sqrt(2.0))
        return np.where(x > 0, 0.5 * erfc(-z), 0.0)


def erfc(x: np.ndarray) -> np.ndarray:
    """math.erfc, elementwise (numpy has no erfc)."""
    return np.vectorize(math.erfc, otypes=[float])(x)


@dataclass(frozen=True)
class BatchProfile:
    """What the queueing bound needs from one (service, hardware, variant): batch times and batching policy."""

    batch_s: float  # T: seconds for a full batch (the slowest batch size)
    first_s: float  # t(1): seconds for a batch of one
    max_batch: int
    max_wait_s: float
    source: str  # "roofline", "measured" or "service_time override"
    dist: ServiceDist | None = None  # one batch's time as the simulator draws it; None: t(1), fixed
    times_s: tuple[float, ...] | None = None  # t(1..max_batch), fixed (roofline or measured; None for overrides)

    @property
    def single(self) -> ServiceDist:
        """The time of a batch of one: the override's distribution, else the fixed t(1)."""
        return self.dist if self.dist is not None else ServiceDist("deterministic", self.first_s)

    @property
    def replica_rps(self) -> float:
        """mu = B / T: one replica's throughput with full batches (requests per second)."""
        return self.max_batch / self.batch_s

    @property
    def floor_s(self) -> float:
        """The smallest pool sojourn the bound allows (an empty pool): max(w, T) + T."""
        return max(self.max_wait_s, self.batch_s) + self.batch_s


def g(x: float) -> float:
    """x / (e^x - 1), the utilisation the Kingman bound allows at decay rate x (g(0) = 1)."""
    if x == 0.0:
        return 1.0
    e = math.exp(-x)  # x e^-x / (1 - e^-x): no overflow for large x
    return x * e / -math.expm1(-x)


def kingman_theta(load: float, slots: float) -> float:
    """The root theta > 0 of load (e^theta - 1) = theta slots; 0 when load >= slots (no decay)."""
    if load <= 0.0:
        return math.inf
    if load >= slots:
        return 0.0
    f = lambda th: load * math.expm1(th) - th * slots  # noqa: E731 - negative below the root
    lo, hi = 0.0, 1.0
    while f(hi) < 0.0:
        lo, hi = hi, 2.0 * hi
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if f(mid) < 0.0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return lo  # the lower end: a slightly smaller decay rate, so the bound stays on the safe side


def sojourn_bound_s(profile: BatchProfile, rate_rps: float, count: int, miss: float) -> float:
    """Seconds within which all but a fraction `miss` of requests leave a pool of `count` replicas at `rate_rps`."""
    if count < 1:
        return math.inf
    T, B = profile.batch_s, profile.max_batch
    theta = kingman_theta(rate_rps * T, count * B)
    if theta == 0.0:
        return math.inf
    queued = math.log(1.0 / miss) / theta if math.isfinite(theta) else 0.0
    return max(profile.max_wait_s, T * (1.0 + queued / (count * B))) + T


def curve(profile: BatchProfile, budget_s: float, miss: float) -> float | None:
    """The parameter a = ln(1/q) T / (B (D - 2T)) of cap(c) = c mu g(a/c), or None if no rate fits `budget_s`."""
    T = profile.batch_s
    if budget_s <= 2.0 * T or budget_s < profile.max_wait_s + T:
        return None
    return math.log(1.0 / miss) * T / (profile.max_batch * (budget_s - 2.0 * T))


def capacity_rps(profile: BatchProfile, a: float, count: int) -> float:
    """cap(c): the largest rate `count` replicas take within the budget that gave `a`."""
    return 0.0 if count < 1 else count * profile.replica_rps * g(a / count)


def _capacity_curve(profile: BatchProfile, a: float, max_count: int) -> np.ndarray:
    """cap(c) for c = 1..max_count: c mu g(a / c), g evaluated as x e^-x / (1 - e^-x)."""
    c = np.arange(1, max_count + 1, dtype=float)
    x = a / c
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        gx = np.where(x > 0, x * np.exp(-x) / -np.expm1(-np.maximum(x, 1e-300)), 1.0)
    return c * profile.replica_rps * gx


@dataclass(frozen=True)
class CapacityTable:
    """The planner's capacity of 1..len(rps) replicas: exact, or the line c cap(1) when `linear`."""

    rps: tuple[float, ...]
    linear: bool
    rel_se: float | None = None  # measured tables: the largest relative sampling error of an entry

    def at(self, count: int) -> float:
        return 0.0 if count < 1 else self.rps[min(count, len(self.rps)) - 1]

    def cut(self, max_count: int) -> CapacityTable:
        """The table for at most `max_count` replicas."""
        return CapacityTable(self.rps[:max_count], self.linear, self.rel_se)


def capacity_table(profile: BatchProfile, a: float, max_count: int, tol: float = LINEAR_TOLERANCE) -> CapacityTable:
    """cap(1..max_count), or the line c cap(1) when it stays within `tol` of cap (then linear in the MILP)."""
    true = _capacity_curve(profile, a, max_count)
    if max_count * true[0] >= (1.0 - tol) * true[-1]:
        return CapacityTable(tuple(float(true[0]) * c for c in range(1, max_count + 1)), True)
    return CapacityTable(tuple(float(v) for v in true), False)
