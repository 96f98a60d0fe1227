"""Explain an infeasible group by name: solve its elastic version and read what had to give.

In the elastic model (`build_model(elastic=True)`) demand may go unserved and links and power
budgets may be overrun; the objective is the shortfall, unserved demand weighing far more than an
overrun. Site slots stay hard. So what stays unserved could not be placed even with unlimited
links and power (capacity), and each overrun names a link direction or a site whose limit stops
the plan. A second pass fixes the shortfall at its minimum and minimises cost, so the demands
named for an overrun are those the cheapest such plan sends through it.

The answer must not depend on which solver (or solver build) found it. The second pass may give
back only a sliver of the minimum shortfall (`PASS2_SLACK`, far below what counts), since a solver
spends any slack it is given to save cost: with a slack as large as the reporting threshold, HiGHS
1.16 left 1e-6 of a served demand unserved and the diagnosis named a second service. Only a
shortfall above `SHORT_TOL` of its demand or limit is a reason, a hundred times above that slack
and far above solver tolerances (1e-7 on rows).
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection

from lepton_sim.planner.errors import Infeasible, Reason, Why
from lepton_sim.planner.model import OVERRUN_WEIGHT, UNSERVED_WEIGHT, Built, build_model, overrun_unit, shortfall
from lepton_sim.planner.problem import Problem
from lepton_sim.planner.solver import PlanStatus, solve

SHORT_TOL = 1e-4  # relative to the demand or the limit: smaller shortfalls are not reasons
PASS2_SLACK = 1e-2 * SHORT_TOL * min(UNSERVED_WEIGHT, OVERRUN_WEIGHT)  # in the shortfall's weighted units


def diagnose(problem: Problem, services: Collection[str], solver: str, time_limit_s: float | None) -> Infeasible:
    """The `Infeasible` error for a group of services whose MILP has no solution."""
    built = build_model(problem, sorted(services), elastic=True, name="diagnose")
    first = solve(built.lp, solver, time_limit_s, None)
    reasons: list[Reason] = []
    if first.status in (PlanStatus.OPTIMAL, PlanStatus.FEASIBLE) and first.objective is not None:
        values = _values(built)
        assert built.cost is not None
        built.lp += shortfall(problem, built) <= first.objective * (1 + 1e-9) + PASS2_SLACK, "shortfall_at_minimum"
        built.lp.setObjective(built.cost)
        if solve(built.lp, solver, time_limit_s, None).status in (PlanStatus.OPTIMAL, PlanStatus.FEASIBLE):
            values = _values(built)
        unserved, overruns, flows = values
        reasons += _capacity(problem, unserved)
        reasons += _overruns(problem, overruns, flows)
    if not reasons:
        reasons = [Reason(s, "*", Why.CAPACITY, "the site slots within reach cannot hold every pool this service "
                          "needs alongside the others (no single demand is short on its own)") for s in sorted(services)]
    return Infeasible(reasons)


def _values(built: Built) -> tuple[dict, dict, dict[int, float]]:
    """(unserved per demand, (resource, overrun) per resource id, flow per arc) of the last solve."""
    return ({k: v.varValue or 0.0 for k, v in built.unserved.items()},
            {rid: (r, (v.varValue or 0.0) / overrun_unit(r)) for rid, (r, v) in built.overrun.items()},
            {ai: v.varValue or 0.0 for ai, v in built.flows.items()})


def _capacity(problem: Problem, unserved: dict[tuple[str, str], float]) -> list[Reason]:
    out = []
    for key, u in sorted(unserved.items()):
        d = problem.demands[key]
        if u <= SHORT_TOL * d.peak_rps:
            continue
        per_replica = 0.0
        reach: set[str] = set()
        for ai in problem.arcs_of_demand.get(key, []):
            c = problem.candidates[problem.arcs[ai].candidate]
            per_replica = max(per_replica, c.capacity_rps(c.max_count) / c.max_count)
            reach.add(f"{c.key[1]}/{c.key[2]}")
        if per_replica > 0:
            short = max(1, math.ceil(u / per_replica))
            where = ", ".join(sorted(reach))
            msg = (f"capacity short by {short} replica{'s' if short > 1 else ''} (of the best type within reach): "
                   f"{u:.6g} of {d.peak_rps:.6g} rps (planned peak) do not fit in the free slots within the "
                   f"latency target ({where})")
        else:
            msg = f"{u:.6g} of {d.peak_rps:.6g} rps (planned peak) have no pool within the latency target"
        out.append(Reason(d.service, d.site, Why.CAPACITY, msg))
    return out


def _overruns(problem: Problem, overruns: dict, flows: dict[int, float]) -> list[Reason]:
    out = []
    for rid, (r, v) in sorted(overruns.items()):
        if v <= SHORT_TOL * r.limit:
            continue
        users: dict[tuple[str, str], float] = defaultdict(float)
        if r.kind == "link":
            for ai, bits in r.arc_coef.items():
                if flows.get(ai, 0.0) > 0:
                    users[problem.arcs[ai].demand] += flows[ai] * bits
            cap_gbps = r.limit / problem.options.link_utilization / 1e9
            msg = (f"link bandwidth: {rid.split(':', 1)[1]} would carry {(r.limit + v) / 1e9:.4g} Gbit/s at peak, "
                   f"over its {r.limit / 1e9:.4g} Gbit/s ({cap_gbps:g} Gbit/s x link_utilization "
                   f"{problem.options.link_utilization:g})")
            why = Why.LINK
        else:
            for ai, a in enumerate(problem.arcs):
                if a.candidate in r.candidate_coef and flows.get(ai, 0.0) > 0:
                    users[a.demand] += flows[ai]
            msg = f"power budget: site {rid.split(':', 1)[1]} would draw {r.limit + v:.6g} W, over its budget of {r.limit:g} W"
            why = Why.POWER
        for key in sorted(users):
            out.append(Reason(key[0], key[1], why, msg))
    return out
