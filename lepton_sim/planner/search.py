"""Solve the planner's problem by groups of services, adding shared limits only where they bind.

Services interact only through shared limits (a site's slots of one hardware type, a link
direction, a site's power budget), and most of those cannot bind or do not bind at the optimum.
So every service starts in its own group, whose model carries each shared limit restricted to that
service (a relaxation). After a round of solves, each shared limit is checked against the combined
plan; the services of every violated one are merged into one group, which now carries the limit
whole, and only the merged groups are solved again. When nothing is violated the combined plan is
feasible, and since each group's model relaxes the full problem, the sum of the groups' bounds is a
bound for the whole: the plan is optimal when every group is, and its gap is computed from those
bounds otherwise (a group stopped before the solver had any bound counts 0: costs are never negative). Each group is a small MILP whose own gap closes quickly, which a single model of
all services does not do (branching on one service barely moves the others' bound).

Groups start from the limits the greedy plan fills (at least `TIGHT` of the limit): those are
likely to bind, so their services share a group from the first round. When the groups (at the
start, or after a round's violations) would join most of the problem (`MERGE_ALL_SHARE` of the
candidates), all services are merged at once: merging step by step would solve nearly the whole
model several times. If a time-limited solve stops before finding any plan, the greedy plan
(`greedy.greedy` on the same candidates, feasible for every group's model) restricted to the group
stands in, with the solver's bound if it had one (so the gap stays honest).
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from lepton_sim.planner.diagnose import diagnose
from lepton_sim.planner.errors import NoPlan
from lepton_sim.planner.greedy import greedy
from lepton_sim.planner.model import ModelSize, build_model
from lepton_sim.planner.problem import Problem, Resource
from lepton_sim.planner.solver import Outcome, PlanStatus, relative_gap, solve

MIN_SOLVE_S = 1.0  # a group still gets this long once the overall time limit is spent
VIOLATION_TOL = 1e-6  # relative
MERGE_ALL_SHARE = 0.5
TIGHT = 0.95


@dataclass(frozen=True)
class Solution:
    """Replicas per candidate and routed peak rate per arc, with how the solve went."""

    counts: dict[int, int]
    flows: dict[int, float]
    status: PlanStatus
    objective: float
    bound: float | None
    gap: float | None
    solve_s: float
    build_s: float
    solver: str
    size: ModelSize
    groups: int
    rounds: int


@dataclass
class _Group:
    services: frozenset[str]
    outcome: Outcome
    counts: dict[int, int]
    flows: dict[int, float]
    size: ModelSize


class _Groups:
    """Union-find over service names."""

    def __init__(self, names: list[str]) -> None:
        self.parent = {n: n for n in names}

    def find(self, n: str) -> str:
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def union(self, names: frozenset[str]) -> None:
        roots = sorted({self.find(n) for n in names})
        for r in roots[1:]:
            self.parent[r] = roots[0]

    def members(self) -> dict[str, frozenset[str]]:
        out: dict[str, set[str]] = {}
        for n in self.parent:
            out.setdefault(self.find(n), set()).add(n)
        return {r: frozenset(m) for r, m in out.items()}


def solve_problem(problem: Problem) -> Solution:
    """The cheapest plan under the problem's model; raises `Infeasible` (explained) or `NoPlan`."""
    opts = problem.options
    t0 = time.perf_counter()
    deadline = None if opts.time_limit_s is None else t0 + opts.time_limit_s
    names = [s for s in problem.scenario.services if problem.demand_keys_of_service.get(s)]
    groups = _Groups(names)
    if not opts.decompose:
        groups.union(frozenset(names))
    shared = [r for r in problem.resources if len(r.services) > 1]
    seed = greedy(problem)
    start = None if isinstance(seed, str) else seed
    if start is not None:
        for r in shared:
            if _use(r, *start) >= TIGHT * r.limit:
                groups.union(r.services)
        _merge_all_if_most(problem, groups, names)
    solved: dict[frozenset[str], _Group] = {}
    build_s = solve_s = 0.0
    rounds = 0
    while True:
        rounds += 1
        weight = {m: max(1, sum(len(problem.candidates_of_service.get(s, [])) for s in m))
                  for m in groups.members().values() if m not in solved}
        todo = sorted(weight, key=lambda m: (-weight[m], sorted(m)))
        for i, members in enumerate(todo):
            tb = time.perf_counter()
            built = build_model(problem, sorted(members), name=f"plan_{rounds}_{i}")
            build_s += time.perf_counter() - tb
            limit = _time_share(deadline, weight[members], sum(weight[m] for m in todo[i:]))
            out = solve(built.lp, opts.solver, limit, opts.gap, opts.threads)
            solve_s += out.solve_s
            if out.status == PlanStatus.INFEASIBLE:
                raise diagnose(problem, members, opts.solver, _time_share(deadline, 1, 1))
            if out.status in (PlanStatus.OPTIMAL, PlanStatus.FEASIBLE):
                counts = {ci: round(sum(v.varValue or 0.0 for v in vs)) for ci, vs in built.counts.items()}
                flows = {ai: max(v.varValue or 0.0, 0.0) for ai, v in built.flows.items()}
            elif start is not None:
                counts = {ci: n for ci, n in start[0].items() if ci in built.counts}
                flows = {ai: f for ai, f in start[1].items() if ai in built.flows}
                out = _greedy_outcome(problem, counts, flows, out)
            else:
                listed = ", ".join(sorted(members)[:5]) + (f" and {len(members) - 5} more" if len(members) > 5 else "")
                raise NoPlan(f"the solver found no plan within the time limit for services {listed} "
                             f"({out.status.value}); infeasibility is not proven: allow more time (--time-limit)")
            solved[members] = _Group(members, out, {k: v for k, v in counts.items() if v > 0},
                                     {k: v for k, v in flows.items() if v > 1e-9}, built.size)
        current = set(groups.members().values())
        solved = {m: g for m, g in solved.items() if m in current}
        violated = _violated(problem, shared, solved.values())
        if not violated:
            break
        for r in violated:
            groups.union(r.services)
        _merge_all_if_most(problem, groups, names)
    return _combine(list(solved.values()), build_s, solve_s, rounds)


def _greedy_outcome(problem: Problem, counts: dict[int, int], flows: dict[int, float], out: Outcome) -> Outcome:
    """The greedy plan of a group as its solve outcome: feasible, with the solver's bound if any."""
    cost = sum(problem.candidates[ci].usd_per_hour * n for ci, n in counts.items()) + \
        sum(problem.arcs[ai].usd_per_hour_per_rps * f for ai, f in flows.items())
    bound = 0.0 if out.bound is None else min(out.bound, cost)
    return Outcome(PlanStatus.FEASIBLE, cost, bound, relative_gap(cost, bound), out.solve_s, out.solver)


def _time_share(deadline: float | None, weight: float, total: float) -> float | None:
    if deadline is None:
        return None
    return max((deadline - time.perf_counter()) * weight / total, MIN_SOLVE_S)


def _violated(problem: Problem, shared: list[Resource], groups: Iterable[_Group]) -> list[Resource]:
    """The shared limits the combined plan of the groups exceeds."""
    counts: dict[int, int] = {}
    flows: dict[int, float] = {}
    for g in groups:
        counts.update(g.counts)
        flows.update(g.flows)
    return [r for r in shared if _use(r, counts, flows) > r.limit * (1 + VIOLATION_TOL) + 1e-9]


def _use(r: Resource, counts: dict[int, int], flows: dict[int, float]) -> float:
    """How much of resource `r` a plan uses."""
    return sum(coef * counts.get(ci, 0) for ci, coef in r.candidate_coef.items()) + \
        sum(coef * flows.get(ai, 0.0) for ai, coef in r.arc_coef.items())


def _merge_all_if_most(problem: Problem, groups: _Groups, names: list[str]) -> None:
    """Merge every service when one group already holds most of the candidates."""
    sizes = [sum(len(problem.candidates_of_service.get(s, [])) for s in m) for m in groups.members().values()]
    if sizes and max(sizes) >= MERGE_ALL_SHARE * sum(sizes):
        groups.union(frozenset(names))


def _combine(groups: list[_Group], build_s: float, solve_s: float, rounds: int) -> Solution:
    """The whole plan from its groups: counts and flows joined, objectives and bounds summed."""
    counts: dict[int, int] = {}
    flows: dict[int, float] = {}
    size = ModelSize()
    objective = 0.0
    bound = 0.0
    for g in groups:
        counts.update(g.counts)
        flows.update(g.flows)
        size = size + g.size
        objective += g.outcome.objective or 0.0
        b = g.outcome.bound
        if b is None:  # an optimum is its own bound; otherwise 0, since costs are never negative
            b = g.outcome.objective if g.outcome.status == PlanStatus.OPTIMAL and g.outcome.objective is not None else 0.0
        bound += b
    optimal = all(g.outcome.status == PlanStatus.OPTIMAL for g in groups)
    gap = relative_gap(objective, bound)
    status = PlanStatus.OPTIMAL if optimal else PlanStatus.FEASIBLE
    solver = groups[0].outcome.solver if groups else "none"
    return Solution(counts, flows, status, objective, bound, 0.0 if optimal and gap is None else gap,
                    solve_s, build_s, solver, size, len(groups), rounds)
