"""Brute force: every deployment of small random instances, under the planner's own model, against the MILP.

A deployment picks, per deployment line, nothing or one candidate (tier) and a replica count. Given
the deployment, the cheapest routing is a linear program (flows within the pools' capacities and the
link limits, all demand served, egress minimised). Deployments are visited in order of replica cost
and the search stops when that alone reaches the best total found, so the minimum is exact.
"""
from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pulp
import pytest

from lepton_sim.planner import Infeasible, PlanOptions, plan
from lepton_sim.planner.problem import Problem, build_problem
from lepton_sim.scenario import parse_scenario


def _instance(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    services = {}
    for name in ("a", "b"):
        sites = list(rng.choice(["dc", "edge"], size=int(rng.integers(1, 3)), replace=False))
        batch = int(rng.choice([1, 4]))
        services[name] = {
            "model": str(rng.choice(["small", "big"])), "slo": {"latency_ms": float(rng.integers(20, 60))},
            "batching": {"max_batch": batch, "max_wait_ms": 0.0 if batch == 1 else 1.0},
            "service_time": {"dist": "deterministic", "ms": float(rng.choice([2.0, 4.0, 6.0]))},
            "demand": [{"site": str(s), "rate_rps": float(rng.integers(150, 900))} for s in sites],
        }
    return {
        "name": f"brute-{seed}", "horizon": {"duration_s": 10},
        "hardware": {"x": {"from": "nvidia-l4", "cost_per_hour": float(np.round(rng.uniform(0.5, 1.0), 2))},
                     "y": {"from": "nvidia-t4", "cost_per_hour": float(np.round(rng.uniform(0.2, 0.6), 2))}},
        "sites": {"dc": {"capacity": {"x": int(rng.integers(2, 5)), "y": int(rng.integers(2, 5))}},
                  "edge": {"kind": "edge", "capacity": {"y": 2}}},
        "links": [{"between": ["edge", "dc"], "bandwidth_gbps": float(rng.choice([1.0, 4.0])),
                   "latency_ms": float(rng.integers(2, 8)), "cost_per_gb": float(rng.choice([0.0, 0.05]))}],
        "models": {"small": {"layers": [{"op": "dense", "in": 64, "out": 64}], "input_bytes": 2000, "output_bytes": 100},
                   "big": {"layers": [{"op": "dense", "in": 64, "out": 64}], "input_bytes": 150_000,
                           "output_bytes": 4000}},
        "services": services,
    }


def _routing_cost(p: Problem, counts: dict[int, int]) -> float | None:
    """The cheapest egress for a deployment, or None when no routing serves all demand."""
    lp = pulp.LpProblem("route", pulp.LpMinimize)
    x = {a.index: lp.add_variable(f"x{a.index}", 0) for a in p.arcs if a.candidate in counts}
    for key, d in p.demands.items():
        arcs = [ai for ai in p.arcs_of_demand.get(key, []) if ai in x]
        if not arcs:
            return None
        lp += pulp.lpSum(x[ai] for ai in arcs) == d.peak_rps
    for ci, n in counts.items():
        lp += pulp.lpSum(x[ai] for ai in p.arcs_of_candidate[ci] if ai in x) <= p.candidates[ci].capacity_rps(n)
    for r in p.resources:
        if r.kind == "link":
            lp += pulp.lpSum(b * 1e-9 * x[ai] for ai, b in r.arc_coef.items() if ai in x) <= r.limit * 1e-9
    lp += pulp.lpSum(p.arcs[ai].usd_per_hour_per_rps * v for ai, v in x.items())
    lp.solve(pulp.HiGHS(msg=False))
    return pulp.value(lp.objective) or 0.0 if lp.status == pulp.LpStatusOptimal else None


STATS: list[int] = []


def brute_force(p: Problem) -> float:
    lines: dict[tuple, list[int]] = defaultdict(list)
    for c in p.candidates:
        lines[c.key].append(c.index)
    choices = [[None] + [(ci, n) for ci in ids for n in range(1, p.candidates[ci].max_count + 1)] for ids in lines.values()]
    deployments = []
    for combo in itertools.product(*choices):
        counts = {ci: n for ci, n in (c for c in combo if c is not None)}
        used: dict[tuple[str, str], int] = defaultdict(int)
        for ci, n in counts.items():
            used[p.candidates[ci].key[1:3]] += n
        if all(n <= p.scenario.sites[s].capacity[hw] for (s, hw), n in used.items()):
            deployments.append((sum(p.candidates[ci].usd_per_hour * n for ci, n in counts.items()), counts))
    assert len(deployments) < 20_000
    STATS.append(len(deployments))
    best = float("inf")
    for replicas, counts in sorted(deployments, key=lambda t: t[0]):
        if replicas >= best:
            break
        egress = _routing_cost(p, counts)
        if egress is not None:
            best = min(best, replicas + egress)
    return best


@pytest.mark.parametrize("seed", [2, 3, 9, 10, 14, 15])
def test_milp_finds_the_brute_force_optimum(seed: int) -> None:
    s = parse_scenario(_instance(seed), file=f"<brute {seed}>")
    opts = PlanOptions(baselines=False)
    p = build_problem(s, opts)
    expected = brute_force(p)
    if expected == float("inf"):  # no deployment serves everyone: the MILP must say infeasible too
        with pytest.raises(Infeasible):
            plan(s, opts)
        return
    result = plan(s, opts)
    assert result.usd_per_hour == pytest.approx(expected, rel=1e-6, abs=1e-9)
