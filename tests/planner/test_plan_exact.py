"""The planner finds the exact optimum where queueing theory is exact, and never calls a feasible problem infeasible.

The exhaustive search (`benchmarks/planner_truth.py`, `exhaustive`) enumerates replica counts of every
pool and the demand sites each serves, and decides what a pool carries by bisection on the closed
forms of `lepton_sim.theory` (M/M/c: Erlang C sojourn distribution; M/D/c: Crommelin's), apart from
the planner's own capacity search (`lepton_sim.planner.latency`); the cheapest routing for each
deployment is an LP. Instances: two sites joined by a link, demand at both (so routing may split),
two hardware types at the datacenter and one at the edge, each with its slot cap.
"""
from __future__ import annotations

import copy
import importlib.util
import math
import re
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml

from lepton_sim.planner import Infeasible, PlanOptions, plan
from lepton_sim.planner.capacity import CapacityTable
from lepton_sim.verification.cli import main
from lepton_sim.planner.problem import build_problem
from lepton_sim.planner.search import solve_problem
from lepton_sim.verification.checks import check_plan
from lepton_sim.scenario import parse_scenario

from planner_helpers import ROOT
from test_plan_bruteforce import brute_force

OPTS = PlanOptions(baselines=False)


@pytest.fixture(scope="module")
def truth() -> ModuleType:
    spec = importlib.util.spec_from_file_location("planner_truth", ROOT / "benchmarks" / "planner_truth.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


ISSUE_MMC = {
    "name": "issue-mmc", "seed": 1, "horizon": {"duration_s": 60, "warmup_s": 5},
    "hardware": {"box": {"kind": "cpu", "peak_tflops": {"fp32": 1.0}, "memory_bandwidth_gbps": 50, "memory_gb": 64,
                         "power_w": 200, "idle_power_w": 100, "cost_per_hour": 1.0}},
    "sites": {"dc": {"capacity": {"box": 40}}},
    "models": {"m": {"layers": [{"op": "dense", "in": 64, "out": 64}], "input_bytes": 256, "output_bytes": 256}},
    "services": {"q": {"model": "m", "slo": {"percentile": 99, "latency_ms": 60},
                       "service_time": {"dist": "exponential", "mean_ms": 10},
                       "demand": [{"site": "dc", "rate_rps": 1200}]}},
}


def test_the_issues_mmc_instance_plans_exactly_14_replicas() -> None:
    # Erlang C sojourn: p99 at 1200 rps is 62.98 ms with 13 replicas of 10 ms, 49.96 ms with 14
    s = parse_scenario(ISSUE_MMC, file="<issue>")
    result = plan(s, OPTS)
    assert [p.count for p in result.pools] == [14] and result.usd_per_hour == pytest.approx(14.0)
    assert result.predicted["q"].latency_ms == pytest.approx(49.96, abs=0.01)
    with pytest.raises(Infeasible) as info:  # the bound: an idle pool at 2 x 46.05 ms
        plan(s, OPTS.with_(latency_model="bound"))
    assert "best achievable 94.21 ms" in info.value.reasons[0].message
    tight_floor = parse_scenario({**ISSUE_MMC, "services": {"q": {**ISSUE_MMC["services"]["q"],  # type: ignore[dict-item]
                                                                  "slo": {"percentile": 99, "latency_ms": 45}}}})
    with pytest.raises(Infeasible) as info:  # below the service time's own p99 nothing fits: the tight floor
        plan(tight_floor, OPTS)
    best = float(re.search(r"best achievable ([\d.]+) ms", info.value.reasons[0].message).group(1))
    assert best == pytest.approx(10 * math.log(100), abs=0.01)


def _assert_plan_is_the_exhaustive_optimum(truth: ModuleType, s: Any) -> None:
    """The plan costs what enumerating every deployment finds cheapest, or both say infeasible."""
    opt = truth.exhaustive(s, truth.theory_capacity, OPTS)
    if math.isinf(opt.usd_per_hour):
        with pytest.raises(Infeasible):
            plan(s, OPTS)
        return
    assert plan(s, OPTS).usd_per_hour == pytest.approx(opt.usd_per_hour, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("kind", ["exponential", "deterministic"])
@pytest.mark.parametrize("seed", range(8))
def test_plan_is_the_exhaustive_optimum(truth: ModuleType, kind: str, seed: int) -> None:
    s = parse_scenario(truth.make_instance(seed, kind), file=f"<{kind} {seed}>")
    _assert_plan_is_the_exhaustive_optimum(truth, s)


def _two_services(truth: ModuleType, seed: int, kind: str) -> dict[str, Any]:
    """A truth instance with a second service sharing the slots (capped at 3 per type to keep enumeration small)."""
    d = truth.make_instance(seed, kind)
    rng = np.random.default_rng(seed + 1000)
    for site in d["sites"].values():
        site["capacity"] = {hw: min(n, 3) for hw, n in site["capacity"].items()}
    other = copy.deepcopy(d["services"]["svc"])
    other["slo"]["latency_ms"] = float(np.round(other["slo"]["latency_ms"] * rng.uniform(0.8, 1.4), 1))
    for line in other["demand"]:
        line["rate_rps"] = float(np.round(line["rate_rps"] * rng.uniform(0.2, 0.6)))
    for line in d["services"]["svc"]["demand"]:
        line["rate_rps"] = float(np.round(line["rate_rps"] * 0.5))
    d["services"]["other"] = other
    return d


@pytest.mark.parametrize("kind", ["exponential", "deterministic"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_services_sharing_slots(truth: ModuleType, kind: str, seed: int) -> None:
    s = parse_scenario(_two_services(truth, seed, kind), file=f"<two {kind} {seed}>")
    _assert_plan_is_the_exhaustive_optimum(truth, s)


def _random_table(rng: np.random.Generator, n: int, scale: float) -> CapacityTable:
    """A non-decreasing table whose increments are drawn with no shape: zeros, jumps, up and down."""
    inc = rng.choice([0.0, 0.2, 1.0, 3.0], size=n) * rng.uniform(0.5, 1.5, size=n) * scale
    inc[0] = max(inc[0], 0.1 * scale)
    return CapacityTable(tuple(float(v) for v in np.cumsum(inc)), False)


@pytest.mark.parametrize("seed", range(6))
def test_any_non_decreasing_table_is_written_exactly(truth: ModuleType, seed: int) -> None:
    """The MILP on tables that are neither convex nor concave (the tight model's are not guaranteed to be
    either) against brute force over counts, tiers and routing on the same problem."""
    s = parse_scenario(truth.make_instance(seed, "deterministic"), file=f"<tables {seed}>")
    p = build_problem(s, OPTS)
    rng = np.random.default_rng(seed)
    demand = sum(d.peak_rps for d in p.demands.values())
    for i, c in enumerate(p.candidates):
        p.candidates[i] = replace(c, table=_random_table(rng, c.max_count, demand / max(c.max_count, 1)))
    expected = brute_force(p)
    if math.isinf(expected):
        with pytest.raises(Infeasible):
            solve_problem(p)
        return
    assert solve_problem(p).objective == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_a_hand_made_non_convex_table() -> None:
    """One pool whose third replica adds more than its second (and fourth nothing): 25 rps needs exactly 3."""
    s = parse_scenario(ISSUE_MMC, file="<hand>")
    p = build_problem(s, OPTS)
    [c] = p.candidates
    p.candidates[0] = replace(c, table=CapacityTable((10.0, 11.0, 30.0, 30.0), False), max_count=4)
    p.demands[("q", "dc")] = replace(p.demands[("q", "dc")], peak_rps=25.0, mean_rps=25.0)
    sol = solve_problem(p)
    assert sol.counts == {0: 3} and sol.objective == pytest.approx(3.0)
    p.demands[("q", "dc")] = replace(p.demands[("q", "dc")], peak_rps=10.5, mean_rps=10.5)
    assert solve_problem(p).counts == {0: 2}


def _feasible_by_construction(truth: ModuleType, seed: int, kind: str) -> tuple[dict[str, Any], float]:
    """An instance whose demand a chosen deployment carries with 3 % to spare, and that deployment's price.

    The deployment: random counts on the three pools; the edge pool serves the edge, the first
    datacenter type serves the datacenter, the second serves the edge over the link when it can
    (else the datacenter); each demand is 0.97 of what its pools carry under exact theory.
    """
    d = truth.make_instance(seed, kind)
    rng = np.random.default_rng(seed + 7)
    s = parse_scenario(d, file="<probe>")
    paths = build_problem(s, OPTS).paths
    slo = s.services["svc"].slo.latency_ms / 1e3
    counts = {("dc", "a"): int(rng.integers(1, d["sites"]["dc"]["capacity"]["a"] + 1)),
              ("dc", "b"): int(rng.integers(0, d["sites"]["dc"]["capacity"]["b"] + 1)),
              ("edge", "e"): int(rng.integers(0, d["sites"]["edge"]["capacity"]["e"] + 1))}
    carried = {"dc": 0.0, "edge": 0.0}
    for (site, hw), n in counts.items():
        if n == 0:
            continue
        dist = truth.service_dist(s, "svc", hw)
        src = "edge" if (site, hw) != ("dc", "a") else "dc"
        path = paths.path("svc", src, site, 0.01)
        miss = 0.01 if path.hops == 0 else 0.009
        cap = truth.theory_capacity(dist, n, slo - path.latency_s, miss) if slo > path.latency_s else 0.0
        if cap <= 0.0 and src == "edge" and site == "dc":
            src, cap = "dc", truth.theory_capacity(dist, n, slo, 0.01)
        carried[src] += cap
    price = sum(n * s.hardware[hw].cost_per_hour for (_, hw), n in counts.items())
    demand = []
    for site, rate in carried.items():
        if rate > 0:
            demand.append({"site": site, "rate_rps": float(0.97 * rate)})
    d["services"]["svc"]["demand"] = demand
    d["links"][0].update(bandwidth_gbps=100.0, cost_per_gb=0.0)  # nothing but the pools limits or prices it
    return d, price


@pytest.mark.parametrize("kind", ["exponential", "deterministic"])
@pytest.mark.parametrize("seed", range(10))
def test_feasible_by_construction_is_never_infeasible(truth: ModuleType, kind: str, seed: int) -> None:
    d, price = _feasible_by_construction(truth, seed, kind)
    if not d["services"]["svc"]["demand"]:
        pytest.skip("the drawn deployment carries nothing within the target")
    s = parse_scenario(d, file=f"<constructed {kind} {seed}>")
    result = plan(s, OPTS)  # raises Infeasible if the planner misses the constructed deployment
    assert result.usd_per_hour <= price * (1 + 1e-9) + 1e-9


def test_a_plan_at_the_exact_optimum_meets_its_targets_in_simulation(truth: ModuleType) -> None:
    """Deterministic service, the edge's demand split between its own pool and the datacenter's over the link.

    The cheapest plan by exact M/D/c fills the edge pool (3 Jetsons, utilisation 0.6) to its exact
    capacity, so its requests sit right at the percentile: about 1 % of them miss the 12 ms target,
    and the edge site misses at 1 % of its share routed there (the datacenter route has slack). The
    simulation agrees within 25 % of that miss (about 700 misses expected; sampling error ~10 %).
    """
    d = truth.make_instance(0, "deterministic")
    d["horizon"] = {"duration_s": 200, "warmup_s": 10}
    s = parse_scenario(d, file="<simulated>")
    result = plan(s, OPTS)
    edge_pool = next(p for p in result.pools if p.key[1] == "edge")
    assert edge_pool.planned_rps == pytest.approx(edge_pool.capacity_rps, rel=1e-6)  # at its exact capacity
    share = result.routing["svc"]["edge"][edge_pool.id]
    assert 0.2 < share < 0.8  # the edge's demand is split over the link
    services, by_site, _ = check_plan(s, result, seed=5)
    assert services["svc"].met
    miss = 1.0 - by_site["svc"]["edge"].attainment
    assert miss == pytest.approx(0.01 * share, rel=0.25)
    assert by_site["svc"]["dc"].attainment >= 0.99


def test_latency_model_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`plan --latency-model bound` keeps today's bound (the issue's instance is then infeasible); tight is the default."""
    path = tmp_path / "mmc.yaml"
    path.write_text(yaml.safe_dump(ISSUE_MMC))
    assert main(["plan", str(path)]) == 0
    assert "$14.0000/h" in capsys.readouterr().out
    assert main(["plan", str(path), "--latency-model", "bound"]) == 1  # infeasible
    printed = capsys.readouterr()
    assert "best achievable 94.21 ms" in printed.out + printed.err
