"""`plan(scenario, options)`: the cheapest deployment meeting every target under the planner's model."""
from __future__ import annotations

from dataclasses import replace

from lepton_sim.planner.baselines import Baseline, greedy_baseline, llm_baselines, single_type_baselines
from lepton_sim.planner.errors import Infeasible
from lepton_sim.planner.measured import STATS, Stats
from lepton_sim.planner.options import PlanOptions
from lepton_sim.planner.problem import Problem, Ticker, build_problem
from lepton_sim.planner.result import PlanResult, SolveInfo, assemble
from lepton_sim.planner.search import solve_problem
from lepton_sim.planner.solver import PlanStatus, relative_gap
from lepton_sim.planner.training import reserved
from lepton_sim.scenario.schema import Scenario


def plan(scenario: Scenario, options: PlanOptions = PlanOptions()) -> PlanResult:
    """Plan `scenario` (its deployment is ignored); raises `Infeasible` with reasons, or `NoPlan`.

    With `options.baselines`, the greedy and single-type plans are computed too and attached; a
    baseline that beats a time-limited MILP incumbent (all are feasible under the same model) is
    returned instead, marked as such, with the gap against the MILP's bound.
    """
    before = replace(STATS)
    tell = Ticker(options.progress)
    scenario = reserved(scenario)  # the training jobs' devices are theirs
    problem = build_problem(scenario, options)
    if problem.reasons:
        raise Infeasible(problem.reasons)
    limit = "" if options.time_limit_s is None else f", at most {options.time_limit_s:g} s"
    tell(lambda: f"planner: solving the MILP over {len(problem.candidates)} candidate pools with "
                 f"{options.solver}{limit}", force=True)
    sol = solve_problem(problem)
    info = SolveInfo(sol.status, sol.solver, sol.solve_s, sol.build_s, sol.gap, sol.bound, sol.size, sol.groups,
                     sol.rounds)
    result = assemble(problem, sol.counts, sol.flows, info)
    result = replace(result, tables=_table_stats(problem, before))
    if not options.baselines:
        return result
    baselines = [greedy_baseline(build_problem(scenario, options, variants="uncompressed"))]
    baselines += single_type_baselines(problem)
    baselines += llm_baselines(problem)
    best = min((b for b in baselines if b.plan is not None), key=lambda b: b.usd_per_hour or 0.0, default=None)
    result = replace(result, baselines=tuple(baselines))
    if best is not None and best.plan is not None and best.plan.usd_per_hour < result.usd_per_hour - 1e-9:
        result = _adopt(result, best)
    return result


def _table_stats(problem: Problem, before: Stats) -> dict:
    """What the measured capacity tables of this plan cost and how precise they are (plan.json `tables`)."""
    errors = [c.table.rel_se for c in problem.candidates if c.table.rel_se is not None]
    measured = problem.options.latency_model == "tight"
    return {"measured_candidates": sum(1 for c in problem.candidates
                                                   if c.llm is not None or (measured and c.profile is not None
                                                                           and c.profile.max_batch > 1)),
            "entries": STATS.entries - before.entries, "simulations": STATS.trials - before.trials,
            "cache_hits": STATS.cached - before.cached, "simulation_s": round(STATS.seconds - before.seconds, 3),
            "worst_rel_se": max(errors) if errors else None,
            "median_rel_se": sorted(errors)[len(errors) // 2] if errors else None}


def _adopt(result: PlanResult, best: Baseline) -> PlanResult:
    """A baseline's plan in place of a worse MILP incumbent, keeping the MILP's bound and solve figures."""
    assert best.plan is not None
    gap = relative_gap(best.plan.usd_per_hour, result.solve.bound_usd_per_hour)
    status = PlanStatus.OPTIMAL if gap is not None and gap <= 1e-9 else PlanStatus.FEASIBLE
    solve = replace(result.solve, status=status, gap=gap, source=best.name)
    return replace(best.plan, solve=solve, baselines=result.baselines, tables=result.tables)
