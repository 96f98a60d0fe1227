"""Run a PuLP model on HiGHS (highspy, in process) or CBC (PuLP's bundled binary); read status and gap.

Status comes from both of PuLP's fields: `status` says "Optimal" even when the time limit stopped
the search with an incumbent; only `sol_status` (2: integer feasible) tells the difference. A run is
`optimal` only when the solver proved it (to `OPTIMAL_GAP`), else `feasible` with its gap.

The gap is `(objective - best bound) / |objective|`:

- HiGHS: `Highs.getInfo().mip_dual_bound` (the best bound of the branch and bound) and
  `mip_gap`, read from the `highspy.Highs` object PuLP leaves in `lp.solverModel`;
- CBC: PuLP does not read a bound, so CBC's log goes to a file (`logPath`) and the bound is taken
  from its closing block (`Lower bound:`, printed when it stopped early); a proven optimum prints
  no bound line and its gap is 0.

The objective is always recomputed from the variable values (CBC's log can print a pre-
postprocessing objective), and a bound above it is clamped to it.

HiGHS runs in this process, so two of its habits are contained here: highspy 1.16 prints a banner
on stdout when a `Highs` object is made, before any option can silence it (it goes to /dev/null
with `msg=False`, so `plan --json` stays parseable), and its thread pool outlives the solve (it is
shut down after each solve, so a process that forks later holds no half-owned solver locks; sweep
workers are not forked in any case, see `lepton_sim.sweeps.executors`).
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pulp

OPTIMAL_GAP = 1e-4  # HiGHS's default mip_rel_gap: below it a solution counts as proven optimal

# HiGHS 1.15.1 (the newest highspy): with capacity written as tangent pieces (on/off binaries,
# negative intercepts) its root reduced-cost sub-MIP lifted the global dual bound past feasible
# plans (one service: 0.575 $/h reported optimal where 0.065 is feasible; see ERGO-Code/HiGHS#3273,
# #3170 for the family). The model now uses ordered increments instead (lepton_sim.planner.model),
# on which HiGHS agrees with an independent check on every service of the generated instances
# (tests/planner/test_plan_solvers.py); the heuristic stays off as a guard, and it is also faster
# here (the 500-service instance proves optimality in 40 s instead of 67 s).
HIGHS_WORKAROUNDS = {"mip_heuristic_run_root_reduced_cost": False}


class PlanStatus(str, Enum):
    """The outcome of a solve (plan.json's `status` takes the first three)."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"  # stopped before any feasible solution; infeasibility not proven
    UNBOUNDED = "unbounded"


@dataclass(frozen=True)
class Outcome:
    """What one solve returned."""

    status: PlanStatus
    objective: float | None
    bound: float | None
    gap: float | None
    solve_s: float
    solver: str


def map_status(status: int, sol_status: int, gap: float | None) -> PlanStatus:
    """PuLP's (status, sol_status) pair and the measured gap -> the plan status."""
    if status == pulp.LpStatusInfeasible or sol_status == pulp.LpSolutionInfeasible:
        return PlanStatus.INFEASIBLE
    if status == pulp.LpStatusUnbounded or sol_status == pulp.LpSolutionUnbounded:
        return PlanStatus.UNBOUNDED
    if status == pulp.LpStatusOptimal and sol_status == pulp.LpSolutionOptimal:
        return PlanStatus.OPTIMAL if gap is None or gap <= OPTIMAL_GAP else PlanStatus.FEASIBLE
    if status == pulp.LpStatusOptimal and sol_status == pulp.LpSolutionIntegerFeasible:
        return PlanStatus.FEASIBLE
    return PlanStatus.NO_SOLUTION


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """(objective - bound) / |objective| for a minimisation, 0 when both are 0; None if unknown."""
    if objective is None or bound is None or not math.isfinite(bound):
        return None
    diff = max(objective - bound, 0.0)
    if diff <= 1e-9 * max(1.0, abs(objective)):
        return 0.0
    return diff / abs(objective) if objective else math.inf


class _HiGHSBulk(pulp.HiGHS):  # type: ignore[misc, valid-type]
    """PuLP's HiGHS interface, passing the model in one call.

    PuLP's own transfer adds every column and row through a Python call each, which for a model
    of 100k rows takes seconds before HiGHS's clock (and its time limit) even starts; here the
    rows go over as one row-wise sparse matrix (`Highs.passModel`). Indices are set as PuLP's
    `findSolutionValues` expects them.
    """

    def createAndConfigureSolver(self, lp: pulp.LpProblem) -> None:
        with _stdout_to_devnull() if not self.msg else contextlib.nullcontext():
            super().createAndConfigureSolver(lp)

    def buildSolverModel(self, lp: pulp.LpProblem) -> None:
        import highspy

        inf = highspy.kHighsInf
        sense = -1.0 if lp.sense == pulp.LpMaximize else 1.0
        cols = lp.variables()
        for i, v in enumerate(cols):
            v.index = i
        model = highspy.HighsLp()
        model.num_col_ = len(cols)
        model.col_cost_ = np.array([sense * lp.objective.get(v, 0.0) for v in cols], dtype=np.float64)
        model.col_lower_ = np.array([-inf if v.lowBound is None else v.lowBound for v in cols], dtype=np.float64)
        model.col_upper_ = np.array([inf if v.upBound is None else v.upBound for v in cols], dtype=np.float64)
        starts, index, value, lower, upper = [0], [], [], [], []
        for i, row in enumerate(lp._constraints.values()):
            row.index = i
            for v, coef in row.items():
                if coef != 0:
                    index.append(v.index)
                    value.append(coef)
            starts.append(len(index))
            lb, ub = row.getLb(), row.getUb()
            lower.append(-inf if lb is None else lb)
            upper.append(inf if ub is None else ub)
        model.num_row_ = len(lower)
        model.row_lower_ = np.array(lower, dtype=np.float64)
        model.row_upper_ = np.array(upper, dtype=np.float64)
        model.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        model.a_matrix_.num_col_ = len(cols)
        model.a_matrix_.num_row_ = len(lower)
        model.a_matrix_.start_ = np.array(starts, dtype=np.int32)
        model.a_matrix_.index_ = np.array(index, dtype=np.int32)
        model.a_matrix_.value_ = np.array(value, dtype=np.float64)
        if self.mip and any(v.cat == pulp.LpInteger for v in cols):
            model.integrality_ = [highspy.HighsVarType.kInteger if v.cat == pulp.LpInteger
                                  else highspy.HighsVarType.kContinuous for v in cols]
        lp.solverModel.passModel(model)


def solve(lp: pulp.LpProblem, solver: str, time_limit_s: float | None, gap: float | None,
          threads: int | None = None) -> Outcome:
    """Solve `lp` (a minimisation) with "highs" or "cbc" and read status, objective, bound and gap.

    No MIP start is passed: on this model both HiGHS 1.15.1 (`Highs.setSolution`: the search closed
    at node 0 declaring a greedy start of 0.084 $/h optimal where 0.065 was feasible) and the bundled
    CBC (`-mips`) returned a start-dependent wrong "optimal" plan in testing.
    """
    t0 = time.perf_counter()
    if solver == "highs":
        cmd = _HiGHSBulk(msg=False, timeLimit=time_limit_s, gapRel=gap, threads=threads, **HIGHS_WORKAROUNDS)
        try:
            lp.solve(cmd)
            bound = _highs_bound(lp)
        finally:
            _stop_highs_threads()
        name = "HiGHS"
    elif solver == "cbc":
        fd, log = tempfile.mkstemp(prefix="lepton-cbc-", suffix=".log")
        os.close(fd)
        try:
            with warnings.catch_warnings():  # PuLP 3 deprecates its bundled CBC for PuLP 4; pyproject pins pulp < 4
                warnings.simplefilter("ignore", DeprecationWarning)
                cmd = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=gap, threads=threads, logPath=log)
            lp.solve(cmd)
            with open(log, encoding="utf-8", errors="replace") as fh:
                bound = _cbc_bound(fh.read())
        finally:
            os.unlink(log)
        name = "CBC"
    else:
        raise ValueError(f"unknown solver {solver!r}; use highs or cbc")
    solve_s = time.perf_counter() - t0
    found = lp.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    objective = (pulp.value(lp.objective) or 0.0) if found else None  # from the values, whatever the log says
    if objective is not None:
        bound = objective if bound is None and lp.sol_status == pulp.LpSolutionOptimal else bound
        bound = None if bound is None else min(bound, objective)
    g = relative_gap(objective, bound)
    status = map_status(lp.status, lp.sol_status, g)
    if status == PlanStatus.OPTIMAL:
        g = g or 0.0
    return Outcome(status, objective if status in (PlanStatus.OPTIMAL, PlanStatus.FEASIBLE) else None,
                   bound, g, solve_s, name)


@contextlib.contextmanager
def _stdout_to_devnull():  # type: ignore[no-untyped-def]
    """Send file descriptor 1 (where native code prints) to /dev/null for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _stop_highs_threads() -> None:
    """End HiGHS's worker threads (they restart on the next solve); a no-op on builds without the call."""
    import highspy

    reset = getattr(highspy.Highs, "resetGlobalScheduler", None)
    if reset is not None:
        reset(True)


def _highs_bound(lp: pulp.LpProblem) -> float | None:
    """HiGHS's best bound (`mip_dual_bound`) of a MIP; None for an LP (it is its own bound when optimal)."""
    h = getattr(lp, "solverModel", None)
    if h is None or not lp.isMIP():
        return None
    bound = float(h.getInfo().mip_dual_bound)
    return bound if math.isfinite(bound) else None


_CBC_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


def _cbc_bound(log: str) -> float | None:
    """CBC's `Lower bound:` in its closing block (printed when it stopped before proving optimality)."""
    low = re.findall(r"^Lower bound:\s+" + _CBC_NUM, log, re.M)
    return float(low[-1]) if low else None
