"""Planner truth: plan cost against the exhaustive optimum on small generated instances.

    python benchmarks/planner_truth.py                     # 32 instances: 8 per kind (4 kinds)
    python benchmarks/planner_truth.py --kinds batching --per-kind 4
    python benchmarks/planner_truth.py --per-kind 4 --latency-model bound

Each instance has one service, two sites (a datacenter and an edge site joined by a link) with
demand at both, and at most three pools (two hardware types at the datacenter, one at the edge),
each with at most 10 replicas. Service times: `exponential` and `lognormal` overrides (every
hardware type as fast, prices differ), or `deterministic`: ResNet-50 fp32 at batch 1 on the
roofline (L4, T4 and H100 at the datacenter, a Jetson AGX Orin at the edge: speeds and prices differ),
or `batching`: the service batches (`batching: {max_batch: B, max_wait_ms: w}`, B in {4, 8, 16}, w in
{0, 1, 2} ms) with a `service_time` override `{dist: deterministic, ms: d}`, d in 2..8 ms: the
simulator draws one service time per batch, so a batch of any size takes d (`lepton_sim.sim.pools`);
every hardware type is as fast, prices differ; the target is 2-4 times d + w, demand a few replicas'
full-batch throughput B / d.

The **exhaustive optimum** enumerates every replica count of every pool (within the site slots) in
order of cost, and for each the demand sites every open pool serves; a pool serving a set of sites
must keep each one's route within the target (the network bound of `lepton_sim.planner.paths` plus
the pool's latency, at the route's share of the miss probability: all of it on a route without
links, 90 % otherwise); given that, the cheapest routing (egress, link limits) is a small LP. The
network part is the planner's model as the default (tight) options build it, for every latency
model: the links' queueing allowance depends on which routes the latency model's floors leave
possible, so the `bound` model's own network figures differ slightly and are not the reference. What
a pool of `n` replicas can carry for a set of sites is decided, independently of the planner's code
(`lepton_sim.planner.latency`), by

- exponential and deterministic service: bisection on the rate with the closed forms of
  `lepton_sim.theory` (Erlang C sojourn distribution; Crommelin's M/D/c distribution);
- lognormal service: the project's simulator. A one-pool scenario at rate `lam` is simulated for
  `SIM_REQUESTS` requests (same seed at every rate: common random numbers, and a control variate
  for the service times drawn, `simulated_miss`) and meets the budget when its measured share of
  requests beyond it is at most `miss`; the largest such rate is found by bisection to `SIM_REL`
  (1 %), from a bracket around the planner's own figure (a starting point only) and above the
  capacity found for one replica fewer. Its sampling error: a miss of ~1e-2 over 2e5 requests has
  a standard error of 2 % of itself for independent requests, 4-7 % with the correlation of a
  loaded pool with heavy-tailed service (cv 1.5-2), which moves the rate at which it crosses the
  target by about 1 %; so on lognormal instances a ratio within about 2 % of 1 is within the
  truth's own error. (With 6e4 requests a cv 1.5 pool of 6 replicas read 0.0107 where 2e6 give
  0.0080: too few.)
- batching service: the project's simulator as well, never `lepton_sim.poolsim` or
  `lepton_sim.planner.measured` (which the planner's tables come from): a one-pool scenario with the
  service's batching and deterministic batch time at rate `lam`, `BATCH_REQUESTS` (1.5e5) requests,
  same seed at every rate, meets the budget when its raw share of requests beyond it is at most
  `miss` (no control variate: the batch time is fixed, so nothing but queueing and batch waits
  misses). The capacity is the first crossing from below: a pool whose batch time exceeds the
  budget, or that misses at 2 % of its full rate n B / d, carries nothing. Bisection to `SIM_REL`
  (1 %) from a bracket of +-`BATCH_STEP` (2 %, doubling) around the planner's own measured figure
  (a starting point only) and above the capacity for one replica fewer. Its sampling error: a miss
  of ~1e-2 over 1.5e5 requests is ~1500 requests beyond the budget; bursts make them come in clumps,
  but the miss rises steeply with the rate near capacity, so the rate moves little: the capacity of
  three pools (1, 4 and 2 replicas; B 8 and 4) bisected with four seeds each spread by 1.0 %, 1.9 %
  and 1.0 % (one or two bisection steps; 6e4 requests gave the same spread). The bisection stops at
  the last rate that met the target, up to 1 % below the crossing, so the optimum is the optimum
  of slightly smaller capacities: a ratio within about 2 % of 1 is within the truth's own error.

It prints one row per instance (plan cost, optimum, ratio, planning wall time) and per kind and
overall the median and worst ratio over the instances the planner planned, how many it called
infeasible though a deployment exists ("falsely infeasible"), and how many have no deployment. A ratio below 1 on a lognormal instance means the planner's M/G/c
approximation found a cheaper plan than simulation confirms (the approximation was optimistic).
Figures only: nothing is asserted here (tests/planner/test_plan_exact.py asserts the exact kinds;
tests/planner/test_plan_truth_sim.py checks three of these instances by simulating whole deployments).

Run time (2 cores, shared with other work): the default run (32 instances, seeds 100-107) took 20
min; almost all of it is the simulated oracles (lognormal 17 min, 75-175 s an instance; batching
3 min, 15-40 s an instance; the exact kinds seconds). `--kinds batching --per-kind 4`: 2 min.
"""
from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pulp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lepton_sim import theory  # noqa: E402
from lepton_sim.metrics import build_metrics  # noqa: E402
from lepton_sim.planner import Infeasible, PlanOptions, plan  # noqa: E402
from lepton_sim.planner.paths import NETWORK_SHARE  # noqa: E402
from lepton_sim.planner.problem import build_problem  # noqa: E402
from lepton_sim.scenario import parse_scenario  # noqa: E402
from lepton_sim.scenario.schema import Scenario  # noqa: E402
from lepton_sim.servicetime import batch_times  # noqa: E402
from lepton_sim.sim import simulate  # noqa: E402

KINDS = ("exponential", "deterministic", "lognormal", "batching")
SIM_REQUESTS = 200_000
BATCH_REQUESTS = 150_000  # requests per simulated run of a batching pool (see the module docstring)
BATCH_STEP = 0.02  # the first bracket step around the planner's figure for a batching pool
SIM_REL = 1e-2
MAX_GAP = 2e-5  # no pool is probed closer than this to utilisation 1 (as in the planner)

# --- instances -----------------------------------------------------------------------------------------


def make_instance(seed: int, kind: str) -> dict[str, Any]:
    """One small instance (a scenario mapping) of the given service-time kind, drawn from `seed`."""
    rng = np.random.default_rng(seed)
    if kind == "batching":
        return _batching_instance(seed, rng)
    if kind == "deterministic":
        hardware = {"a": {"from": "nvidia-l4", "cost_per_hour": float(np.round(rng.uniform(0.5, 0.9), 2))},
                    "b": {"from": str(rng.choice(["nvidia-t4", "nvidia-h100-sxm"])),
                          "cost_per_hour": float(np.round(rng.uniform(0.3, 1.6), 2))},
                    "e": {"from": "nvidia-jetson-agx-orin", "cost_per_hour": float(np.round(rng.uniform(0.1, 0.6), 2))}}
        for entry in hardware.values():  # instances test the planner: they keep the uncalibrated
            entry.update(calibration=None, on_chip_mb=None)  # roofline they were drawn with
        model: dict[str, Any] = {"from": "resnet50"}
        service: dict[str, Any] = {"variants": ["fp32"]}
        slo_ms = float(rng.integers(8, 25))
        scale = 1.0
    else:
        hardware = _cpu_hardware(rng)
        model = {"layers": [{"op": "dense", "in": 64, "out": 64}], "input_bytes": int(rng.choice([2_000, 60_000])),
                 "output_bytes": 500}
        mean_ms = float(rng.choice([2.0, 4.0, 6.0]))
        if kind == "exponential":
            service = {"service_time": {"dist": "exponential", "mean_ms": mean_ms}}
            slo_ms = float(np.round(mean_ms * rng.uniform(5.5, 12.0), 1))
        else:
            cv = float(rng.choice([0.5, 1.0, 1.5, 2.0]))
            service = {"service_time": {"dist": "lognormal", "mean_ms": mean_ms, "cv": cv}}
            mu, sigma = theory.lognormal_params(mean_ms, cv)
            p99 = math.exp(mu + 2.3263 * sigma)  # the service time's own p99: the idle pool's
            slo_ms = float(np.round(p99 * rng.uniform(1.25, 2.2), 1))
        scale = 2.0 / mean_ms
    return {
        "name": f"truth-{kind}-{seed}", "seed": seed, "horizon": {"duration_s": 30, "warmup_s": 3},
        "hardware": hardware, **_two_sites(rng),
        "models": {"m": model},
        "services": {"svc": {"model": "m", "slo": {"percentile": 99, "latency_ms": slo_ms}, **service,
                             "demand": [{"site": "dc", "rate_rps": float(np.round(scale * rng.uniform(200, 2500)))},
                                        {"site": "edge", "rate_rps": float(np.round(scale * rng.uniform(50, 900)))}]}},
    }


def _cpu_hardware(rng: np.random.Generator) -> dict[str, Any]:
    """Three equally fast CPU types `a`, `b` (datacenter) and `e` (edge) at drawn prices."""
    return {h: {"kind": "cpu", "peak_tflops": {"fp32": 1.0}, "memory_bandwidth_gbps": 50, "memory_gb": 64,
                "power_w": 200, "idle_power_w": 100, "cost_per_hour": float(np.round(rng.uniform(lo, hi), 2))}
            for h, (lo, hi) in {"a": (0.5, 1.0), "b": (0.3, 0.9), "e": (0.2, 1.2)}.items()}


def _two_sites(rng: np.random.Generator) -> dict[str, Any]:
    """`sites` and `links` of every instance: a datacenter (slots of a and b) and an edge site (slots of e), one link."""
    dc_cap = {"a": int(rng.integers(2, 11)), "b": int(rng.integers(2, 11))}
    return {"sites": {"dc": {"kind": "datacenter", "capacity": dc_cap},
                      "edge": {"kind": "edge", "capacity": {"e": int(rng.integers(1, 5))}}},
            "links": [{"between": ["edge", "dc"], "bandwidth_gbps": float(rng.choice([5.0, 10.0, 25.0])),
                       "latency_ms": float(np.round(rng.uniform(0.5, 3.0), 2)),
                       "cost_per_gb": float(rng.choice([0.0, 0.0, 0.01, 0.05]))}]}


def _batching_instance(seed: int, rng: np.random.Generator) -> dict[str, Any]:
    """A batching service: one deterministic time `d` per batch of any size, every hardware as fast, prices differ."""
    hardware = _cpu_hardware(rng)
    max_batch = int(rng.choice([4, 8, 16]))
    wait_ms = float(rng.choice([0.0, 1.0, 2.0]))
    d_ms = float(rng.integers(2, 9))
    slo_ms = float(np.round((d_ms + wait_ms) * rng.uniform(2.0, 4.0), 1))
    full = max_batch / d_ms * 1e3  # one replica always busy with full batches, requests per second
    return {
        "name": f"truth-batching-{seed}", "seed": seed, "horizon": {"duration_s": 30, "warmup_s": 3},
        "hardware": hardware, **_two_sites(rng),
        "models": {"m": {"layers": [{"op": "dense", "in": 64, "out": 64}],
                         "input_bytes": int(rng.choice([2_000, 60_000])), "output_bytes": 500}},
        "services": {"svc": {"model": "m", "slo": {"percentile": 99, "latency_ms": slo_ms},
                             "service_time": {"dist": "deterministic", "ms": d_ms},
                             "batching": {"max_batch": max_batch, "max_wait_ms": wait_ms},
                             "demand": [{"site": "dc", "rate_rps": float(np.round(full * rng.uniform(0.5, 5.0)))},
                                        {"site": "edge", "rate_rps": float(np.round(full * rng.uniform(0.2, 2.0)))}]}},
    }


# --- pool oracles: the largest rate at which n replicas keep P(T > budget) <= miss ----------------------

Dist = tuple[str, float, float, int, float]  # (kind, mean seconds, cv, max_batch, max_wait seconds)


def service_dist(s: Scenario, service: str, hw: str) -> Dist:
    """What one batch's service time is in the simulator for this service on this hardware, and its batching.

    Without an override the roofline's batch-1 time (the roofline instances do not batch). The
    simulator draws one `service_time` per batch, whatever its size (`lepton_sim.sim.pools.Pool`).
    """
    svc = s.services[service]
    st = svc.service_time
    b = (svc.batching.max_batch, svc.batching.max_wait_ms / 1e3)
    if st is None:
        model = s.models[svc.model]
        variant = (svc.variants or list(model.variants))[0]
        assert b[0] == 1, "roofline instances do not batch"
        return ("deterministic", batch_times(model, model.variants[variant], s.hardware[hw], 1).times_s[0], 0.0, *b)
    if st.dist == "deterministic":
        return ("deterministic", st.ms / 1e3, 0.0, *b)
    if st.dist == "exponential":
        return ("exponential", st.mean_ms / 1e3, 1.0, *b)
    return ("lognormal", st.mean_ms / 1e3, st.cv, *b)


def theory_capacity(dist: Dist, n: int, budget_s: float, miss: float) -> float:
    """By bisection on the utilisation with the closed forms (exponential, deterministic; batch 1)."""
    kind, mean = dist[0], dist[1]
    assert dist[3] == 1

    def misses(rho: float) -> bool:
        lam = rho * n / mean
        if kind == "exponential":
            return 1.0 - theory.mmc_sojourn_cdf(budget_s, lam, 1.0 / mean, n) > miss
        return 1.0 - theory.mdc_sojourn_cdf(budget_s, lam, mean, n) > miss

    if misses(1e-9):
        return 0.0
    lo, hi = 1e-9, 0.5
    while not misses(hi):
        lo = hi
        if hi >= 1.0 - MAX_GAP:
            return lo * n / mean
        hi = min(1.0 - (1.0 - hi) / 2.0, 1.0 - MAX_GAP)
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        if misses(mid):
            hi = mid
        else:
            lo = mid
    return lo * n / mean


def _one_pool(dist: Dist, n: int, lam: float, budget_s: float, seed: int,
              requests: int = SIM_REQUESTS) -> dict[str, Any]:
    """A scenario of one site and one pool of `n` replicas at Poisson rate `lam`, for about `requests` requests."""
    kind, mean, cv, max_batch, max_wait_s = dist
    st: dict[str, Any] = ({"dist": "deterministic", "ms": mean * 1e3} if kind == "deterministic" else
                          {"dist": kind, "mean_ms": mean * 1e3, **({"cv": cv} if kind == "lognormal" else {})})
    batching = {"batching": {"max_batch": max_batch, "max_wait_ms": max_wait_s * 1e3}} if max_batch > 1 else {}
    duration = requests / lam
    return {"name": "pool", "seed": seed, "horizon": {"duration_s": duration, "warmup_s": duration / 20},
            "hardware": {"x": {"kind": "cpu", "peak_tflops": {"fp32": 1.0}, "memory_bandwidth_gbps": 50,
                               "memory_gb": 64, "power_w": 200, "idle_power_w": 100, "cost_per_hour": 1.0}},
            "sites": {"s": {"capacity": {"x": n}}},
            "models": {"m": {"layers": [{"op": "dense", "in": 64, "out": 64}], "input_bytes": 100, "output_bytes": 100}},
            "services": {"q": {"model": "m", "slo": {"percentile": 99, "latency_ms": budget_s * 1e3},
                               "service_time": st, **batching, "demand": [{"site": "s", "rate_rps": lam}]}},
            "deployment": {"replicas": [{"service": "q", "site": "s", "hardware": "x", "variant": "fp32", "count": n}]}}


def _raw_miss(dist: Dist, n: int, lam: float, budget_s: float, seed: int, requests: int = SIM_REQUESTS) -> float:
    """The share of requests the simulated pool keeps beyond `budget_s` (no correction)."""
    s = parse_scenario(_one_pool(dist, n, lam, budget_s, seed, requests), file="<pool>")
    m = build_metrics(s, simulate(s))
    return 1.0 - m["services"]["q"]["slo_attainment"]


_SERVICE_ONLY: dict[tuple[Dist, int, float], float] = {}


def simulated_miss(dist: Dist, n: int, lam: float, budget_s: float, seed: int = 11) -> float:
    """The share of requests a simulated pool keeps beyond `budget_s` (the project's simulator), with a control variate.

    The same seed draws the same service times in the same order at every rate, so a run at a load
    where nobody waits measures the share of those draws above the budget; the estimate is the exact
    P(S > b) plus (this run's miss - that run's): what the sampled service times alone would add or
    take away cancels, and what is left is the misses queueing causes. Near the idle floor (a budget
    barely above the service time's own quantile) this is what makes the estimate usable at all.
    """
    key = (dist, n, budget_s)
    if key not in _SERVICE_ONLY:
        _SERVICE_ONLY[key] = _raw_miss(dist, n, 1e-4 * n / dist[1], budget_s, seed)
    return 1.0 - _lognormal_cdf(dist, budget_s) + _raw_miss(dist, n, lam, budget_s, seed) - _SERVICE_ONLY[key]


def simulation_capacity(dist: Dist, n: int, budget_s: float, miss: float, guess: float | None = None,
                        at_least: float = 0.0) -> float:
    """The largest rate the simulator keeps within the budget, by bisection to SIM_REL (common random numbers)."""
    if 1.0 - _lognormal_cdf(dist, budget_s) > miss:
        return 0.0
    return _bisect(lambda lam: simulated_miss(dist, n, lam, budget_s) <= miss, n / dist[1], guess, at_least, 0.05)


def batching_capacity(dist: Dist, n: int, budget_s: float, miss: float, guess: float | None = None,
                      at_least: float = 0.0, seed: int = 11) -> float:
    """The largest rate at which the simulator keeps a batching pool's raw miss within `miss` (bisection, CRN).

    The first crossing from below: a pool that misses at 2 % of its full rate (or whose batch time
    alone exceeds the budget) carries nothing. `guess` (the planner's figure) only centres the bracket.
    """
    kind, mean, _, max_batch, _ = dist
    assert kind == "deterministic" and max_batch > 1
    full = n * max_batch / mean  # n replicas always busy with full batches

    def ok(lam: float) -> bool:
        return _raw_miss(dist, n, lam, budget_s, seed, BATCH_REQUESTS) <= miss

    if budget_s < mean:
        return 0.0
    if not guess or guess <= 0.0:  # the planner thinks the pool carries nothing: look from low load up
        if not ok(0.02 * full):
            return 0.0
        return _bisect(ok, full, 0.02 * full, max(at_least, 0.02 * full), 1.0)
    return _bisect(ok, full, guess, at_least, BATCH_STEP)


def _bisect(ok: Callable[[float], bool], full: float, guess: float | None, at_least: float, step: float) -> float:
    """Bracket the largest rate where `ok` holds around `guess` (rates in (0, full)), then bisect to SIM_REL."""
    ok_x, bad = 0.0, full * (1.0 - MAX_GAP)
    x = min(max(guess or 0.5 * full, 0.02 * full, at_least * (1 + SIM_REL)), 0.995 * full)
    while True:  # bracket around the guess
        if ok(x):
            ok_x = x
            x = min(x * (1 + step), 0.5 * (x + full))
        else:
            bad = x
            x = x / (1 + step)
        step *= 2
        if ok_x > 0 and bad < full * (1.0 - MAX_GAP) or x < 1e-3 * full:
            break
    while bad - ok_x > SIM_REL * bad:
        mid = 0.5 * (ok_x + bad)
        if ok(mid):
            ok_x = mid
        else:
            bad = mid
    return ok_x


def _lognormal_cdf(dist: Dist, x: float) -> float:
    mu, sigma = theory.lognormal_params(dist[1], dist[2])
    return 0.5 * math.erfc(-(math.log(x) - mu) / (sigma * math.sqrt(2.0)))


# --- exhaustive search -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Optimum:
    usd_per_hour: float  # math.inf when no deployment serves the demand
    counts: dict[tuple[str, str, str], int]  # (service, site, hardware) -> replicas
    deployments_tried: int


PoolOracle = Callable[[Dist, int, float, float], float]


def exhaustive(s: Scenario, oracle: PoolOracle, options: PlanOptions = PlanOptions(baselines=False)) -> Optimum:
    """The cheapest deployment (replicas, routing) whose every route meets its target, by enumeration."""
    paths = build_problem(s, options).paths  # the network model is the planner's; the pool model is `oracle`'s
    lines: list[tuple[str, str, str]] = []
    reqs: dict[tuple[str, str, str], dict[str, tuple[float, float, Any]]] = {}
    for name, svc in s.services.items():
        q = 1.0 - svc.slo.percentile / 100.0
        for site, spec in s.sites.items():
            for hw, slots in spec.capacity.items():
                if slots <= 0:
                    continue
                key = (name, site, hw)
                admissible = {}
                for d in svc.demand:
                    path = paths.path(name, d.site, site, q)
                    if path is None:
                        continue
                    miss = q if path.hops == 0 else q * (1.0 - NETWORK_SHARE)
                    budget = svc.slo.latency_ms / 1e3 - path.latency_s
                    if budget > 0:
                        admissible[d.site] = (budget, miss, path)
                if admissible:
                    lines.append(key)
                    reqs[key] = admissible
    dists = {k: service_dist(s, k[0], k[2]) for k in lines}
    cache: dict[tuple, float] = {}

    def cap(key: tuple[str, str, str], n: int, sites: tuple[str, ...]) -> float:
        out = math.inf
        for site in sites:
            budget, miss, _ = reqs[key][site]
            ck = (dists[key], n, budget, miss)
            if ck not in cache:
                cache[ck] = oracle(dists[key], n, budget, miss)
            out = min(out, cache[ck])
        return out

    slots = {(site, hw): n for site, spec in s.sites.items() for hw, n in spec.capacity.items()}
    ranges = [range(0, slots[k[1:]] + 1) for k in lines]
    deployments = []
    for combo in itertools.product(*ranges):
        used: dict[tuple[str, str], int] = defaultdict(int)
        for k, n in zip(lines, combo):
            used[k[1:]] += n
        if all(u <= slots[sh] for sh, u in used.items()):
            price = sum(n * s.hardware[k[2]].cost_per_hour for k, n in zip(lines, combo))
            deployments.append((price, combo))
    deployments.sort()
    demand = {(name, d.site): float(d.rate_rps) for name, svc in s.services.items() for d in svc.demand}
    best, best_counts, tried = math.inf, {}, 0
    for price, combo in deployments:
        if price >= best - 1e-12:
            break
        counts = {k: n for k, n in zip(lines, combo) if n > 0}
        if not _enough(counts, reqs, demand, cap):
            continue
        tried += 1
        options_per_line = [[sub for r in range(1, len(reqs[k]) + 1) for sub in itertools.combinations(sorted(reqs[k]), r)]
                            for k in counts]
        for served in itertools.product(*options_per_line):
            egress = _route(s, paths, counts, dict(zip(counts, served)), reqs, demand, cap)
            if egress is not None and price + egress < best:
                best, best_counts = price + egress, counts
    return Optimum(best, best_counts, tried)


def _enough(counts, reqs, demand, cap) -> bool:
    """A quick necessary test: every demand site and every service can be carried by the pools that could serve it."""
    for (name, site), rate in demand.items():
        if sum(cap(k, n, (site,)) for k, n in counts.items() if k[0] == name and site in reqs[k]) < rate * (1 - 1e-12):
            return False
    for name in {k[0] for k in demand}:
        total = sum(r for (svc, _), r in demand.items() if svc == name)
        most = sum(max(cap(k, n, (site,)) for site in reqs[k]) for k, n in counts.items() if k[0] == name)
        if most < total * (1 - 1e-12):
            return False
    return True


def _route(s, paths, counts, served, reqs, demand, cap) -> float | None:
    """The least egress of a routing that serves every demand within the pools' capacities and link limits."""
    lp = pulp.LpProblem("route", pulp.LpMinimize)
    x = {(k, site): lp.add_variable(f"x_{i}_{site}", 0) for i, k in enumerate(counts) for site in served[k]}
    for (name, site), rate in demand.items():
        arcs = [v for (k, st), v in x.items() if k[0] == name and st == site]
        if not arcs:
            return None
        lp += pulp.lpSum(arcs) == rate
    for k, n in counts.items():
        lp += pulp.lpSum(x[(k, st)] for st in served[k]) <= cap(k, n, served[k])
    use: dict[Any, list] = defaultdict(list)
    egress = []
    for (k, site), v in x.items():
        path = reqs[k][site][2]
        for d, bits in path.loads:
            use[d].append(bits * 1e-9 * v)
        egress.append(path.egress_usd_per_request * 3600.0 * v)
    for d, terms in use.items():
        lp += pulp.lpSum(terms) <= paths.limit_bps(d) * 1e-9
    lp += pulp.lpSum(egress)
    lp.solve(pulp.HiGHS(msg=False))
    if lp.status != pulp.LpStatusOptimal:
        return None
    return float(pulp.value(lp.objective) or 0.0)


# --- the benchmark -----------------------------------------------------------------------------------


def planner_guess(options: PlanOptions) -> PoolOracle:
    """The planner's own capacity (a starting point for the simulation's bisection only)."""
    from lepton_sim.planner.capacity import BatchProfile, ServiceDist
    from lepton_sim.planner.latency import tight_capacities

    def guess(dist: Dist, n: int, budget: float, miss: float) -> float:
        sd = ServiceDist(dist[0], dist[1], dist[2])  # type: ignore[arg-type]
        prof = BatchProfile(dist[1], dist[1], 1, 0.0, "guess", sd)
        try:
            return tight_capacities(prof, budget, miss, n)[-1]
        except Exception:  # noqa: BLE001 - a guess only
            return 0.5 * n / dist[1]
    return guess


def planner_batching_guess(options: PlanOptions) -> PoolOracle:
    """The planner's own measured capacity of a batching pool (the bracket's centre only; its tables are
    already in the planner's memory from the plan, so this costs little)."""
    from lepton_sim.planner.capacity import BatchProfile, ServiceDist
    from lepton_sim.planner.latency import capacity_table

    def guess(dist: Dist, n: int, budget: float, miss: float) -> float:
        kind, mean, cv, max_batch, max_wait_s = dist
        sd = ServiceDist(kind, mean, cv)  # type: ignore[arg-type]
        prof = BatchProfile(mean, mean, max_batch, max_wait_s, "service_time override", sd)
        try:
            table = capacity_table(prof, budget, miss, n, "tight", store=options.tables)
        except Exception:  # noqa: BLE001 - a guess only
            return 0.0
        return 0.0 if table is None else table.at(n)
    return guess


def run_one(seed: int, kind: str, options: PlanOptions) -> dict[str, Any]:
    s = parse_scenario(make_instance(seed, kind), file=f"<truth {kind} {seed}>")
    t0 = time.perf_counter()
    try:
        cost: float = plan(s, options).usd_per_hour
    except Infeasible:
        cost = math.inf
    wall = time.perf_counter() - t0
    if kind in ("lognormal", "batching"):
        guess = (planner_guess if kind == "lognormal" else planner_batching_guess)(options)
        search = simulation_capacity if kind == "lognormal" else batching_capacity
        found: dict[tuple[Dist, int, float, float], float] = {}

        def oracle(d: Dist, n: int, b: float, m: float) -> float:
            below = max((v for (d2, n2, b2, m2), v in found.items() if (d2, b2, m2) == (d, b, m) and n2 < n), default=0.0)
            found[(d, n, b, m)] = search(d, n, b, m, guess(d, n, b, m), below)
            return found[(d, n, b, m)]
    else:
        oracle = theory_capacity  # type: ignore[assignment]
    t1 = time.perf_counter()
    opt = exhaustive(s, oracle)  # one reference for every latency model (its network bound is the tight options')
    return {"kind": kind, "seed": seed, "plan": cost, "optimum": opt.usd_per_hour, "plan_s": wall,
            "exhaustive_s": time.perf_counter() - t1, "tried": opt.deployments_tried}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-kind", type=int, default=8, help="instances per service-time kind (default 8)")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--latency-model", choices=["tight", "bound"], default="tight")
    ap.add_argument("--seed", type=int, default=100, help="first instance seed")
    args = ap.parse_args(argv)
    options = PlanOptions(baselines=False, latency_model=args.latency_model)
    rows = []
    print(f"{'kind':<14}{'seed':>5}{'plan $/h':>11}{'optimum $/h':>13}{'ratio':>8}{'plan s':>8}{'exhaustive s':>14}")
    for kind in args.kinds:
        for i in range(args.per_kind):
            r = run_one(args.seed + i, kind, options)
            both_inf = math.isinf(r["plan"]) and math.isinf(r["optimum"])
            r["ratio"] = None if both_inf else r["plan"] / r["optimum"]  # None: infeasible, and the planner says so
            rows.append(r)
            ratio = "both infeasible" if r["ratio"] is None else f"{r['ratio']:>8.4f}"
            print(f"{kind:<14}{r['seed']:>5}{r['plan']:>11.4f}{r['optimum']:>13.4f} {ratio:>7}"
                  f"{r['plan_s']:>8.2f}{r['exhaustive_s']:>14.1f}", flush=True)
    print()
    for kind in [*args.kinds, "all"]:
        sel = [r for r in rows if kind in ("all", r["kind"])]
        ratios = [r["ratio"] for r in sel if r["ratio"] is not None and math.isfinite(r["ratio"])]
        false = sum(1 for r in sel if r["ratio"] is not None and math.isinf(r["ratio"]))
        agree = sum(1 for r in sel if r["ratio"] is None)
        walls = [r["plan_s"] for r in sel]
        summary = (f"ratio median {statistics.median(ratios):.4f}  worst {max(ratios):.4f}  best {min(ratios):.4f}"
                   if ratios else "ratio -")
        print(f"{kind:<14} {len(ratios):>2} planned, {false} falsely infeasible, {agree} infeasible (both agree)  "
              f"{summary}  planning wall median {statistics.median(walls):.2f} s, max {max(walls):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
