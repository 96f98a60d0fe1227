"""A plan as an immutable record: pools, routing fractions, cost and predicted latency, from a solution.

Every figure is recomputed from the chosen counts and flows (not read back from the solver's
objective): replica cost at each type's price, egress on the mean rate, energy at busy power, and
the latency of each route at its pool's planned peak load (`latency.sojourn_quantile_s`; an LLM pool's
TTFT and TPOT from its replica's measured curve at its share of that load, `planner.llm.ReplicaCurve`).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from lepton_sim.planner.latency import sojourn_quantile_s
from lepton_sim.planner.model import ModelSize
from lepton_sim.planner.options import PoolKey
from lepton_sim.planner.problem import Problem
from lepton_sim.planner.solver import PlanStatus

MIN_FRACTION = 1e-9  # routing fractions below this are dropped (solver noise)


def pool_id(key: PoolKey, ordinal: int = 1) -> str:
    """The id the simulator gives the pool of one deployment line: the `ordinal`-th line of its key gets `#ordinal`
    after it from the second on (`scenario.schema.pool_ids`)."""
    base = f"{key[0]}@{key[1]}/{key[2]}/{key[3]}"
    return base if ordinal == 1 else f"{base}#{ordinal}"


@dataclass(frozen=True)
class PoolPlan:
    """One deployment line of the plan and what the planner assumes about it."""

    key: PoolKey
    count: int
    planned_rps: float  # peak rate routed here
    capacity_rps: float  # the model's capacity at `count` (factor applied)
    budget_s: float  # latency the pool may add (its tier)
    sojourn_s: float  # the pool's latency at its miss probability at the planned rate (a bound under `bound`)
    batch_s: float
    factor: float
    weights: dict[str, float]  # demand site -> fraction of that site's demand
    tensor_parallel: int = 1  # devices per replica (LLM services)
    tpot_s: float | None = None  # an LLM pool: its replicas' TPOT at the target's percentile at the planned rate
    ordinal: int = 1  # the pool's place among the plan's pools of its key (two tensor-parallel degrees: 1 and 2)

    @property
    def id(self) -> str:
        return pool_id(self.key, self.ordinal)


@dataclass(frozen=True)
class Prediction:
    """Predicted latency at the SLO percentile for one service, overall and per demand site: the network bound plus
    the pool's latency at its share of the miss (exact or approximate per queue kind under the tight model, a bound
    under `bound` and for batching pools)."""

    percentile: float
    slo_ms: float
    latency_ms: float
    by_site: dict[str, float]
    metric: str = "latency"  # "ttft" for an LLM service (then `tpot` holds its TPOT prediction)
    tpot: Prediction | None = None


@dataclass(frozen=True)
class Costs:
    replicas: float
    egress: float
    energy: float  # included in `replicas` price when an energy price is set; shown apart

    @property
    def total(self) -> float:
        return self.replicas + self.egress


@dataclass(frozen=True)
class SolveInfo:
    """How the plan was found."""

    status: PlanStatus
    solver: str
    solve_s: float
    build_s: float
    gap: float | None
    bound_usd_per_hour: float | None
    size: ModelSize
    groups: int
    rounds: int
    source: str = "milp"  # or the baseline that beat a time-limited MILP


@dataclass(frozen=True)
class PlanResult:
    """The plan: what to deploy, how to route, what it costs and what latency the model predicts."""

    scenario: str
    pools: tuple[PoolPlan, ...]
    routing: dict[str, dict[str, dict[str, float]]]  # service -> demand site -> pool id -> fraction
    predicted: dict[str, Prediction]
    costs: Costs
    solve: SolveInfo
    demand: dict[str, dict[str, dict[str, Any]]]
    pruned: dict[str, int]
    candidates: int
    arcs: int
    replica_usd_per_hour: dict[str, float]  # per hardware type: price plus energy
    baselines: tuple[Any, ...] = field(default=())
    tables: dict[str, Any] = field(default_factory=dict)  # measured capacity tables: entries, trials, cache hits, error

    @property
    def usd_per_hour(self) -> float:
        return self.costs.total

    def deployment(self) -> dict[str, Any]:
        """The scenario `deployment` mapping: one line per pool with its weights, routing `weighted`."""
        lines = [{"service": p.key[0], "site": p.key[1], "hardware": p.key[2], "variant": p.key[3],
                  "count": p.count, **({"tensor_parallel": p.tensor_parallel} if p.tensor_parallel > 1 else {}),
                  "weights": dict(p.weights)} for p in self.pools]
        return {"replicas": lines, "routing": "weighted"}


def assemble(problem: Problem, counts: dict[int, int], flows: dict[int, float], solve: SolveInfo) -> PlanResult:
    """The plan record of a solution (candidate counts, arc flows) of `problem`."""
    sc = problem.scenario
    by_demand: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for ai, f in flows.items():
        if f > 0 and counts.get(problem.arcs[ai].candidate, 0) > 0:  # noise on a closed pool is dropped
            by_demand[problem.arcs[ai].demand][ai] = f
    fractions: dict[int, float] = {}
    for fl in by_demand.values():
        total = sum(fl.values())
        kept = {ai: f / total for ai, f in fl.items() if f / total >= MIN_FRACTION}
        norm = sum(kept.values())
        fractions.update({ai: v / norm for ai, v in kept.items()})
    load: dict[int, float] = defaultdict(float)
    for ai, frac in fractions.items():
        a = problem.arcs[ai]
        load[a.candidate] += frac * problem.demands[a.demand].peak_rps

    pools: list[PoolPlan] = []
    pool_of: dict[int, PoolPlan] = {}  # candidate -> its pool
    of_key: dict[PoolKey, int] = defaultdict(int)  # pools of each key so far
    for ci in sorted(load, key=lambda i: problem.candidates[i].line):
        c, n = problem.candidates[ci], counts[ci]
        of_key[c.key] += 1
        ordinal = of_key[c.key]  # its place among the pools of its key
        weights = {problem.arcs[ai].demand[1]: fractions[ai] for ai in problem.arcs_of_candidate[ci] if ai in fractions}
        if c.llm is not None:  # the measured replica at its share of the load (the factor's correction applied)
            per = load[ci] / n / c.factor if c.factor > 0 else load[ci] / n
            sojourn = c.llm.curve.at(per, c.llm.ttft_level, "ttft_s")
            tpot = c.llm.curve.at(per, c.llm.tpot_level, "tpot_s")
            pools.append(PoolPlan(c.key, n, load[ci], c.capacity_rps(n), c.budget_s, sojourn, 0.0, c.factor, weights,
                                  c.tensor_parallel, tpot, ordinal))
            pool_of[ci] = pools[-1]
            continue
        assert c.profile is not None
        sojourn = sojourn_quantile_s(c.profile, load[ci], n, c.miss, problem.options.latency_model)
        pools.append(PoolPlan(c.key, n, load[ci], c.capacity_rps(n), c.budget_s, sojourn, c.profile.batch_s,
                              c.factor, weights, ordinal=ordinal))
        pool_of[ci] = pools[-1]
    if len({(p.key, p.tensor_parallel) for p in pools}) != len(pools):
        raise ValueError("a solution opened two tiers of one deployment line")

    routing: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    route_ms: dict[str, dict[str, float]] = defaultdict(dict)
    tpot_ms: dict[str, dict[str, float]] = defaultdict(dict)
    egress = 0.0
    for ai, frac in fractions.items():
        a = problem.arcs[ai]
        svc, site = a.demand
        pool = pool_of[a.candidate]
        routing[svc][site][pool.id] = frac
        ms = (a.path.latency_s + pool.sojourn_s) * 1e3
        route_ms[svc][site] = max(route_ms[svc].get(site, 0.0), ms)
        if pool.tpot_s is not None:
            tpot_ms[svc][site] = max(tpot_ms[svc].get(site, 0.0), pool.tpot_s * 1e3)
        egress += a.path.egress_usd_per_request * 3600.0 * problem.demands[a.demand].mean_rps * frac

    predicted = {}
    for svc, sites in route_ms.items():
        slo = sc.services[svc].slo
        if slo.ttft is not None and slo.tpot is not None and svc in tpot_ms:  # an LLM service: TTFT, and TPOT
            tp = tpot_ms[svc]
            tpot = Prediction(slo.tpot.percentile, slo.tpot.latency_ms, max(tp.values()), dict(sorted(tp.items())),
                              "tpot")
            predicted[svc] = Prediction(slo.ttft.percentile, slo.ttft.latency_ms, max(sites.values()),
                                        dict(sorted(sites.items())), "ttft", tpot)
            continue
        predicted[svc] = Prediction(slo.percentile, slo.latency_ms, max(sites.values()), dict(sorted(sites.items())))
    hw = sc.hardware
    replicas = sum(p.count * p.tensor_parallel * hw[p.key[2]].cost_per_hour for p in pools)
    energy = sum(p.count * p.tensor_parallel * hw[p.key[2]].power_w / 1e3 * problem.options.energy_usd_per_kwh
                 for p in pools)
    demand: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in sc.services}
    for d in problem.demands.values():
        demand[d.service][d.site] = {"mean_rps": d.mean_rps, "planned_rps": d.peak_rps, "basis": d.basis}
    return PlanResult(
        scenario=sc.name, pools=tuple(pools),
        routing={s: {site: dict(v) for site, v in sites.items()} for s, sites in routing.items()},
        predicted=predicted, costs=Costs(replicas + energy, egress, energy), solve=solve, demand=demand,
        pruned=dict(problem.pruned), candidates=len(problem.candidates), arcs=len(problem.arcs),
        replica_usd_per_hour={name: spec.cost_per_hour + spec.power_w / 1e3 * problem.options.energy_usd_per_kwh
                              for name, spec in hw.items()},
    )
