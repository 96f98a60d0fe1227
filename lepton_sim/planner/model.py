"""The MILP, built by a pure function from the typed problem for one group of services.

Variables (named by their domain keys):

- a candidate (one tier of a deployment line, `<service>_<site>_<hw>_<variant>_t<tier>`) whose
  capacity is linear in the count (`CapacityTable.linear`): `n_...`, its integer replicas; where a
  line has several tiers it also gets `on_...`, a binary (or the count itself when it is 0/1);
- any other candidate: `r_..._k<k>`, binary, "the k-th replica is deployed", ordered r_1 >= r_2 >=
  ... by explicit constraints; the count is their sum and r_1 is the candidate's switch. The
  ordering makes the deployed replicas a prefix 1..n, so sum_k increment_k r_k is exactly cap(n)
  for *any* table, whatever the shape of its increments cap(k) - cap(k-1): convex (the bound's
  tables), neither (the tight model's exact tables, `latency.py`), or concave. A non-decreasing table
  (adding a replica never lowers a FIFO pool's capacity) keeps every coefficient non-negative.
  Without the ordering the relaxation, and the MILP, could take the largest increments first.
  (Tangent pieces with on/off binaries and negative intercepts, tried first, drove HiGHS 1.15.1 and
  the bundled CBC to wrong "optimal" answers on larger instances; this form does not.
  `tests/planner/test_plan_exact.py` checks it against brute force on tables with every shape.);
- `x_<service>_<demand site>__<candidate>`: requests per second of planned (peak) demand routed.

Constraints:

- `demand_<service>_<site>`: all planned demand routed;
- `pool_<line>_t<tier>`: routed rate <= factor x (cap(1) n, or sum_k increment_k r_k);
- `order_..._k<k>`: r_k >= r_(k+1); `hi_`/`lo_`: a linear count within [1, max] when on, 0 when off;
- `line_<line>`: at most one tier of a deployment line is on (a line: a candidate's key and, for an LLM
  service, its tensor-parallel degree, so two degrees of one hardware type and variant at a site can be
  two pools);
- `open_<arc>`: x <= peak x (the switch, or the count) of the candidate. Valid since x <= peak, and the
  facility-location strengthening: without it the LP relaxation buys a sliver of a replica for a
  small demand, with it the relaxation pays for the whole replica it routes all the demand to;
- `site_<site>_<hw>`, `link_<a>_<b>` (in Gbit/s, for scaling), `power_<site>`: shared limits (the
  parts inside this group).

Objective: dollars per hour, replicas x (price + energy) plus egress on the mean rate.
With `elastic=True` demand may go unserved and links and power budgets may be overrun; the
objective becomes the shortfall (each relative to its size), and `Built.cost` keeps the dollar
objective for a second, cost-minimising pass at that shortfall (the infeasibility diagnosis).
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import pulp

from lepton_sim.planner.problem import Candidate, Problem, Resource

# Elastic (diagnosis) objective, in units of the shortfall: unserved demand as a fraction of the
# demand's peak weighs 1000 times an overrun as a fraction of the resource's limit, so a link or a
# power budget is overrun before demand is dropped, and only what no routing can fix stays unserved.
UNSERVED_WEIGHT = 1000.0
OVERRUN_WEIGHT = 1.0


@dataclass(frozen=True)
class ModelSize:
    """Counts of one model, or summed over the groups solved apart."""

    variables: int = 0
    integer_variables: int = 0
    constraints: int = 0

    def __add__(self, other: ModelSize) -> ModelSize:
        return ModelSize(self.variables + other.variables, self.integer_variables + other.integer_variables,
                         self.constraints + other.constraints)


@dataclass
class Built:
    """A PuLP model with its variables by domain index."""

    lp: pulp.LpProblem
    counts: dict[int, list[pulp.LpVariable]] = field(default_factory=dict)  # candidate -> per piece
    flows: dict[int, pulp.LpVariable] = field(default_factory=dict)  # arc -> routed rps
    unserved: dict[tuple[str, str], pulp.LpVariable] = field(default_factory=dict)
    overrun: dict[str, tuple[Resource, pulp.LpVariable]] = field(default_factory=dict)  # resource id -> slack
    cost: pulp.LpAffineExpression | None = None  # dollars per hour (the objective unless elastic)

    @property
    def size(self) -> ModelSize:
        vs = self.lp.variables()
        return ModelSize(len(vs), sum(1 for v in vs if v.cat == pulp.LpInteger), self.lp.numConstraints())


class _Names:
    """Unique, solver-safe names from domain keys."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, *parts: object) -> str:
        base = re.sub(r"[^A-Za-z0-9_.]", "_", "_".join(str(p) for p in parts))
        name, i = base, 1
        while name in self.seen:
            i += 1
            name = f"{base}_{i}"
        self.seen.add(name)
        return name


def build_model(problem: Problem, services: Collection[str], elastic: bool = False, name: str = "plan") -> Built:
    """The MILP for `services`, with every shared resource restricted to their candidates and arcs.

    The restriction of a limit to some of its users is a relaxation; it is the limit itself when the
    group holds every service that can use the resource.
    """
    names = _Names()
    lp = pulp.LpProblem(names(name), pulp.LpMinimize)
    built = Built(lp)
    cands = [problem.candidates[i] for s in services for i in problem.candidates_of_service.get(s, [])]
    arcs = [problem.arcs[a] for c in cands for a in problem.arcs_of_candidate[c.index]]
    lines: dict[tuple, list[int]] = defaultdict(list)
    for c in cands:
        lines[c.line].append(c.index)
    multi = {ci for ids in lines.values() if len(ids) > 1 for ci in ids}
    on: dict[int, pulp.LpVariable] = {}
    for c in cands:
        _add_candidate(built, c, c.index in multi, on, names)
    for a in arcs:
        c = problem.candidates[a.candidate]
        built.flows[a.index] = lp.add_variable(names("x", *a.demand, "", *c.key, f"t{c.tier}"), 0)

    for (key, tp), ids in lines.items():
        if len(ids) > 1:
            lp += _lin((on[ci], 1) for ci in ids) <= 1, names("line", *key, *([f"tp{tp}"] if tp > 1 else []))
    for c in cands:
        routed = _lin((built.flows[a], 1) for a in problem.arcs_of_candidate[c.index])
        lp += routed <= _lin((v, c.factor * inc) for inc, v in zip(_increments(c), built.counts[c.index])), \
            names("pool", *c.key, f"t{c.tier}")
    for a in arcs:
        c = problem.candidates[a.candidate]
        peak = problem.demands[a.demand].peak_rps
        if c.index in on:
            lp += built.flows[a.index] <= peak * on[c.index], names("open", *a.demand, *c.key, f"t{c.tier}")
        elif peak < c.capacity_rps(1):
            lp += built.flows[a.index] <= _lin((v, peak) for v in built.counts[c.index]), \
                names("open", *a.demand, *c.key, f"t{c.tier}")

    for d in (problem.demands[k] for s in services for k in problem.demand_keys_of_service.get(s, [])):
        ids = [a for a in problem.arcs_of_demand.get(d.key, []) if a in built.flows]
        if not ids and not elastic:
            continue
        served = _lin((built.flows[a], 1) for a in ids)
        if elastic:
            built.unserved[d.key] = lp.add_variable(names("unserved", *d.key), 0)
            served = served + built.unserved[d.key]
        lp += served == d.peak_rps, names("demand", *d.key)

    for ri in sorted({ri for s in services for ri in problem.resources_of_service.get(s, [])}):
        _add_resource(built, problem, problem.resources[ri], names, elastic)

    built.cost = _lin([(nk, c.usd_per_hour) for c in cands for nk in built.counts[c.index]]
                      + [(built.flows[a.index], a.usd_per_hour_per_rps) for a in arcs if a.usd_per_hour_per_rps])
    if elastic:
        lp += shortfall(problem, built)
    else:
        lp += built.cost
    return built


def _lin(terms: Iterable[tuple[pulp.LpVariable, float]]) -> pulp.LpAffineExpression:
    """sum coef x var over distinct variables, built at once (`lpSum` of products makes an expression per term)."""
    return pulp.LpAffineExpression(list(terms))


def _add_candidate(built: Built, c: Candidate, several_tiers: bool, on: dict[int, pulp.LpVariable],
                   names: _Names) -> None:
    """The count variables of one candidate, and its on/off switch where it needs one."""
    lp, label = built.lp, (*c.key, f"t{c.tier}")
    if not c.table.linear:
        r = [lp.add_variable(names("r", *label, f"k{k}"), 0, 1, pulp.LpInteger) for k in range(1, c.max_count + 1)]
        for k in range(len(r) - 1):
            lp += r[k] >= r[k + 1], names("order", *label, f"k{k + 1}")
        built.counts[c.index], on[c.index] = r, r[0]
        return
    n = lp.add_variable(names("n", *label), 0, c.max_count, pulp.LpInteger)
    built.counts[c.index] = [n]
    if not several_tiers:
        return
    if c.max_count == 1:
        on[c.index] = n  # a 0/1 count switches itself
        return
    z = on[c.index] = lp.add_variable(names("on", *label), 0, 1, pulp.LpInteger)
    lp += n <= c.max_count * z, names("hi", *label)
    lp += n >= z, names("lo", *label)


def _increments(c: Candidate) -> list[float]:
    """Capacity added by each count variable: cap(1) for a linear count, else cap(k) - cap(k-1) per replica."""
    if c.table.linear:
        return [c.table.at(1)]
    return [c.table.at(k) - c.table.at(k - 1) for k in range(1, c.max_count + 1)]


def shortfall(problem: Problem, built: Built) -> pulp.LpAffineExpression:
    """The elastic objective: unserved demand and overruns, each as a fraction of its demand or limit."""
    return pulp.lpSum(UNSERVED_WEIGHT / problem.demands[k].peak_rps * u for k, u in built.unserved.items()) + \
        pulp.lpSum(OVERRUN_WEIGHT / (overrun_unit(r) * r.limit) * v for r, v in built.overrun.values())


def overrun_unit(r: Resource) -> float:
    """The factor from a resource's own unit (bit/s, W, replicas) to its row's (Gbit/s for links)."""
    return 1e-9 if r.kind == "link" else 1.0


def _add_resource(built: Built, problem: Problem, r: Resource, names: _Names, elastic: bool) -> None:
    """Add the part of resource `r` that the group's candidates and arcs use, if it can bind for them."""
    cand = [(ci, coef) for ci, coef in r.candidate_coef.items() if ci in built.counts]
    arcs = [(ai, coef) for ai, coef in r.arc_coef.items() if ai in built.flows]
    if not cand and not arcs:
        return
    group_max = _group_max(problem, cand, arcs)
    if group_max <= r.limit * (1 + 1e-9):
        return  # the group alone cannot exceed it
    unit = overrun_unit(r)  # links in Gbit/s keep the coefficients near 1
    use = _lin([(nk, unit * coef) for ci, coef in cand for nk in built.counts[ci]]
               + [(built.flows[ai], unit * coef) for ai, coef in arcs])
    if elastic and r.kind in ("link", "power"):
        slack = built.lp.add_variable(names("overrun", r.id), 0)  # in the row's unit (Gbit/s for links)
        built.overrun[r.id] = (r, slack)
        use = use - slack
    built.lp += use <= unit * r.limit, names(r.kind, r.id.split(":", 1)[1])


def _group_max(problem: Problem, cand: list[tuple[int, float]], arcs: list[tuple[int, float]]) -> float:
    per_line: dict[tuple, float] = defaultdict(float)
    for ci, coef in cand:
        c = problem.candidates[ci]
        per_line[c.line] = max(per_line[c.line], coef * c.max_count)
    per_demand: dict[tuple[str, str], float] = defaultdict(float)
    for ai, coef in arcs:
        a = problem.arcs[ai]
        per_demand[a.demand] = max(per_demand[a.demand], coef * problem.demands[a.demand].peak_rps)
    return sum(per_line.values()) + sum(per_demand.values())
