"""What the plan is compared with: a greedy planner and the best plan on a single hardware type.

**Greedy** (no optimisation, no compression): `greedy.greedy` on the problem built with each
service's least compressed allowed variant per hardware type (highest precision, no sparsity, no
distillation), under the same capacity model as the MILP.

**Single type**: the MILP restricted to one hardware type, for each type some site holds.

**LLM services** add two: `no-quantisation`, the MILP with each LLM service's least compressed
variant only (per hardware and tensor-parallel degree; other services likewise), and `tp1-only`,
the MILP with one device per LLM replica.
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

    name: str  # "greedy", "single:<hardware>", and with LLM services "no-quantisation" and "tp1-only"
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
    return [_milp(f"single:{hw}", build_problem(sc, problem.options.with_(hardware=frozenset([hw]), baselines=False)))
            for hw in types]


def llm_baselines(problem: Problem) -> list[Baseline]:
    """For a scenario with LLM services: the MILP without quantisation (each service's least compressed variant
    per hardware and degree, `no-quantisation`) and with one device per LLM replica (`tp1-only`)."""
    if not any(c.llm is not None for c in problem.candidates):
        return []
    sc, opts = problem.scenario, problem.options.with_(baselines=False)
    out = [_milp("no-quantisation", build_problem(sc, opts, variants="uncompressed"))]
    if any(c.tensor_parallel > 1 for c in problem.candidates):
        out.append(_milp("tp1-only", build_problem(sc, opts.with_(tensor_parallel=(1,)))))
    return out


def _milp(name: str, sub: Problem) -> Baseline:
    """The MILP's best plan of `sub`, or why there is none."""
    if sub.reasons:
        return Baseline(name, None, f"infeasible: {sub.reasons[0].service} from {sub.reasons[0].site}: "
                                    f"{sub.reasons[0].message}")
    try:
        sol = solve_problem(sub)
    except Infeasible as exc:
        r = exc.reasons[0]
        return Baseline(name, None, f"infeasible: {r.service} from {r.site}: {r.message}")
    except NoPlan as exc:
        return Baseline(name, None, str(exc))
    info = SolveInfo(sol.status, sol.solver, sol.solve_s, sol.build_s, sol.gap, sol.bound, sol.size,
                     sol.groups, sol.rounds)
    return Baseline(name, assemble(sub, sol.counts, sol.flows, info), f"{sol.status.value}, gap {sol.gap}")

