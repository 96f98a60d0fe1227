"""A greedy plan: each demand, most constrained first, goes to the pool that adds the least cost now.

Used as the greedy baseline (on least compressed variants) and as the MIP start of every solve
(on the problem's own candidates). It respects site slots, link and power limits, the latency
target and one tier per deployment line, under the same capacity model as the MILP.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from lepton_sim.planner.options import PoolKey
from lepton_sim.planner.problem import Candidate, Problem

Line = tuple[PoolKey, int]  # a candidate's deployment line: key and tensor-parallel degree (`Candidate.line`)

SLACK = 1e-9


@dataclass
class _State:
    """What the greedy has placed so far."""

    line_cand: dict[Line, int] = field(default_factory=dict)
    count: dict[Line, int] = field(default_factory=lambda: defaultdict(int))
    load: dict[Line, float] = field(default_factory=lambda: defaultdict(float))
    members: dict[Line, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    slots: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))  # devices taken
    watts: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    bits: dict[tuple[int, str], float] = field(default_factory=lambda: defaultdict(float))
    flows: dict[int, float] = field(default_factory=lambda: defaultdict(float))


def greedy(problem: Problem) -> tuple[dict[int, int], dict[int, float]] | str:
    """Counts per candidate and flows per arc of the greedy plan, or why a demand found no pool.

    Demands with the fewest pools within reach go first (then the largest): a demand only its own
    edge site can serve must not find the slots taken. A demand goes whole to the pool adding the
    least cost; only when no pool can take all of it is it split, filling first the pool that takes
    the most.
    """
    st = _State()
    arc_of = {(a.demand, a.candidate): a.index for a in problem.arcs}
    order = sorted(problem.demands.values(),
                   key=lambda d: (len({problem.candidates[problem.arcs[ai].candidate].key[1:3]
                                       for ai in problem.arcs_of_demand.get(d.key, [])}), -d.peak_rps, d.key))
    for d in order:
        left = d.peak_rps
        while left > SLACK * d.peak_rps:
            whole: tuple[float, int, int, float] | None = None
            part: tuple[float, float, int, int, float] | None = None
            for ai in problem.arcs_of_demand.get(d.key, []):
                offer = _offer(problem, st, ai, left)
                if offer is None:
                    continue
                cost, need, take = offer
                if take >= left * (1 - SLACK):
                    if whole is None or cost < whole[0] - SLACK:
                        whole = (cost, ai, need, left)
                elif part is None or (-take, cost) < (part[0], part[1]):
                    part = (-take, cost, ai, need, take)
            if whole is None and part is None:
                return f"greedy found no pool for {d.service} from {d.site} ({left:.6g} of {d.peak_rps:.6g} rps left)"
            _, ai, need, take = whole if whole is not None else part[1:]  # type: ignore[index]
            _place(problem, st, arc_of, ai, need, take)
            left -= take
    cands = problem.candidates
    return {ci: st.count[cands[ci].line] for ci in st.line_cand.values()}, dict(st.flows)


def _offer(problem: Problem, st: _State, ai: int, rate: float) -> tuple[float, int, float] | None:
    """(added cost, replicas then, rate taken) if arc `ai` takes up to `rate` more, or None."""
    a = problem.arcs[ai]
    c = problem.candidates[a.candidate]
    key, (_, site, hw, _), tp = c.line, c.key, c.tensor_parallel
    if not {s for _, s in st.members[key]} <= set(c.admits):
        return None  # this tier does not admit a demand site the line already serves
    free = (problem.scenario.sites[site].capacity[hw] - st.slots[(site, hw)]) // tp + st.count[key]  # replicas
    budget = problem.options.power_budget_w.get(site)
    if budget is not None and c.power_w > 0:
        free = min(free, st.count[key] + int((budget * (1 + SLACK) - st.watts[site]) / c.power_w))
    most = min(c.max_count, free)
    if most < 1:
        return None
    room = c.capacity_rps(most) - st.load[key]
    for dr, b in a.path.loads:
        room = min(room, (problem.paths.limit_bps(dr) * (1 + SLACK) - st.bits[dr]) / b)
    take = min(rate, room)
    if take <= SLACK * rate:
        return None
    need = _fewest(c, st.load[key] + take, most)
    if need is None:
        return None
    extra = max(need - st.count[key], 0)
    return extra * c.usd_per_hour + a.usd_per_hour_per_rps * take, max(need, st.count[key]), take


def _place(problem: Problem, st: _State, arc_of: dict, ai: int, need: int, take: float) -> None:
    a = problem.arcs[ai]
    c = problem.candidates[a.candidate]
    key, (_, site, hw, _) = c.line, c.key
    old = st.line_cand.get(key)
    if old is not None and old != c.index:  # the line moves to a tier admitting everyone
        for dk in st.members[key]:
            st.flows[arc_of[(dk, c.index)]] += st.flows.pop(arc_of[(dk, old)], 0.0)
    st.slots[(site, hw)] += (need - st.count[key]) * c.tensor_parallel
    st.watts[site] += (need - st.count[key]) * c.power_w
    for dr, b in a.path.loads:
        st.bits[dr] += take * b
    st.line_cand[key], st.count[key] = c.index, need
    st.load[key] += take
    st.members[key].add(a.demand)
    st.flows[ai] += take


def _fewest(c: Candidate, rate: float, most: int) -> int | None:
    """The fewest replicas of `c` (at most `most`) that carry `rate`, None if none do."""
    for n in range(1, most + 1):
        if c.capacity_rps(n) >= rate * (1 - SLACK):
            return n
    return None
