"""From a scenario to the planner's typed problem: demands, candidate pools, arcs, shared resources.

A **candidate** is one way to run a deployment line (service, site, hardware, variant): a latency
*tier* (the pool's budget is set by the farthest demand site it admits, so each distinct budget is
a tier) with its capacity at every replica count, from the options' latency model (`latency.py`:
`tight`, exact or validated per queue kind, or `bound`, `capacity.py`). An **arc** routes one
(service, demand site) to one candidate. A **resource** is a limit several candidates share: a
site's slots of one hardware type, a link direction's bandwidth, a site's power budget.

Pruned before any model is built (none of it can be in an optimal plan, or it is dominated):

- variants below the accuracy floor, that the hardware cannot run, or whose weights do not fit;
- per (service, site, hardware), a variant whose capacity is at most another's at every tier and
  count (the other is as fast: same price, same routes, at least the capacity); under the tight
  model every batch-1 variant but the fastest, before its tables are computed (`_fastest_single`);
- a tier that a wider tier of the same line dominates: at every count it could use, the wider one
  carries as much of the near tier's demand (typical when one replica carries all of it);
- arcs whose idle latency (network + the idle pool's quantile, `latency.idle_floor_s`; under the
  `bound` model network + max(w, T) + T) already misses the target, and tiers nobody can use;
- replica counts above what serving all of a tier's admitted demand needs, and tiers whose full
  slots carry under `NEGLIGIBLE` of their smallest admitted demand (budgets barely above the floor);
- resources that cannot bind: the most any optimal plan could use is within the limit.

**On several cores.** Services are prepared one by one, each from the scenario and the shared
routes alone, so a problem of `PARALLEL_MIN_SERVICES` or more (planned from a program's main
process on Linux, or with `PlanOptions.prep_workers`) is prepared by two forked children, a group
of services of one model and batching policy at a time (they share pool shapes, hence simulated
curves) to whichever is free; the parent merges the services back in the scenario's order, so the
problem is the one a single process builds (`tests/planner/test_prepare_parallel.py`), and puts
the tables the children made into the plan's store. Only the count of simulations and cache hits
in plan.json's `tables` depends on which child took which group.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from lepton_sim.network import Topology
from lepton_sim.planner.capacity import BatchProfile, CapacityTable
from lepton_sim.planner.demand import DemandKey, DemandRate, demand_rates
from lepton_sim.planner.errors import Reason, Why
from lepton_sim.planner.latency import capacity_table, feasible, idle_floor_s, with_distribution
from lepton_sim.planner.measured import MEMORY, STATS
from lepton_sim.planner.options import PlanOptions, PoolKey
from lepton_sim.planner.paths import NETWORK_SHARE, LinkDir, Path, Paths, message_bits, network_floor_s
from lepton_sim.planner.variants import ProfileCache, allowed_variants, compression_order, profile
from lepton_sim.scenario.schema import Scenario, Service, is_llm

VariantPolicy = Literal["best", "uncompressed"]  # every non-dominated variant, or the least compressed per hardware
PROGRESS_S = 2.0  # a plan that takes longer says how it is going this often (`PlanOptions.progress`)
NEGLIGIBLE = 1e-3  # a tier whose full capacity carries less than this share of any demand it admits is dropped


@dataclass(frozen=True)
class Candidate:
    """One tier of one deployment line: its capacity table (the model's) and the line's factor on it."""

    index: int
    key: PoolKey
    tier: int  # 0 admits only the nearest demand sites (largest budget)
    budget_s: float  # what the pool may add to the latency at the pool's miss probability
    miss: float  # the pool's miss probability: the strictest of the routes it admits
    profile: BatchProfile | None  # None for an LLM service's candidate (its replicas are measured: `llm`)
    table: CapacityTable  # counts 1..max_count
    factor: float
    max_count: int
    usd_per_hour: float  # replica price plus energy (every device of a tensor-parallel replica)
    power_w: float
    admits: tuple[str, ...]  # demand sites
    tensor_parallel: int = 1  # devices per replica (LLM services)
    llm: Any = None  # an LLM candidate's `planner.llm.LLMInfo`: its replica's measured curve and targets

    @property
    def line(self) -> tuple[PoolKey, int]:
        """The deployment line this candidate is a tier of: its key and tensor-parallel degree (an LLM service may
        run two degrees of one hardware type and variant at a site as two pools)."""
        return self.key, self.tensor_parallel

    def capacity_rps(self, count: int) -> float:
        """The planner's capacity for `count` replicas of this candidate (0 beyond `max_count`)."""
        return 0.0 if count > self.max_count else self.factor * self.table.at(count)


@dataclass(frozen=True)
class Arc:
    """Demand of one (service, demand site) routed to one candidate."""

    index: int
    demand: DemandKey
    candidate: int
    path: Path
    usd_per_hour_per_rps: float  # egress, per request per second of planned (peak) flow


@dataclass(frozen=True)
class Resource:
    """A limit shared by candidates (site hardware, power) or arcs (link direction)."""

    id: str
    kind: str  # "site", "link" or "power"
    limit: float
    candidate_coef: dict[int, float]  # per replica
    arc_coef: dict[int, float]  # per request per second
    services: frozenset[str]
    max_use: float  # the most any optimal plan could use


@dataclass
class Problem:
    """Everything the MILP, the baselines and the brute force share; indices are stable."""

    scenario: Scenario
    options: PlanOptions
    paths: Paths
    demands: dict[DemandKey, DemandRate]
    candidates: list[Candidate] = field(default_factory=list)
    arcs: list[Arc] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)
    pruned: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    arcs_of_demand: dict[DemandKey, list[int]] = field(default_factory=lambda: defaultdict(list))
    arcs_of_candidate: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    candidates_of_service: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    demand_keys_of_service: dict[str, list[DemandKey]] = field(default_factory=lambda: defaultdict(list))
    resources_of_service: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def demands_of(self, service: str) -> list[DemandRate]:
        return [self.demands[k] for k in self.demand_keys_of_service.get(service, [])]

    def route_miss(self, service: str) -> float:
        return 1.0 - self.scenario.services[service].slo.percentile / 100.0

    def pool_miss(self, service: str) -> float:
        """The pool's share of a route's miss probability (the links get the rest)."""
        return self.route_miss(service) * (1.0 - NETWORK_SHARE)

    def arc_miss(self, service: str, path: Path) -> float:
        """The pool's miss probability on one route: all of it on a route without links (tight model only)."""
        if path.hops == 0 and self.options.latency_model == "tight":
            return self.route_miss(service)
        return self.pool_miss(service)


def build_problem(scenario: Scenario, options: PlanOptions, variants: VariantPolicy = "best") -> Problem:
    """The planner's problem for `scenario`, pruned; `reasons` lists what cannot be served at all."""
    topology = Topology(scenario)
    demands = demand_rates(scenario)
    hosts = _hardware_sites(scenario, options)
    runnable: dict[str, dict[str, dict[str, BatchProfile]]] = {}
    reasons: list[Reason] = []
    cache = ProfileCache()
    llm = [name for name, svc in scenario.services.items() if is_llm(scenario.models[svc.model])]
    replicas: dict[str, list[Any]] = {}
    if llm:
        from lepton_sim.planner import llm_lines  # noqa: PLC0415 - only LLM scenarios need it

        replicas = llm_lines.replica_options(scenario, llm, hosts, options, variants, reasons)
    for name, svc in scenario.services.items():
        if name not in replicas:
            runnable[name] = _runnable(scenario, name, svc, hosts, variants, reasons, cache)
    routes = _possible_routes(scenario, options, topology, hosts, runnable)
    if llm:
        routes += llm_lines.possible_routes(scenario, topology, hosts, replicas)
    paths = Paths(scenario, options.link_utilization, topology, routes)
    p = Problem(scenario, options, paths, demands, reasons=reasons)
    for key in demands:
        p.demand_keys_of_service[key[0]].append(key)
    names = [name for name in scenario.services if runnable.get(name)]
    workers = _workers(options, len(names))
    if workers > 1:
        _add_services_in_parallel(p, names, hosts, runnable, workers)
    else:
        _add_services(p, names, hosts, runnable, Ticker(options.progress))
    if llm:
        llm_lines.add_llm_services(p, replicas, hosts, Ticker(options.progress))
    _add_resources(p)
    return p


class Ticker:
    """Calls `progress` with a line at most every PROGRESS_S seconds, the first after PROGRESS_S (short plans stay quiet)."""

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.progress = progress
        self.start = self.last = time.monotonic()

    def __call__(self, line: Callable[[], str], force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self.start >= PROGRESS_S and (force or now - self.last >= PROGRESS_S):
            self.last = now
            self.progress(f"{line()}, {now - self.start:.0f} s")


def _add_services(p: Problem, names: list[str], hosts: dict[str, list[tuple[str, int]]],
                  runnable: dict[str, dict[str, dict[str, BatchProfile]]], tell: Ticker) -> None:
    trials = STATS.trials
    for i, name in enumerate(names):
        _add_service(p, name, p.scenario.services[name], hosts, runnable[name])
        tell(lambda: f"planner: capacity tables of {i + 1}/{len(names)} services "
                     f"({STATS.trials - trials} pool simulations)")


# --- preparing a large problem on several cores ----------------------------------------------------------

PARALLEL_MIN_SERVICES = 100  # below this many services a problem is prepared in one process


def _workers(options: PlanOptions, services: int) -> int:
    """Processes to prepare the problem in: `options.prep_workers`, else, for a problem of PARALLEL_MIN_SERVICES
    or more planned from a program's main process (not a sweep's worker), up to 2 on Linux."""
    return prep_processes(options, services, PARALLEL_MIN_SERVICES)


def prep_processes(options: PlanOptions, jobs: int, minimum: int) -> int:
    """Forked processes for `jobs` independent pieces of preparation: `options.prep_workers`, else, from `minimum`
    jobs on in a program's main process (not a sweep's worker), up to 2 on Linux; 1 means this process."""
    if options.prep_workers is not None:
        n = options.prep_workers
    elif jobs >= minimum and multiprocessing.parent_process() is None:
        n = min(2, os.cpu_count() or 1)
    else:
        n = 1
    if n <= 1 or sys.platform != "linux" or multiprocessing.current_process().daemon:
        return 1  # fork is Linux's; a daemonic process may not start children
    return min(n, jobs)


class RecordingStore:
    """A table store for a preparing child: reads through to the plan's store, keeps what it adds for the parent
    (`added`, since it last handed them over; `kept`, handed over and still read here)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.added: dict[str, dict] = {}
        self.kept: dict[str, dict] = {}

    def get(self, key: str) -> dict | None:
        got = self.added.get(key)
        if got is None:
            got = self.kept.get(key)
        return got if got is not None else self.inner.get(key)

    def put(self, key: str, value: dict) -> None:
        self.added[key] = value

    @classmethod
    def copy_of(cls, tables: Any) -> RecordingStore:
        """A child's store over its own copy of the plan's `tables` (the in-process memory when None)."""
        return cls(pickle.loads(pickle.dumps(tables)) if tables is not None else MEMORY)

    def hand_over(self) -> dict[str, dict]:
        """The entries added since the last hand-over (still read here afterwards)."""
        added, self.added = self.added, {}
        self.kept.update(added)
        return added


def put_all(store: Any, added: dict[str, dict]) -> None:
    """Put a child's added entries into the plan's store (in one transaction where the store has one)."""
    if hasattr(store, "put_many"):
        store.put_many(added)
    else:
        for key, value in added.items():
            store.put(key, value)


@dataclass
class _Piece:
    """One service prepared apart: its candidates and arcs (numbered from 0), reasons and pruning counts."""

    name: str
    candidates: list[Candidate]
    arcs: list[Arc]
    reasons: list[Reason]
    pruned: dict[str, int]


@dataclass
class _Part:
    """What one child prepared: a piece per service, the tables it added, its measuring figures."""

    pieces: list[_Piece]
    added: dict[str, dict]
    stats: tuple[int, int, int, float, float]


_FORKED: tuple[Any, ...] = ()  # (problem, hosts, runnable) as the children inherit them


def _pieces(p: Problem, options: PlanOptions, names: list[str], hosts: dict[str, list[tuple[str, int]]],
            runnable: dict[str, dict[str, dict[str, BatchProfile]]], tell: Ticker, label: str) -> list[_Piece]:
    """Each service of `names` prepared into a problem of its own (the same steps as `_add_services`)."""
    out = []
    trials = STATS.trials
    for i, name in enumerate(names):
        q = Problem(p.scenario, options, p.paths, p.demands, demand_keys_of_service=p.demand_keys_of_service)
        _add_service(q, name, p.scenario.services[name], hosts, runnable[name])
        out.append(_Piece(name, q.candidates, q.arcs, q.reasons, dict(q.pruned)))
        tell(lambda: f"planner: capacity tables of {i + 1}/{len(names)} services{label} "
                     f"({STATS.trials - trials} pool simulations)")
    return out


_CHILD_STORE: RecordingStore | None = None  # a child's store, kept from one group to the next


def _prepare_part(names: list[str]) -> _Part:
    """In a child: prepare one group of services; return its pieces and the tables added since the last group."""
    global _CHILD_STORE
    p, hosts, runnable = _FORKED
    if _CHILD_STORE is None:
        _CHILD_STORE = RecordingStore.copy_of(p.options.tables)
    store = _CHILD_STORE
    before = replace(STATS)
    pieces = _pieces(p, p.options.with_(tables=store, progress=None), names, hosts, runnable, Ticker(None), "")
    stats = (STATS.entries - before.entries, STATS.trials - before.trials, STATS.cached - before.cached,
             STATS.seconds - before.seconds, STATS.worst_rel_se)
    return _Part(pieces, store.hand_over(), stats)


def _groups(p: Problem, names: list[str]) -> list[list[str]]:
    """`names` in groups of one model and batching policy (they share pool shapes, so a group's simulated curves
    are made once), largest first, each in the scenario's order."""
    by_shape: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for name in names:
        svc = p.scenario.services[name]
        by_shape[(svc.model, svc.batching.max_batch, svc.batching.max_wait_ms)].append(name)
    return sorted(by_shape.values(), key=lambda g: (-len(g), g[0]))


def _add_services_in_parallel(p: Problem, names: list[str], hosts: dict[str, list[tuple[str, int]]],
                              runnable: dict[str, dict[str, dict[str, BatchProfile]]], workers: int) -> None:
    """`_add_services` in `workers` forked children, a group of services (`_groups`) at a time to whichever is
    free, each service prepared apart and merged here in the scenario's order: the problem is the one a single
    process builds (every candidate's tables are a function of its inputs alone), and the tables the children
    made join the plan's store. When the children cannot start, this process does the work."""
    global _FORKED
    groups = _groups(p, names)
    tell = Ticker(p.options.progress)
    _FORKED = (p, hosts, runnable)
    try:
        pool = multiprocessing.get_context("fork").Pool(min(workers, len(groups)))
    except OSError:
        _FORKED = ()
        _add_services(p, names, hosts, runnable, tell)
        return
    store = p.options.tables if p.options.tables is not None else MEMORY
    pieces: dict[str, _Piece] = {}
    trials = STATS.trials
    try:
        for part in pool.imap_unordered(_prepare_part, groups):
            for piece in part.pieces:
                pieces[piece.name] = piece
            put_all(store, part.added)
            entries, n, cached, seconds, worst = part.stats
            STATS.entries += entries
            STATS.trials += n
            STATS.cached += cached
            STATS.seconds += seconds
            STATS.worst_rel_se = max(STATS.worst_rel_se, worst)
            tell(lambda: f"planner: capacity tables of {len(pieces)}/{len(names)} services in "
                         f"{min(workers, len(groups))} processes ({STATS.trials - trials} pool simulations)")
    finally:
        pool.terminate()
        _FORKED = ()
    for name in names:
        _merge(p, pieces[name])


def _merge(p: Problem, piece: _Piece) -> None:
    """Append one service's piece to `p` as if prepared here (indices shifted, maps rebuilt in order)."""
    c0, a0 = len(p.candidates), len(p.arcs)
    for c in piece.candidates:
        c = replace(c, index=c.index + c0)
        p.candidates.append(c)
        p.candidates_of_service[c.key[0]].append(c.index)
    for a in piece.arcs:
        a = replace(a, index=a.index + a0, candidate=a.candidate + c0)
        p.arcs.append(a)
        p.arcs_of_demand[a.demand].append(a.index)
        p.arcs_of_candidate[a.candidate].append(a.index)
    p.reasons.extend(piece.reasons)
    for k, v in piece.pruned.items():
        p.pruned[k] += v


def _hardware_sites(scenario: Scenario, options: PlanOptions) -> dict[str, list[tuple[str, int]]]:
    """Hardware type -> (site, capacity) where sites can hold it (within the options' type filter)."""
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for site, spec in scenario.sites.items():
        for hw, cap in spec.capacity.items():
            allowed = options.hardware is None or hw in options.hardware
            if cap > 0 and allowed and hw in scenario.hardware:
                out[hw].append((site, cap))
    return out


def _runnable(scenario: Scenario, name: str, svc: Service, hosts: dict[str, list[tuple[str, int]]],
              policy: VariantPolicy, reasons: list[Reason], cache: ProfileCache) -> dict[str, dict[str, BatchProfile]]:
    """Hardware -> variant -> batch profile, for the variants the service may run; reasons if none."""
    sites = sorted({d.site for d in svc.demand})
    allowed, why_not = allowed_variants(scenario, svc)
    if not allowed:
        reasons += [Reason(name, s, Why.ACCURACY, why_not) for s in sites]
        return {}
    model = scenario.models[svc.model]
    pool_miss = (1.0 - svc.slo.percentile / 100.0) * (1.0 - NETWORK_SHARE)
    out: dict[str, dict[str, BatchProfile]] = {}
    for hw in hosts:
        profs = {v: with_distribution(pr, svc) for v in allowed
                 if (pr := profile(scenario, svc, scenario.hardware[hw], v, pool_miss, cache))}
        if policy == "uncompressed" and profs:
            least = min(profs, key=lambda v: (compression_order(model.variants[v]), v))
            profs = {least: profs[least]}
        if profs:
            out[hw] = profs
    if not out:
        msg = (f"no hardware type at any site runs an allowed variant ({', '.join(allowed)}): precision not "
               "supported or weights larger than memory")
        reasons += [Reason(name, s, Why.HARDWARE, msg) for s in sites]
    return out


def _possible_routes(scenario: Scenario, options: PlanOptions, topology: Topology, hosts: dict[str, list[tuple[str, int]]],
                     runnable: dict[str, dict[str, dict[str, BatchProfile]]]) -> list[tuple[str, str, str]]:
    """(service, demand site, pool site) whose floor (propagation, serialisation, idle pool) fits the target."""
    bits = message_bits(scenario)
    out = []
    model = options.latency_model
    for name, by_hw in runnable.items():
        svc = scenario.services[name]
        miss = 1.0 - svc.slo.percentile / 100.0  # the most a pool gets (a route without links): the lowest floor
        floor_at: dict[str, float] = {}
        for hw, profs in by_hw.items():
            lowest = min(idle_floor_s(pr, miss, model) for pr in profs.values())
            for site, _ in hosts.get(hw, []):
                floor_at[site] = min(floor_at.get(site, math.inf), lowest)
        for src in sorted({d.site for d in svc.demand}):
            for dst, pool_floor in floor_at.items():
                route = topology.route(src, dst)
                if route is not None and network_floor_s(scenario, route, *bits[name]) + pool_floor <= svc.slo.latency_ms / 1e3:
                    out.append((name, src, dst))
    return out


def _add_service(p: Problem, name: str, svc: Service, hosts: dict[str, list[tuple[str, int]]],
                 runnable: dict[str, dict[str, BatchProfile]]) -> None:
    """Candidates and arcs of one service; a latency or capacity reason for each demand site left out."""
    demands = p.demands_of(name)
    slo_s = svc.slo.latency_ms / 1e3
    model = p.options.latency_model
    served: set[str] = set()
    best_idle: dict[str, tuple[float, str]] = {}  # idle latency, where
    for hw, sites in hosts.items():
        for site, cap in sites:
            for v, prof in runnable.get(hw, {}).items():
                for d in demands:
                    path = p.paths.path(name, d.site, site, p.route_miss(name))
                    if path is not None:
                        floor = idle_floor_s(prof, p.arc_miss(name, path), model)
                        idle = path.latency_s + floor
                        if d.site not in best_idle or idle < best_idle[d.site][0]:
                            best_idle[d.site] = (idle, f"{site}/{hw}/{v}: network {path.latency_s * 1e3:.2f} ms "
                                                       f"+ idle pool {floor * 1e3:.2f} ms")
            served |= _add_line(p, name, site, hw, cap, runnable.get(hw, {}), demands, slo_s)
    explain_unserved(p, name, demands, served, best_idle,
                     "no site holding hardware that runs this service is reachable over the network",
                     lambda idle, where: f"no site within the latency target: p{svc.slo.percentile:g} <= "
                                         f"{svc.slo.latency_ms:g} ms, best achievable {idle * 1e3:.2f} ms ({where})")


@dataclass(frozen=True)
class _Tier:
    """One latency tier of a line before it becomes a candidate."""

    index: int
    budget_s: float
    miss: float
    admits: tuple[str, ...]
    capacity: np.ndarray  # factor x the model's capacity at counts 1..site slots (held at its last value past the need)
    table: CapacityTable


def _add_line(p: Problem, name: str, site: str, hw: str, cap: int, profs: dict[str, BatchProfile],
              demands: list[DemandRate], slo_s: float) -> set[str]:
    """Add the candidates of every non-dominated variant at (site, hw); return the demand sites they admit."""
    if p.options.latency_model == "tight":
        profs = _fastest_single(p, profs)
    tiers = {v: _tiers(p, (name, site, hw, v), prof, demands, slo_s, cap) for v, prof in profs.items()}
    tiers = {v: t for v, t in tiers.items() if t}
    if not tiers:
        return set()
    keep = _undominated(profs, tiers)
    p.pruned["variants dominated at a site and hardware"] += len(tiers) - len(keep)
    peak = {d.site: d.peak_rps for d in demands}
    hw_spec = p.scenario.hardware[hw]
    price = hw_spec.cost_per_hour + hw_spec.power_w / 1e3 * p.options.energy_usd_per_kwh
    admitted: set[str] = set()
    for v in keep:
        key = (name, site, hw, v)
        useful = _useful_tiers(tiers[v], peak)
        p.pruned["tiers dominated by a wider tier"] += len(tiers[v]) - len(useful)
        for t in useful:
            if t.capacity[-1] < NEGLIGIBLE * min(peak[s] for s in t.admits):
                p.pruned["tiers with negligible capacity"] += 1
                continue
            _add_candidate(p, key, t, profs[v], cap, price, hw_spec.power_w, demands)
            admitted |= set(t.admits)
    return admitted


def _fastest_single(p: Problem, profs: dict[str, BatchProfile]) -> dict[str, BatchProfile]:
    """Batch-1 variants (tight model) less one a faster variant dominates, before any table is computed.

    At batch 1 every variant of a service has the same kind of service time (the override's, or the
    fixed t(1)): with the same distribution the tables are equal, and a shorter fixed time shortens
    every request's wait and service in a FIFO pool (sample path by sample path), so the variant with
    the least mean has, at every budget and count, at least the capacity of the others.
    """
    singles = sorted((pr.single.mean_s, pr.batch_s, v) for v, pr in profs.items() if pr.max_batch == 1)
    if len(singles) < 2:
        return profs
    keep = singles[0][2]
    dropped = {v for _, _, v in singles[1:]}
    p.pruned["variants dominated at a site and hardware"] += len(dropped)
    assert keep not in dropped
    return {v: pr for v, pr in profs.items() if v not in dropped}


def _tiers(p: Problem, key: PoolKey, prof: BatchProfile, demands: list[DemandRate], slo_s: float,
           cap: int) -> list[_Tier]:
    """The tiers of one line, widest budget (nearest demand sites only) first.

    A tier admits the sites whose budget is at least its level, and must meet each one's budget at
    that site's miss probability. A route without links (budget the whole target, the whole miss)
    is looser on both than any route with links, and routes with links share one miss, so the
    tier's strictest requirement is its level at the smallest miss among the sites it admits.
    """
    name, site = key[0], key[1]
    model = p.options.latency_model
    budgets: dict[str, float] = {}
    misses: dict[str, float] = {}
    for d in demands:
        path = p.paths.path(name, d.site, site, p.route_miss(name))
        if path is None:
            continue
        miss = p.arc_miss(name, path)
        if not feasible(prof, slo_s - path.latency_s, miss, model):
            p.pruned["arcs: idle latency misses the target"] += 1
            continue
        budgets[d.site], misses[d.site] = slo_s - path.latency_s, miss
    factor = p.options.factor(key)
    peak = {d.site: d.peak_rps for d in demands}
    out = []
    for i, level in enumerate(sorted(set(budgets.values()), reverse=True)):
        admits = tuple(sorted(s for s, b in budgets.items() if b >= level))
        miss = min(misses[s] for s in admits)
        enough = sum(peak[s] for s in admits) / factor * (1 + 1e-9) if factor > 0 else math.inf
        table = capacity_table(prof, level, miss, cap, model, enough, p.options.tables)
        assert table is not None  # every level is some admitted site's budget, feasible at its miss
        capacity = factor * np.array(table.rps + (table.rps[-1],) * (cap - len(table.rps)))
        out.append(_Tier(i, level, miss, admits, capacity, table))
    return out


def _add_candidate(p: Problem, key: PoolKey, t: _Tier, prof: BatchProfile, cap: int, price: float, power_w: float,
                   demands: list[DemandRate]) -> None:
    """One tier as a candidate, its counts cut to what its admitted demand needs, with its arcs."""
    name, site = key[0], key[1]
    factor = p.options.factor(key)
    peak = {d.site: d for d in demands}
    need = needed_count(t.capacity, sum(peak[s].peak_rps for s in t.admits))
    p.pruned["replica counts above the need"] += cap - need
    c = Candidate(len(p.candidates), key, t.index, t.budget_s, t.miss, prof, t.table.cut(need), factor, need, price,
                  power_w, t.admits)
    p.candidates.append(c)
    p.candidates_of_service[name].append(c.index)
    for s in t.admits:
        d = peak[s]
        path = p.paths.path(name, s, site, p.route_miss(name))
        assert path is not None
        egress = path.egress_usd_per_request * 3600.0 * d.mean_rps / d.peak_rps
        arc = Arc(len(p.arcs), d.key, c.index, path, egress)
        p.arcs.append(arc)
        p.arcs_of_demand[d.key].append(arc.index)
        p.arcs_of_candidate[c.index].append(arc.index)


def _undominated(profs: dict[str, BatchProfile], tiers: dict[str, list[_Tier]]) -> list[str]:
    """Variants not dominated by another: one dominates when it has every tier and at least the capacity in each."""
    keep: list[str] = []
    for v in sorted(tiers, key=lambda v: (profs[v].batch_s, v)):
        dominated = False
        for w in keep:
            by_level = {t.budget_s: t for t in tiers[w]}
            if all(t.budget_s in by_level and np.all(by_level[t.budget_s].capacity >= t.capacity - 1e-9)
                   for t in tiers[v]):
                dominated = True
                break
        if not dominated:
            keep.append(v)
    return keep


def _useful_tiers(tiers: list[_Tier], peak: dict[str, float]) -> list[_Tier]:
    """Tiers (widest budget first) that no wider tier dominates.

    Tier j (nearer sites, more capacity) is dominated by a later tier k when, at every count n,
    cap_k(n) >= min(cap_j(n), load_j): whatever tier j carries with n replicas, tier k carries too.
    """
    useful = []
    for j, tj in enumerate(tiers):
        carried = np.minimum(tj.capacity, sum(peak[s] for s in tj.admits))
        if not any(np.all(tk.capacity >= carried - 1e-9) for tk in tiers[j + 1:]):
            useful.append(tj)
    return useful


def needed_count(capacity: np.ndarray, rate: float) -> int:
    """The fewest replicas whose capacity covers `rate` (all of them if none does): more is never optimal."""
    enough = np.nonzero(capacity >= rate)[0]
    return int(enough[0]) + 1 if len(enough) else len(capacity)


def explain_unserved(p: Problem, name: str, demands: Sequence[DemandRate], served: set[str],
                     best: dict[str, tuple[float, str]], unreachable: str, why: Callable[[float, str], str]) -> None:
    """Per demand site of service `name`: precheck the capacity of one that some candidate serves, or
    give the reason none does (`unreachable` when no candidate is reachable at all, else `why` of the
    best figure seen and where)."""
    for d in demands:
        if d.site in served:
            capacity_precheck(p, d)
            continue
        msg = unreachable if d.site not in best else why(*best[d.site])
        p.reasons.append(Reason(name, d.site, Why.LATENCY, msg))


def capacity_precheck(p: Problem, d: DemandRate) -> None:
    """A demand whose reachable pools, all filled, cannot carry its peak rate alone is short of replicas."""
    best: dict[tuple[str, str, str], float] = {}
    per_replica = 0.0
    for ai in p.arcs_of_demand[d.key]:
        c = p.candidates[p.arcs[ai].candidate]
        full = c.capacity_rps(c.max_count)
        if c.llm is not None:  # lines of several degrees may share the slots: the best per device, in every slot
            full = full / (c.max_count * c.tensor_parallel) * p.scenario.sites[c.key[1]].capacity[c.key[2]]
        best[c.key[:3]] = max(best.get(c.key[:3], 0.0), full)  # one line per (site, hardware) at most counts
        per_replica = max(per_replica, full / c.max_count)
    total = sum(best.values())
    if total + 1e-9 >= d.peak_rps or per_replica <= 0:
        return
    short = math.ceil((d.peak_rps - total) / per_replica)
    p.reasons.append(Reason(d.service, d.site, Why.CAPACITY, (
        f"capacity short by {short} replica{'s' if short > 1 else ''}: planned peak {d.peak_rps:.6g} rps, at most {total:.6g} rps fit in "
        f"every slot within the latency target")))


def _add_resources(p: Problem) -> None:
    site_hw: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    power: dict[str, dict[int, float]] = defaultdict(dict)
    for c in p.candidates:
        _, site, hw, _ = c.key
        site_hw[(site, hw)][c.index] = float(c.tensor_parallel)  # devices per replica
        if site in p.options.power_budget_w:
            power[site][c.index] = c.power_w
    for (site, hw), coef in site_hw.items():
        _resource(p, f"site:{site}:{hw}", "site", float(p.scenario.sites[site].capacity[hw]), coef, {})
    for site, coef in power.items():
        _resource(p, f"power:{site}", "power", float(p.options.power_budget_w[site]), coef, {})
    links: dict[LinkDir, dict[int, float]] = defaultdict(dict)
    for arc in p.arcs:
        for d, bits in arc.path.loads:
            links[d][arc.index] = bits
    for d, coef in links.items():
        _resource(p, f"link:{p.paths.direction_name(d)}", "link", p.paths.limit_bps(d), {}, coef)


def _resource(p: Problem, rid: str, kind: str, limit: float, cand: dict[int, float], arcs: dict[int, float]) -> None:
    """Keep a resource only if some optimal plan could exceed it."""
    per_line: dict[tuple, float] = defaultdict(float)
    for ci, coef in cand.items():
        c = p.candidates[ci]
        per_line[c.line] = max(per_line[c.line], coef * c.max_count)  # one tier per line
    per_demand: dict[DemandKey, float] = defaultdict(float)
    for ai, coef in arcs.items():
        a = p.arcs[ai]
        per_demand[a.demand] = max(per_demand[a.demand], coef * p.demands[a.demand].peak_rps)
    max_use = sum(per_line.values()) + sum(per_demand.values())
    services = frozenset([p.candidates[ci].key[0] for ci in cand] + [p.arcs[ai].demand[0] for ai in arcs])
    if max_use <= limit * (1 + 1e-9):
        p.pruned[f"{kind} limits that cannot bind"] += 1
        return
    for s in services:
        p.resources_of_service[s].append(len(p.resources))
    p.resources.append(Resource(rid, kind, limit, cand, arcs, services, max_use))
