"""plan.json: the planner's output contract, built from the plan record (and the verify rounds).

Top-level keys: `scenario`, `status` (optimal | feasible | infeasible), `usd_per_hour`, `cost`,
`deployment` (the scenario's shape; routing `weighted`, `weights` per line), `routing` (service ->
demand site -> pool id -> fraction), `predicted` (service -> `latency_ms` at the SLO percentile, a
bound, with `by_site`), `pools`, `demand`, `solver`, `solve_s`, `build_s`, `gap`, `bound_usd_per_hour`,
`plan_source`, `model` (size and pruning), `baselines` (a list of `name`, `usd_per_hour`, `status`,
`note`, `pools`), `verify` (null without --verify),
`assumptions`, and `reasons` (when infeasible). Figures are rounded to 6 significant digits except
routing fractions, which are kept whole so that each demand site's add up to 1.
"""
from __future__ import annotations

import math
from typing import Any

from lepton_sim.planner.capacity import LINEAR_TOLERANCE
from lepton_sim.planner.errors import Infeasible
from lepton_sim.planner.options import PlanOptions, scenario_options
from lepton_sim.planner.paths import NETWORK_SHARE
from lepton_sim.planner.plan import plan
from lepton_sim.planner.result import PlanResult
from lepton_sim.planner.verify import Check, Round, Verified, verify
from lepton_sim.scenario.schema import Scenario


def _r(v: Any) -> Any:
    """Round floats to 6 significant digits, recursively."""
    if isinstance(v, float):
        if v == 0.0 or not math.isfinite(v):
            return v if math.isfinite(v) else None
        return round(v, 5 - int(math.floor(math.log10(abs(v)))))
    if isinstance(v, dict):
        return {k: _r(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_r(x) for x in v]
    return v


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
                           "of batch 1 (lepton_sim/planner/latency.py), a Kingman bound on the queue of a batching "
                           "pool (lepton_sim/planner/capacity.py); predictions at the planned (peak) rates"
                           if options.latency_model == "tight" else
                           "per pool: Kingman bound on the queue (lepton_sim/planner/capacity.py); predicted "
                           "latencies are upper bounds at the planned (peak) rates"),
        "burst": "mmpp, diurnal and trace demand planned at their peak rate (lepton_sim/planner/demand.py)",
        "time_limit_s": options.time_limit_s,
        "gap_tolerance": options.gap,
    }


def plan_document(result: PlanResult, options: PlanOptions, verified: Verified | None = None) -> dict[str, Any]:
    """The plan.json object of a plan (the final round's plan when verified)."""
    s = result.solve
    doc: dict[str, Any] = {
        "scenario": result.scenario,
        "status": s.status.value,
        "usd_per_hour": _r(result.usd_per_hour),
        "cost": _r({"replicas_usd_per_hour": result.costs.replicas, "egress_usd_per_hour": result.costs.egress,
                    "energy_usd_per_hour": result.costs.energy}),
        "deployment": result.deployment(),
        "routing": result.routing,
        "predicted": {name: {"percentile": p.percentile, "slo_ms": p.slo_ms, "latency_ms": _r(p.latency_ms),
                             "by_site": {site: {"latency_ms": _r(ms)} for site, ms in p.by_site.items()}}
                      for name, p in result.predicted.items()},
        "pools": {p.id: _r({"service": p.key[0], "site": p.key[1], "hardware": p.key[2], "variant": p.key[3],
                            "replicas": p.count, "planned_rps": p.planned_rps, "capacity_rps": p.capacity_rps,
                            "planned_utilization": p.planned_rps / p.capacity_rps if p.capacity_rps else None,
                            "budget_ms": p.budget_s * 1e3, "predicted_ms": p.sojourn_s * 1e3,
                            "batch_ms": p.batch_s * 1e3, "capacity_factor": p.factor})
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
        "verify": None if verified is None else _verify(verified),
        "assumptions": assumptions(options),
    }
    return doc


def _baselines(result: PlanResult) -> list[dict[str, Any]]:
    """One entry per baseline ("greedy", "single:<hardware>"), as `lepton_sim.report` reads them."""
    return [{"name": b.name, "usd_per_hour": _r(b.usd_per_hour),
             "status": "infeasible" if b.plan is None else b.plan.solve.status.value, "note": b.note,
             "pools": None if b.plan is None else {p.id: p.count for p in b.plan.pools}}
            for b in result.baselines]


def _check(c: Check) -> dict[str, Any]:
    return _r({"predicted_ms": c.predicted_ms, "simulated_ms": c.simulated_ms, "attainment": c.attainment,
               "met": c.met})


def _round(r: Round) -> dict[str, Any]:
    return {
        "round": r.index, "usd_per_hour": _r(r.plan.usd_per_hour), "status": r.plan.solve.status.value,
        "pools": {p.id: p.count for p in r.plan.pools},
        "services": {name: {**_check(c), "by_site": {site: _check(x) for site, x in r.by_site[name].items()}}
                     for name, c in r.services.items()},
        "met": r.met,
        "tightened": {name: _r(f) for name, f in r.tightened.items()},  # service -> capacity factor next round
    }


def _verify(v: Verified) -> dict[str, Any]:
    return {"met": v.met, "seed": v.seed, "rounds": [_round(r) for r in v.rounds]}


def infeasible_document(scenario: str, error: Infeasible, options: PlanOptions) -> dict[str, Any]:
    """plan.json for a scenario with no feasible plan: status infeasible and the reasons by name."""
    return {"scenario": scenario, "status": "infeasible", "usd_per_hour": None, "deployment": None, "routing": None,
            "predicted": None, "solver": {"highs": "HiGHS", "cbc": "CBC"}[options.solver], "solve_s": None,
            "gap": None, "baselines": None, "verify": None, "reasons": [r.as_dict() for r in error.reasons],
            "assumptions": assumptions(options)}


def plan_outputs(scenario: Scenario, seed: int | None, with_verify: bool,
                 options: PlanOptions = PlanOptions()) -> dict[str, Any]:
    """What a sweep point of mode `plan` / `plan+verify` yields: {"plan": plan.json, "metrics": metrics.json}.

    An infeasible scenario gives its plan.json (status infeasible, reasons) and no metrics instead of
    raising, so the sweep row records the status; `NoPlan` and bad input still raise.
    """
    options = scenario_options(scenario, options)
    try:
        if with_verify:
            verified = verify(scenario, options, seed=seed)
            return {"plan": plan_document(verified.final.plan, options, verified), "metrics": verified.final.metrics}
        return {"plan": plan_document(plan(scenario, options), options)}
    except Infeasible as exc:
        return {"plan": infeasible_document(scenario.name, exc, options), "metrics": None}
