"""The plan.json object of a planner result (and of its verification), for sweeps and reports.

Keys follow SCENARIO.md: `status`, `usd_per_hour`, `deployment`, `routing` (service -> demand site
-> pool -> fraction), `predicted` (per service), `solver`, `solve_s`, `gap`, `baselines`, and with
verification `verify` (predicted against simulated latency per service, every round).
"""
from __future__ import annotations

from typing import Any

from lepton_sim.planner import Infeasible, PlanResult
from lepton_sim.planner.verify import Verified


def plan_document(result: PlanResult, verified: Verified | None = None) -> dict[str, Any]:
    """plan.json for a solved plan; `verified` adds the rounds of plan-simulate-tighten."""
    doc: dict[str, Any] = {
        "scenario": result.scenario,
        "status": result.solve.status.value,
        "usd_per_hour": result.usd_per_hour,
        "cost": {"replicas_usd_per_hour": result.costs.replicas, "egress_usd_per_hour": result.costs.egress,
                 "energy_usd_per_hour": result.costs.energy},
        "deployment": result.deployment(),
        "routing": result.routing,
        "predicted": {name: {"percentile": p.percentile, "slo_ms": p.slo_ms, "latency_ms": p.latency_ms,
                             "by_site": dict(p.by_site)} for name, p in result.predicted.items()},
        "pools": {p.id: {"count": p.count, "planned_rps": p.planned_rps, "capacity_rps": p.capacity_rps,
                         "sojourn_ms": p.sojourn_s * 1e3} for p in result.pools},
        "solver": result.solve.solver,
        "solve_s": result.solve.solve_s,
        "gap": result.solve.gap,
        "source": result.solve.source,
        "baselines": [{"name": b.name, "usd_per_hour": b.usd_per_hour,
                       "status": b.plan.solve.status.value if b.plan is not None else "infeasible", "note": b.note}
                      for b in result.baselines],
    }
    if verified is not None:
        doc["verify"] = verify_document(verified)
    return doc


def verify_document(verified: Verified) -> dict[str, Any]:
    """Every round's plan cost and, per service, predicted against simulated latency at the SLO percentile."""
    return {
        "seed": verified.seed,
        "met": verified.met,
        "rounds": [{"round": r.index, "usd_per_hour": r.plan.usd_per_hour, "met": r.met,
                    "services": {name: {"predicted_ms": c.predicted_ms, "simulated_ms": c.simulated_ms,
                                        "attainment": c.attainment, "met": c.met}
                                 for name, c in r.services.items()}}
                   for r in verified.rounds],
    }


def infeasible_document(scenario: str, exc: Infeasible) -> dict[str, Any]:
    """plan.json when no deployment meets every target: the reasons, by service and demand site."""
    return {"scenario": scenario, "status": "infeasible", "usd_per_hour": None,
            "reasons": [r.as_dict() for r in exc.reasons]}
