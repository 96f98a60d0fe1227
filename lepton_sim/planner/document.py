"""plan.json: the planner's output contract, built from the plan record (and a verify section built above it).

Top-level keys: `scenario`, `status` (optimal | feasible | infeasible), `usd_per_hour`, `cost`,
`deployment` (the scenario's shape; routing `weighted`, `weights` per line), `routing` (service ->
demand site -> pool id -> fraction), `predicted` (service -> `latency_ms` at the SLO percentile, a
bound, with `by_site`; an LLM service's is its TTFT, `metric` "ttft", with its TPOT under `tpot`),
`pools` (an LLM pool's with `tensor_parallel`, `devices` and `predicted_tpot_ms`), `demand`, `solver`, `solve_s`, `build_s`, `gap`, `bound_usd_per_hour`,
`plan_source`, `model` (size and pruning), `baselines` (a list of `name`, `usd_per_hour`, `status`,
`note`, `pools`), `verify` (null without --verify; with it, the section
`lepton_sim.verification.document` builds from the rounds, handed in as plain data so that the
planner does not depend on the simulator), `assumptions`, and `reasons` (when infeasible). Figures
are rounded to 6 significant digits except routing fractions, which are kept whole so that each
demand site's add up to 1.
"""
from __future__ import annotations

import math
from typing import Any

from lepton_sim.planner.capacity import LINEAR_TOLERANCE
from lepton_sim.planner.errors import Infeasible
from lepton_sim.planner.options import PlanOptions
from lepton_sim.planner.paths import NETWORK_SHARE
from lepton_sim.planner.result import PlanResult


def rounded(v: Any) -> Any:
    """Round floats to 6 significant digits, recursively (non-finite ones become null)."""
    if isinstance(v, float):
        if v == 0.0 or not math.isfinite(v):
            return v if math.isfinite(v) else None
        return round(v, 5 - int(math.floor(math.log10(abs(v)))))
    if isinstance(v, dict):
        return {k: rounded(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [rounded(x) for x in v]
    return v


_r = rounded


def assumptions(options: PlanOptions) -> dict[str, Any]:
    """The modelling choices a reader needs to judge the predictions."""
    return {
        "link_utilization": options.link_utilization,
        "network_miss_share": NETWORK_SHARE,
        "capacity_linear_tolerance": LINEAR_TOLERANCE,
        "energy_usd_per_kwh": options.energy_usd_per_kwh,
        "power_budget_w": dict(options.power_budget_w),
        "latency_model": options.latency_model,
        "capacity_model": ("per pool: exact M/M/c and M/D/c quantiles and a validated M/G/c approximation for pools "
                           "of batch 1 (lepton_sim/planner/latency.py), capacity tables measured by simulating each "
                           "batching pool alone with the engine's dispatch rule (lepton_sim/planner/measured.py; "
                           "sampling error in `tables`); predictions at the planned (peak) rates"
                           if options.latency_model == "tight" else
                           "per pool: Kingman bound on the queue (lepton_sim/planner/capacity.py); predicted "
                           "latencies are upper bounds at the planned (peak) rates"),
        "llm_capacity": ("an LLM replica's capacity is measured: the largest Poisson rate at which one replica, "
                         "simulated alone, keeps TTFT within the route's budget and TPOT within the target "
                         "(lepton_sim/planner/llm.py; bisection to 2 %), times the replica count"),
        "burst": "mmpp, diurnal and trace demand planned at their peak rate (lepton_sim/planner/demand.py)",
        "time_limit_s": options.time_limit_s,
        "gap_tolerance": options.gap,
    }


def plan_document(result: PlanResult, options: PlanOptions, verify: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plan.json object of a plan, with `verify` (already built, JSON-ready) as its verify section."""
    s = result.solve
    doc: dict[str, Any] = {
        "scenario": result.scenario,
        "status": s.status.value,
        "usd_per_hour": _r(result.usd_per_hour),
        "cost": _r({"replicas_usd_per_hour": result.costs.replicas, "egress_usd_per_hour": result.costs.egress,
                    "energy_usd_per_hour": result.costs.energy}),
        "deployment": result.deployment(),
        "routing": result.routing,
        "predicted": {name: _prediction(p) for name, p in result.predicted.items()},
        "pools": {p.id: _r({"service": p.key[0], "site": p.key[1], "hardware": p.key[2], "variant": p.key[3],
                            "replicas": p.count, "planned_rps": p.planned_rps, "capacity_rps": p.capacity_rps,
                            "planned_utilization": p.planned_rps / p.capacity_rps if p.capacity_rps else None,
                            "budget_ms": p.budget_s * 1e3, "predicted_ms": p.sojourn_s * 1e3,
                            "batch_ms": p.batch_s * 1e3, "capacity_factor": p.factor,
                            **({"tensor_parallel": p.tensor_parallel, "devices": p.count * p.tensor_parallel,
                                "predicted_tpot_ms": p.tpot_s * 1e3} if p.tpot_s is not None else {})})
                  for p in result.pools},
        "demand": _r(result.demand),
        "solver": s.solver,
        "solve_s": _r(s.solve_s),
        "build_s": _r(s.build_s),
        "gap": _r(s.gap),
        "bound_usd_per_hour": _r(s.bound_usd_per_hour),
        "plan_source": s.source,
        "model": {"variables": s.size.variables, "integer_variables": s.size.integer_variables,
                  "constraints": s.size.constraints, "groups": s.groups, "lazy_rounds": s.rounds,
                  "candidates": result.candidates, "arcs": result.arcs, "pruned": dict(result.pruned)},
        "baselines": _baselines(result),
        "tables": _r(dict(result.tables)) if result.tables else None,
        "verify": verify,
        "assumptions": assumptions(options),
    }
    return doc


def _prediction(p: Any) -> dict[str, Any]:
    """One service's prediction; an LLM service's is its TTFT (`metric` "ttft") with its TPOT under `tpot`."""
    out = {"percentile": p.percentile, "slo_ms": p.slo_ms, "latency_ms": _r(p.latency_ms),
           "by_site": {site: {"latency_ms": _r(ms)} for site, ms in p.by_site.items()}}
    if p.tpot is not None:
        out["metric"] = p.metric
        out["tpot"] = _prediction(p.tpot)
        out["tpot"]["metric"] = "tpot"
    return out


def _baselines(result: PlanResult) -> list[dict[str, Any]]:
    """One entry per baseline ("greedy", "single:<hardware>"), as `lepton_sim.report` reads them."""
    return [{"name": b.name, "usd_per_hour": _r(b.usd_per_hour),
             "status": "infeasible" if b.plan is None else b.plan.solve.status.value, "note": b.note,
             "pools": None if b.plan is None else {p.id: p.count for p in b.plan.pools}}
            for b in result.baselines]


def infeasible_document(scenario: str, error: Infeasible, options: PlanOptions) -> dict[str, Any]:
    """plan.json for a scenario with no feasible plan: status infeasible and the reasons by name."""
    return {"scenario": scenario, "status": "infeasible", "usd_per_hour": None, "deployment": None, "routing": None,
            "predicted": None, "solver": {"highs": "HiGHS", "cbc": "CBC"}[options.solver], "solve_s": None,
            "gap": None, "baselines": None, "verify": None, "reasons": [r.as_dict() for r in error.reasons],
            "assumptions": assumptions(options)}
