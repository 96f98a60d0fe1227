"""What the plan is compared with: a greedy planner and the best plan on a single hardware type.

**Greedy** (no optimisation, no compression): `greedy.greedy` on the problem built with each
service's least compressed allowed variant per hardware type (highest precision, no sparsity, no
distillation), under the same capacity model as the MILP.

**Single type**: the MILP restricted to one hardware type, for each type some site holds.
"""
from __future__ import annotations

from dataclasses import dataclass

from lepton_sim.planner.errors import Infeasible, NoPlan
from lepton_sim.planner.greedy import greedy
from lepton_sim.planner.model import ModelSize
from lepton_sim.planner.problem import Problem, build_problem
from lepton_sim.planner.result import PlanResult, SolveInfo, assemble
from lepton_sim.planner.search import solve_problem
from lepton_sim.planner.solver import PlanStatus


@dataclass(frozen=True)
class Baseline:
    """One baseline's outcome: its plan when it found one, else why not."""

    name: str  # "greedy" or "single:<hardware>"
    plan: PlanResult | None
    note: str

    @property
    def usd_per_hour(self) -> float | None:
        return None if self.plan is None else self.plan.usd_per_hour


def greedy_baseline(problem: Problem) -> Baseline:
    """The greedy plan as a baseline (on its own problem: least compressed variants only)."""
    out = greedy(problem)
    if isinstance(out, str):
        return Baseline("greedy", None, out)
    counts, flows = out
    info = SolveInfo(PlanStatus.FEASIBLE, "greedy", 0.0, 0.0, None, None, ModelSize(), 0, 0, "greedy")
    return Baseline("greedy", assemble(problem, counts, flows, info), "least compressed variants, most constrained demand first")


def single_type_baselines(problem: Problem) -> list[Baseline]:
    """The MILP's best plan on each single hardware type that some site holds."""
    sc = problem.scenario
    types = sorted({hw for s in sc.sites.values() for hw, n in s.capacity.items() if n > 0 and hw in sc.hardware})
    out = []
    for hw in types:
        opts = problem.options.with_(hardware=frozenset([hw]), baselines=False)
        sub = build_problem(sc, opts)
        name = f"single:{hw}"
        if sub.reasons:
            out.append(Baseline(name, None, f"infeasible: {sub.reasons[0].service} from {sub.reasons[0].site}: "
                                            f"{sub.reasons[0].message}"))
            continue
        try:
            sol = solve_problem(sub)
        except Infeasible as exc:
            r = exc.reasons[0]
            out.append(Baseline(name, None, f"infeasible: {r.service} from {r.site}: {r.message}"))
            continue
        except NoPlan as exc:
            out.append(Baseline(name, None, str(exc)))
            continue
        info = SolveInfo(sol.status, sol.solver, sol.solve_s, sol.build_s, sol.gap, sol.bound, sol.size,
                         sol.groups, sol.rounds)
        out.append(Baseline(name, assemble(sub, sol.counts, sol.flows, info), f"{sol.status.value}, gap {sol.gap}"))
    return out

