"""The plan never costs more than the greedy planner or the best single-hardware-type plan."""
from __future__ import annotations

import pytest

from lepton_sim.planner import PlanOptions, plan
from lepton_sim.planner.greedy import greedy
from lepton_sim.planner.problem import build_problem
from lepton_sim.scenario import parse_scenario


def _check(result) -> dict[str, float | None]:
    costs = {b.name: b.usd_per_hour for b in result.baselines}
    assert "greedy" in costs and any(n.startswith("single:") for n in costs)
    for name, usd in costs.items():
        if usd is not None:
            assert result.usd_per_hour <= usd + 1e-9, name
    return costs


@pytest.mark.parametrize("name", ["default.yaml", "edge-vision.yaml", "planner-small.yaml"])
def test_shipped_scenarios(shipped, name: str) -> None:
    result = plan(shipped(name))
    assert result.solve.source == "milp"
    _check(result)


def test_a_generated_instance_where_optimising_pays(generator) -> None:
    s = parse_scenario(generator(30, 10, seed=2), file="<generated>")
    result = plan(s, PlanOptions(time_limit_s=60))
    costs = _check(result)
    assert costs["greedy"] is not None and result.usd_per_hour < 0.9 * costs["greedy"]  # compression and mixing
    singles = [v for k, v in costs.items() if k.startswith("single:") and v is not None]
    assert all(result.usd_per_hour < v for v in singles)


def test_greedy_respects_the_model(generator) -> None:
    """The greedy plan is feasible for the MILP's constraints (it is also the MIP start)."""
    s = parse_scenario(generator(30, 10, seed=2), file="<generated>")
    p = build_problem(s, PlanOptions(baselines=False))
    out = greedy(p)
    assert not isinstance(out, str)
    counts, flows = out
    routed: dict[int, float] = {}
    for ai, f in flows.items():
        routed[p.arcs[ai].candidate] = routed.get(p.arcs[ai].candidate, 0.0) + f
    for ci, load in routed.items():
        assert load <= p.candidates[ci].capacity_rps(counts[ci]) * (1 + 1e-9)
    for key, d in p.demands.items():
        assert sum(flows.get(ai, 0.0) for ai in p.arcs_of_demand[key]) == pytest.approx(d.peak_rps)
    for r in p.resources:
        use = sum(c * counts.get(ci, 0) for ci, c in r.candidate_coef.items()) + \
            sum(c * flows.get(ai, 0.0) for ai, c in r.arc_coef.items())
        assert use <= r.limit * (1 + 1e-9), r.id
