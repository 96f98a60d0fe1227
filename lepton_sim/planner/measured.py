"""Capacity tables measured by simulation, for the pools no closed form covers: batching pools.

For `c` replicas the capacity is the largest Poisson rate at which the pool's sojourn quantile at
the miss probability `m` stays within the budget `b`. It is measured by simulating the pool alone
(`lepton_sim.poolsim`: the engine's dispatch rule, checked request by request against the engine's
`Pool`):

- **One curve serves every budget.** For each (pool shape, `c`, `m`) the sojourn quantile `Q(rho)`
  is simulated on a fixed grid of utilisations `rho` (of `c` replicas always busy with full
  batches): `GRID_LOW` and then `1 - 2^(-k/3)`, k = 1..`GRID_STEPS` (up to 0.996), denser where the
  queue grows fast. Every tier, site and service with the same shape reads the same curve; points
  are simulated lazily, from low load up, only as far as a budget or a demand asks.
- **Capacity.** Walking up the grid, the first point with `Q > b` brackets the crossing; the
  capacity is where the straight line through its neighbours in `(ln(1 - rho), ln Q)` crosses `b`.
  **Measured error** of that reading against a bisection to 0.2 % at the same random numbers
  (`tests/planner/test_measured.py`): within 1 % at the points checked. When the tier's whole
  demand (`enough_rps`) lies below the last point walked, the table records only that the
  capacity is *at least* the demand, which is all the MILP can use. Under the Kingman bound of
  `capacity.py` (a proven bound on the same pool) no simulation is needed at all.
- **Common random numbers.** Every point of every curve of one pool shape runs on the same
  unit-rate arrival stream and batch-time draws, its times divided by the rate, so `Q` moves with
  the load as the pool does, not by resampling; counts 1, 2, ... share the stream too, and the
  table takes a running maximum over counts (adding a replica never slows a FIFO pool).
- **Sample error.** Each point has `requests_for(m)` requests (5 % warm-up, the pool starting empty)
  and a standard error of `Q` from `poolsim.BLOCKS` batch-mean quantiles; the capacity's relative
  error is that divided by the local slope `rho dQ/drho`. It is recorded per entry
  (`MeasuredEntry.rel_se`) and in plan.json.
- **Cache.** Points are keyed by everything that determines them (batch times or the drawn
  distribution, batching policy, miss, count, grid index, requests, seed, method version) in a
  `TableStore`: in memory by default; the CLI passes a disk store (`lepton_sim.tablecache`) so that
  planning the same scenario again needs no simulation.

What is measured is the pool alone at a stationary Poisson rate: the burst allowance
(`demand.py`) and the link queues ahead of the pool (`paths.py`) are planned as for every pool. A
pool that waits for batches to fill is not strictly monotone in the load (a busier pool fills them
sooner), but a request arriving to an idle pool waits `max_wait_ms`: a budget above the idle floor
(`latency.idle_floor_s`) is met at low rates, and the capacity is the first crossing from below.
"""
from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lepton_sim.planner.capacity import BatchProfile, capacity_rps, curve
from lepton_sim.poolsim import PoolRun, Probe

METHOD = "poolsim-grid-1"  # bump when the grid, the reading or the pool rule changes: old cache entries stop matching
SEED = 20261201  # the common random numbers of every measured table
MIN_REQUESTS, MAX_REQUESTS = 60_000, 600_000
GRID_LOW = (0.05, 0.12)
GRID_STEPS = 24
GRID = GRID_LOW + tuple(1.0 - 2.0 ** (-k / 3.0) for k in range(1, GRID_STEPS + 1))


def requests_for(miss: float) -> int:
    """Requests per trial: about 600 beyond the budget at the target miss, within [60,000, 600,000]."""
    return int(min(MAX_REQUESTS, max(MIN_REQUESTS, round(600.0 / miss))))


class TableStore(Protocol):
    """Where measured entries are kept between plans: `get` returns what `put` stored under a key, or None."""

    def get(self, key: str) -> dict | None: ...

    def put(self, key: str, value: dict) -> None: ...


class MemoryStore:
    """A bounded in-process store (the default)."""

    def __init__(self, limit: int = 200_000) -> None:
        self._d: dict[str, dict] = {}
        self._limit = limit

    def get(self, key: str) -> dict | None:
        return self._d.get(key)

    def put(self, key: str, value: dict) -> None:
        if len(self._d) >= self._limit:
            self._d.clear()
        self._d[key] = value


MEMORY = MemoryStore()


@dataclass(frozen=True)
class MeasuredEntry:
    """cap(c) of one pool: the largest rate measured to meet the target, or a demand it was measured to carry."""

    count: int
    rate_rps: float
    at_least: bool  # True: only known to be >= rate_rps (the demand fitted; no search above it)
    trials: int  # simulations this entry took (0: cached, or under the Kingman bound)
    rel_se: float | None  # relative standard error of the rate from sampling; None when not searched

    def as_dict(self) -> dict:
        return {"count": self.count, "rate_rps": self.rate_rps, "at_least": self.at_least, "trials": self.trials,
                "rel_se": self.rel_se}


@dataclass
class Stats:
    """What measuring cost in one process: entries, trials run, cache hits, seconds."""

    entries: int = 0
    trials: int = 0
    cached: int = 0
    seconds: float = 0.0
    worst_rel_se: float = 0.0


STATS = Stats()

_RUNS: dict[tuple, PoolRun] = {}


def _run(profile: BatchProfile, requests: int) -> PoolRun:
    d = profile.dist
    key = (requests, None if d is None else (d.kind, d.mean_s, d.cv))
    if key not in _RUNS:
        if len(_RUNS) > 16:
            _RUNS.clear()
        _RUNS[key] = PoolRun(requests, SEED, *(() if d is None else (d.kind, d.mean_s, d.cv)))
    return _RUNS[key]


def _times(profile: BatchProfile) -> tuple[float, ...] | None:
    if profile.dist is not None:
        return None
    if profile.times_s is None:
        raise ValueError("a measured table needs the batch times of every batch size")
    return profile.times_s


@functools.lru_cache(maxsize=4096)
def _shape(profile: BatchProfile) -> str:
    """The part of a point's key fixed by the pool shape (JSON; built once per shape, keys are read on a hot path)."""
    d = profile.dist
    return json.dumps([METHOD, profile.max_batch, profile.max_wait_s, list(_times(profile) or ()),
                       None if d is None else [d.kind, d.mean_s, d.cv], SEED])


def point_key(profile: BatchProfile, miss: float, count: int, k: int) -> str:
    """The store key of one curve point: everything that determines it, as JSON (floats by repr)."""
    return f"{_shape(profile)}|{miss!r}|{count}|{k}|{GRID[k]!r}|{requests_for(miss)}"


def full_rate(profile: BatchProfile, count: int) -> float:
    """The rate at which `count` replicas are always busy with full batches (utilisation 1)."""
    t = profile.dist.mean_s if profile.dist is not None else profile.batch_s
    return count * profile.max_batch / t


def trial(profile: BatchProfile, rate_rps: float, count: int, miss: float) -> Probe:
    """One simulated run of the pool at `rate_rps` on the shape's common random numbers."""
    t0 = time.perf_counter()
    run = _run(profile, requests_for(miss))
    p = run.probe(rate_rps, count, profile.max_batch, profile.max_wait_s, _times(profile), math.inf, miss)
    STATS.trials += 1
    STATS.seconds += time.perf_counter() - t0
    return p


def _point(profile: BatchProfile, miss: float, count: int, k: int, store: TableStore) -> tuple[float, float]:
    """(Q, its standard error) at grid point k: from the store, or simulated and stored."""
    key = point_key(profile, miss, count, k)
    hit = store.get(key)
    if hit is not None:
        STATS.cached += 1
        return hit["q"], hit["se"]
    p = trial(profile, GRID[k] * full_rate(profile, count), count, miss)
    store.put(key, {"q": p.quantile_s, "se": p.quantile_se})
    return p.quantile_s, p.quantile_se


def _cross(rho_a: float, q_a: float, rho_b: float, q_b: float, budget_s: float) -> float:
    """Where the line through (ln(1 - rho), ln Q) at the two points reaches the budget (q_a <= budget < q_b)."""
    xa, xb = math.log1p(-rho_a), math.log1p(-rho_b)
    ya, yb, y = math.log(q_a), math.log(q_b), math.log(budget_s)
    x = xa + (y - ya) * (xb - xa) / (yb - ya) if yb > ya else xa
    return min(max(-math.expm1(x), rho_a), rho_b)


def measure(profile: BatchProfile, budget_s: float, miss: float, count: int, enough_rps: float,
            store: TableStore, floor_s: float) -> MeasuredEntry:
    """cap(count) of a batching pool at (budget, miss): read off the simulated curve (see the module docstring)."""
    STATS.entries += 1
    full = full_rate(profile, count)
    a = curve(profile, budget_s, miss)
    if a is not None and capacity_rps(profile, a, count) >= enough_rps:
        return MeasuredEntry(count, enough_rps, True, 0, None)
    trials0 = STATS.trials
    rho_prev, q_prev = 0.0, floor_s  # an idle pool: the floor
    for k, rho in enumerate(GRID):
        q, se = _point(profile, miss, count, k, store)
        if q > budget_s:
            rho_cap = _cross(rho_prev, q_prev, rho, q, budget_s) if q_prev > 0.0 else rho_prev  # q_prev <= budget
            slope = (math.log(q) - math.log(max(q_prev, 1e-12))) / (rho - rho_prev) if rho > rho_prev else 0.0
            rel_se = se / q / (slope * rho_cap) if slope > 0 and rho_cap > 0 else None
            if rel_se is not None:
                STATS.worst_rel_se = max(STATS.worst_rel_se, rel_se)
            return MeasuredEntry(count, min(rho_cap * full, enough_rps), rho_cap * full >= enough_rps,
                                 STATS.trials - trials0, rel_se)
        if rho * full >= enough_rps:
            return MeasuredEntry(count, enough_rps, True, STATS.trials - trials0, None)
        rho_prev, q_prev = rho, q
    return MeasuredEntry(count, GRID[-1] * full, False, STATS.trials - trials0, None)


def measured_capacities(profile: BatchProfile, budget_s: float, miss: float, max_count: int,
                        enough_rps: float = math.inf, store: TableStore | None = None,
                        floor_s: float = 0.0) -> list[MeasuredEntry]:
    """cap(1), cap(2), ... measured, up to `max_count` or the first count carrying `enough_rps`.

    `floor_s` is the idle pool's quantile (the curve's value at rate 0).
    """
    store = MEMORY if store is None else store
    out: list[MeasuredEntry] = []
    prev = 0.0
    for c in range(1, max_count + 1):
        e = measure(profile, budget_s, miss, c, enough_rps, store, floor_s)
        if e.rate_rps < prev:  # a replica more never slows a FIFO pool: sampling noise, not the pool
            e = MeasuredEntry(c, prev, e.at_least, e.trials, e.rel_se)
        out.append(e)
        prev = e.rate_rps
        if e.rate_rps >= enough_rps:
            break
    return out


def simulated_quantile_s(profile: BatchProfile, rate_rps: float, count: int, miss: float) -> float:
    """The pool's sojourn (1 - miss)-quantile at `rate_rps`, measured on the tables' common random numbers."""
    if count < 1 or rate_rps >= full_rate(profile, count):
        return math.inf
    if rate_rps <= 0.0:
        rate_rps = 1e-6 * full_rate(profile, count)
    return trial(profile, rate_rps, count, miss).quantile_s
