"""Status and gap: PuLP's (status, sol_status) pairs, and runs stopped by the time limit read as feasible."""
from __future__ import annotations

import numpy as np
import pulp
import pytest

from lepton_sim.planner import PlanOptions, PlanStatus, plan
from lepton_sim.planner import search
from lepton_sim.planner.document import plan_document
from lepton_sim.planner.solver import OPTIMAL_GAP, map_status, relative_gap, solve
from lepton_sim.scenario import parse_scenario


@pytest.mark.parametrize("status,sol_status,gap,expected", [
    (pulp.LpStatusOptimal, pulp.LpSolutionOptimal, 0.0, PlanStatus.OPTIMAL),
    (pulp.LpStatusOptimal, pulp.LpSolutionOptimal, None, PlanStatus.OPTIMAL),  # an LP: no MIP bound
    (pulp.LpStatusOptimal, pulp.LpSolutionOptimal, 0.004, PlanStatus.FEASIBLE),  # stopped by --gap
    (pulp.LpStatusOptimal, pulp.LpSolutionIntegerFeasible, 0.0, PlanStatus.FEASIBLE),  # time limit, PuLP says Optimal
    (pulp.LpStatusOptimal, pulp.LpSolutionIntegerFeasible, 0.02, PlanStatus.FEASIBLE),
    (pulp.LpStatusNotSolved, pulp.LpSolutionNoSolutionFound, None, PlanStatus.NO_SOLUTION),
    (pulp.LpStatusInfeasible, pulp.LpSolutionInfeasible, None, PlanStatus.INFEASIBLE),
    (pulp.LpStatusUnbounded, pulp.LpSolutionUnbounded, None, PlanStatus.UNBOUNDED),
])
def test_status_pairs(status: int, sol_status: int, gap: float | None, expected: PlanStatus) -> None:
    assert map_status(status, sol_status, gap) == expected


def test_relative_gap() -> None:
    assert relative_gap(100.0, 99.0) == pytest.approx(0.01)
    assert relative_gap(100.0, 100.0 + 1e-12) == 0.0
    assert relative_gap(0.0, 0.0) == 0.0 and relative_gap(5.0, None) is None
    assert OPTIMAL_GAP == 1e-4


def _knapsacks(n: int = 400, seed: int = 1) -> tuple[pulp.LpProblem, list[pulp.LpVariable], np.ndarray]:
    """A multi-dimensional knapsack (minimise the negative value) that no solver closes in a fraction of a second."""
    rng = np.random.default_rng(seed)
    lp = pulp.LpProblem("knapsacks", pulp.LpMinimize)
    x = [lp.add_variable(f"x{i}", 0, 3, pulp.LpInteger) for i in range(n)]
    w = rng.integers(100, 1000, size=(6, n))
    value = w[0] + rng.integers(-50, 50, size=n)
    for k in range(6):
        lp += pulp.lpSum(int(w[k, i]) * x[i] for i in range(n)) <= int(w[k].sum()) // 3, f"room{k}"
    lp += pulp.lpSum(-int(value[i]) * x[i] for i in range(n))
    return lp, x, value


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_a_run_stopped_by_the_time_limit_is_feasible_with_its_gap(solver: str) -> None:
    lp, x, value = _knapsacks()
    out = solve(lp, solver, 0.5, None)
    assert lp.status == pulp.LpStatusOptimal  # what PuLP's status alone would say
    assert lp.sol_status == pulp.LpSolutionIntegerFeasible
    assert out.status == PlanStatus.FEASIBLE
    objective = -sum(int(value[i]) * (v.varValue or 0) for i, v in enumerate(x))
    assert out.objective == pytest.approx(objective)
    assert out.bound is not None and out.bound < out.objective
    assert out.gap == pytest.approx((out.objective - out.bound) / abs(out.objective)) and out.gap > 0


def test_a_time_limited_plan_reports_feasible_never_optimal(generator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "MIN_SOLVE_S", 0.05)
    scenario = parse_scenario(generator(150, 20, seed=4), file="<generated>")
    opts = PlanOptions(time_limit_s=0.3, baselines=False)
    result = plan(scenario, opts)
    assert result.solve.status == PlanStatus.FEASIBLE
    assert result.solve.gap is not None and result.solve.gap > OPTIMAL_GAP
    assert plan_document(result, opts)["status"] == "feasible"
    assert result.usd_per_hour >= result.solve.bound_usd_per_hour
