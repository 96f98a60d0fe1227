"""One replica pool on its own, fast: the engine's dispatch rule as a loop over batches.

The planner measures what it cannot compute in closed form (batching pools) by simulating a pool
alone: Poisson arrivals at a trial rate into `count` replicas behind one FIFO queue. The rule is
the engine's (`lepton_sim.sim.pools.Pool`): an idle replica takes the first `max_batch` queued
requests at once when that many wait, or when the oldest has waited `max_wait_s`; otherwise it
waits for whichever comes first. A batch of `b` takes `times_s[b - 1]` (the service-time model's
fixed batch times), or the next of `draws` (one draw of the service's `service_time` distribution
per batch, in dispatch order, like the engine's sampler).

Replicas are identical, so which idle replica takes a batch does not change any request's time:
the loop keeps only the replicas' free times (a heap) and dispatches each batch on the earliest.
A batch then leaves at `max(free, first arrival)` if it is already full or the oldest is already
`max_wait_s` old, else when the `max_batch`-th request arrives or the oldest's wait runs out,
whichever is first; it holds every request that has arrived by then, up to `max_batch`.
`tests/planner/test_poolsim.py` drives the engine's `Pool` with the same arrivals and batch times
and checks that every request leaves at the same moment.

The loop is compiled with Numba (about 20 ns a batch, against about 1 us interpreted), which is
what makes measured tables affordable at fleet scale. This module is below both the simulator and
the planner: numpy, Numba and the standard library only.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def completions(arrivals: Sequence[float], count: int, max_batch: int, max_wait_s: float,
                times_s: Sequence[float] | None = None, draws: Sequence[float] | None = None) -> np.ndarray:
    """The moment each request (arrivals sorted, seconds) leaves a pool of `count` idle replicas.

    Exactly one of `times_s` (batch time by batch size) and `draws` (batch times in dispatch order,
    at least one per request) is given.
    """
    if (times_s is None) == (draws is None):
        raise ValueError("give exactly one of times_s and draws")
    if count < 1:
        raise ValueError("a pool needs at least one replica")
    a = np.ascontiguousarray(arrivals, dtype=np.float64)
    if len(a) == 0:
        return np.zeros(0)
    times = np.ascontiguousarray(times_s if times_s is not None else (), dtype=np.float64)
    drawn = np.ascontiguousarray(draws if draws is not None else (), dtype=np.float64)
    if draws is not None and len(drawn) < len(a):
        raise ValueError("need at least one batch-time draw per request")
    if times_s is not None and len(times) < max_batch:
        raise ValueError("need a batch time for every batch size up to max_batch")
    return _compiled("_completions")(a, int(count), int(max_batch), float(max_wait_s), times, drawn, draws is not None)


_JIT: dict[str, object] = {}  # name -> the function compiled by Numba


def _compiled(name: str):
    """The loops below compiled by Numba (imported and compiled on first use; the machine code is cached on disk).

    `_sift_down` is compiled first and bound in its place, so the loops that call it are compiled against it.
    """
    if not _JIT:
        import numba

        g = globals()
        g["_sift_down"] = numba.njit(cache=True, nogil=True, inline="always")(_sift_down)
        for fn in ("_completions", "_upper_quantile"):
            _JIT[fn] = g[fn] = numba.njit(cache=True, nogil=True)(g[fn])
        _JIT["_block_quantiles"] = numba.njit(cache=True, nogil=True)(_block_quantiles)
    return _JIT[name]


def _sift_down(heap, size, i, v):  # pragma: no cover - compiled; tested through its callers
    """Put `v` at slot `i` of the binary min-heap `heap[:size]` and let it sink to its place."""
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] >= v:
            break
        heap[i] = heap[child]
        i = child
    heap[i] = v


TAIL_SHARE = 0.125  # a quantile this far (or less) from the top is read from the largest values alone


def upper_quantile(x: np.ndarray, p: float, lo: int = 0, hi: int | None = None) -> float:
    """`np.quantile(x[lo:hi], p)` (the default linear method, to the last bit), without sorting the whole array.

    The order statistics it interpolates between are the two smallest of the `n - floor((n - 1) p)`
    largest values, which one pass with a min-heap of that size finds; most values fail the first
    comparison, so an upper quantile costs about one comparison a value against `np.quantile`'s
    partition of the whole. `p` below `1 - TAIL_SHARE` uses `np.quantile` itself.
    """
    hi = len(x) if hi is None else hi
    if hi - lo < 2 or p < 1.0 - TAIL_SHARE:
        return float(np.quantile(x[lo:hi], p))
    return float(_compiled("_upper_quantile")(np.ascontiguousarray(x, dtype=np.float64), int(lo), int(hi), float(p)))


def block_quantiles(x: np.ndarray, p: float, blocks: int) -> np.ndarray:
    """`np.quantile` of each of `blocks` equal consecutive blocks of `x` (the remainder dropped), as `upper_quantile`."""
    size = len(x) // blocks
    if size < 2 or p < 1.0 - TAIL_SHARE:
        return np.quantile(x[: size * blocks].reshape(blocks, -1), p, axis=1)
    return _compiled("_block_quantiles")(np.ascontiguousarray(x, dtype=np.float64), int(size), int(blocks), float(p))


def _block_quantiles(x, size, blocks, p):  # pragma: no cover - compiled; tested through block_quantiles
    out = np.empty(blocks)
    for i in range(blocks):
        out[i] = _upper_quantile(x, i * size, (i + 1) * size, p)
    return out


def _upper_quantile(x, lo, hi, p):  # pragma: no cover - compiled; tested through upper_quantile
    n = hi - lo
    h = (n - 1) * p  # numpy's virtual index for the linear method
    j = math.floor(h)
    if h >= n - 1:
        j = n - 1
    k = n - j  # the k largest hold order statistics j and j + 1
    heap = np.full(k, -np.inf)  # a min-heap of the k largest seen so far
    for t in range(lo, hi):
        if x[t] > heap[0]:
            _sift_down(heap, k, 0, x[t])
    a = heap[0]
    if h >= n - 1 or k < 2:
        return a
    b = np.inf  # the second smallest of the heap: a child of the root
    if k > 1:
        b = heap[1]
    if k > 2 and heap[2] < b:
        b = heap[2]
    gamma = h - j
    d = b - a
    if gamma >= 0.5:
        return b - d * (1.0 - gamma)
    return a + d * gamma


def _completions(a, count, B, w, times, drawn, use_draws):  # pragma: no cover - compiled; tested through completions
    n = len(a)
    free = np.zeros(count)  # a binary min-heap of the replicas' free times
    out = np.empty(n)
    h = 0
    k = 0
    while h < n:
        f = free[0]
        ah = a[h]
        t0 = f if f > ah else ah
        if B == 1:
            size = 1
            td = t0
        else:
            last = h + B - 1
            if w > 0.0:
                due = ah + w
                fill = a[last] if last < n and a[last] < due else due
                td = fill if fill > t0 else t0
            else:
                td = t0
            hi = h + B if h + B < n else n
            size = np.searchsorted(a[h:hi], td, side="right")
        dt = drawn[k] if use_draws else times[size - 1]
        end = td + dt
        _sift_down(free, count, 0, end)  # heapreplace(free, end): the root leaves, `end` sinks to its place
        for j in range(h, h + size):
            out[j] = end
        h += size
        k += 1
    return out


@dataclass(frozen=True)
class Probe:
    """One simulated run of a pool at one rate: the share of requests beyond a latency and its error."""

    rate_rps: float
    miss: float  # share of measured requests whose sojourn exceeds the budget (0 for an infinite budget)
    stderr: float  # standard error of `miss` by batch means over BLOCKS blocks
    quantile_s: float  # the sojourn quantile at the target miss probability
    quantile_se: float  # its standard error by batch means
    requests: int  # measured (after the warm-up)


BLOCKS = 20  # batch means for the standard error


class PoolRun:
    """Common random numbers for one pool shape: the same unit-rate arrival stream and batch-time draws at every rate.

    `requests` arrivals are drawn once (seeded); a trial at rate `lam` divides their times by `lam`,
    so runs at nearby rates see the same pattern of gaps and of batch times, and the miss share
    changes with the rate smoothly rather than by sampling noise. The first `warmup` requests
    (the pool starts empty) are not measured.
    """

    def __init__(self, requests: int, seed: int, draws_kind: str | None = None, mean_s: float = 0.0,
                 cv: float = 0.0, warmup: int | None = None) -> None:
        rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(0x706F6F6C,)))
        self.unit = np.cumsum(rng.exponential(1.0, requests))
        self.requests = requests
        self.warmup = requests // 20 if warmup is None else warmup
        self.draws: np.ndarray | None = None
        if draws_kind == "deterministic":
            self.draws = np.full(requests, mean_s)
        elif draws_kind == "exponential":
            self.draws = rng.exponential(mean_s, requests)
        elif draws_kind == "lognormal":
            sigma2 = math.log1p(cv * cv)
            self.draws = rng.lognormal(math.log(mean_s) - sigma2 / 2.0, math.sqrt(sigma2), requests)
        elif draws_kind is not None:
            raise ValueError(f"unknown service-time kind {draws_kind!r}")

    def sojourns(self, rate_rps: float, count: int, max_batch: int, max_wait_s: float,
                 times_s: Sequence[float] | None) -> np.ndarray:
        """Sojourn (seconds) of each measured request at `rate_rps`."""
        arr = self.unit / rate_rps
        done = completions(arr, count, max_batch, max_wait_s,
                           None if self.draws is not None else times_s, self.draws)
        return (done - arr)[self.warmup:]

    def probe(self, rate_rps: float, count: int, max_batch: int, max_wait_s: float, times_s: Sequence[float] | None,
              budget_s: float, miss: float) -> Probe:
        """Run the pool at `rate_rps` and measure the share of requests beyond `budget_s`."""
        s = self.sojourns(rate_rps, count, max_batch, max_wait_s, times_s)
        blocks = s[: len(s) // BLOCKS * BLOCKS].reshape(BLOCKS, -1)
        if math.isfinite(budget_s):
            shares = np.mean(blocks > budget_s, axis=1)
            share = float(np.mean(s > budget_s))
            se = float(np.std(shares, ddof=1) / math.sqrt(BLOCKS))
        else:
            share, se = 0.0, 0.0
        q = upper_quantile(s, 1.0 - miss)
        qs = block_quantiles(s, 1.0 - miss, BLOCKS)
        q_se = float(np.std(qs, ddof=1) / math.sqrt(BLOCKS))
        return Probe(rate_rps, share, se, q, q_se, len(s))
