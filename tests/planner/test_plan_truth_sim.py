"""The plan against the cheapest deployment that simulation verifies, found by exhaustive search.

Small instances of benchmarks/planner_truth.py (one service, a datacenter and an edge site joined
by a link, demand at both, at most three pools of at most 10 replicas): one batching pool shape,
one lognormal, one deterministic on the roofline. Nothing here uses the planner's pool model: every
deployment is judged by simulating the whole scenario (`lepton_sim.sim.simulate`, routing
`weighted`), the plan's included, with one seed for all (common random numbers) and a short
horizon of about `REQUESTS` requests.

**Deployments.** Every replica count of every pool within its site's slots. **Routing rule**, two
per replica counts, both tried:

- `local`: each demand site's requests go to the pools at its own site, split in proportion to
  their full throughput (replicas x max_batch / mean batch time); only when every demand site has
  a pool of its own;
- `balanced`: every pool at the same utilisation (its share of the service's whole demand in
  proportion to its full throughput), with as little traffic across the link as that allows: each
  site's demand fills its own site's pools' shares first and only the rest crosses.

`local` is what a deployment without cross-site traffic can do best with identical pools; `balanced`
is the equal-utilisation split, which is what the pools' sizes can carry when one site's demand
outgrows its own pools (and the only option for a site without pools). The plan's own deployment
(its counts and the planner's weights) is a candidate too. A candidate whose pool would be loaded
at or beyond its full throughput cannot meet a percentile target in the long run and is skipped
without simulating.

**Verifies** means every SLO is met in the simulation: the service's percentile
(`m["services"][name]["slo"]["met"]`) and every demand site's own (`by_site`), which is what the
planner promises (each route within the target). Candidates are simulated in order of cost (the
plan's prices: replicas with their energy, egress at the mean rates) and the first that verifies
is the reference. The test asserts that the plan verifies in the same simulation and costs at most
`SLACK` (2 %) more than the reference: the planner did not over-provision against what a
simulation, not its own model, shows to suffice. The reference is only as good as the routing
rule: a cheaper deployment with another routing would not be found, so this is a bound on one
side (the plan is not dearer than these).

**Noise.** The planner sizes pools at their capacity, so its plans sit at the target: with 4e4
requests per run the plans of `deterministic` 102 and `lognormal` 103 missed (dc p99 20.3 ms for a
17 ms target; edge 59.3 ms for 56.1) and met it with 4e5 (15.4 ms, 54.7 ms). `REQUESTS` (1.5e5,
about 1-6 s a run) is the compromise with the run time; the seed is fixed, so the outcome is too.

**What the cases are.** Instances whose plan verifies and that a handful of cheaper candidates
precede (2, 3 and 2 simulated before the plan). The plan alone can fail this on the generator's
instances: `batching` 105's plan (2 dc + 4 edge replicas, 3.0093 $/h) is 11 % dearer than 2 dc + 3
edge with `balanced` routing (2.7118 $/h), which meets every SLO: the edge pool takes 40 % of the dc
site's demand and that route alone would miss its share, but the dc site's p99 is over both its
routes. The planner holds every route to the target at its share of the miss, which the SLO (a
percentile of the service's requests, end to end) does not ask; the benchmark's exhaustive optimum
shares that model, so it cannot see this. The verify loop settles it by simulation: its relax rounds
move demand where the simulated percentile has room, and on 105 end at 1 dc + 4 edge replicas
(2.3271 $/h, every site's SLO met), which no candidate of the search undercuts
(`test_verified_plan_costs_at_most_the_cheapest_simulated_deployment`).
"""
from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lepton_sim.metrics import build_metrics
from lepton_sim.planner import PlanOptions, plan
from lepton_sim.scenario import parse_scenario
from lepton_sim.scenario.schema import Deployment, Replicas, Scenario
from lepton_sim.sim import simulate
from lepton_sim.verification.loop import verify

ROOT = Path(__file__).resolve().parents[2]
SLACK = 0.02  # the plan may cost this much more than the cheapest deployment simulation verifies
REQUESTS = 150_000  # per simulated deployment (5 % of the horizon warm-up)
SIM_SEED = 7

# (kind, instance seed) of benchmarks/planner_truth.py's generator
CASES = [("batching", 104), ("lognormal", 101), ("deterministic", 100)]

Pool = tuple[str, str, str]  # (site, hardware, variant)
Candidate = tuple[float, str, dict[Pool, int], dict[Pool, dict[str, float]]]  # cost, label, counts, weights


@pytest.fixture(scope="module")
def truth() -> ModuleType:
    """benchmarks/planner_truth.py as a module (its instance generator and service-time reading)."""
    name = "planner_truth"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "planner_truth.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _short(instance: dict[str, Any]) -> Scenario:
    """The instance with a horizon of about REQUESTS requests."""
    total = sum(d["rate_rps"] for svc in instance["services"].values() for d in svc["demand"])
    duration = REQUESTS / total
    return parse_scenario({**instance, "horizon": {"duration_s": duration, "warmup_s": duration / 20}},
                          file="<truth-sim>")


def _deployed(s: Scenario, name: str, counts: Mapping[Pool, int],
              weights: Mapping[Pool, Mapping[str, float]]) -> Scenario:
    replicas = [Replicas(service=name, site=p[0], hardware=p[1], variant=p[2], count=n, weights=dict(weights[p]))
                for p, n in counts.items() if n > 0]
    return s.model_copy(update={"deployment": Deployment(replicas=replicas, routing="weighted")})


def _verifies(s: Scenario, name: str) -> bool:
    m = build_metrics(s, simulate(s, SIM_SEED))["services"][name]
    return bool(m["slo"]["met"]) and all(bool(v["slo"]["met"]) for v in m["by_site"].values())


def _routings(counts: Mapping[Pool, int], throughput: Mapping[Pool, float],
              demand: Mapping[str, float]) -> list[tuple[str, dict[Pool, dict[str, float]]]]:
    """The `local` and `balanced` routings of one set of replica counts (see the module docstring)."""
    open_ = [p for p, n in counts.items() if n > 0]
    thr = {p: counts[p] * throughput[p] for p in open_}
    out = []
    at = {site: [p for p in open_ if p[0] == site] for site in demand}
    if all(at[site] for site in demand):
        w: dict[Pool, dict[str, float]] = {p: {} for p in open_}
        for site, pools in at.items():
            for p in pools:
                w[p][site] = thr[p] / sum(thr[q] for q in pools)
        out.append(("local", w))
    total_thr, total_d = sum(thr.values()), sum(demand.values())
    share = {p: total_d * thr[p] / total_thr for p in open_}  # each pool's load at equal utilisation
    w = {p: {} for p in open_}
    spare = {site: sum(share[p] for p in at[site]) - demand[site] for site in demand}  # > 0: takes others' spill
    for site, d in demand.items():
        own = min(d, d + spare[site])  # what the site's own pools take of its demand
        for p in at[site]:
            w[p][site] = own * share[p] / sum(share[q] for q in at[site]) / d
        spill = d - own
        if spill > 1e-12 * d:
            takers = [p for p in open_ if p[0] != site and spare[p[0]] > 0]
            room = sum(share[p] for p in takers)
            for p in takers:
                w[p][site] = w[p].get(site, 0.0) + spill * share[p] / room / d
    out.append(("balanced", w))
    return [(label, {p: {site: min(f, 1.0) for site, f in ws.items()} for p, ws in w.items()}) for label, w in out]


def _search(s: Scenario, truth: ModuleType, plan_counts: dict[Pool, int],
            plan_weights: dict[Pool, dict[str, float]], price: Mapping[str, float],
            egress: Mapping[tuple[str, str], float]) -> tuple[Candidate | None, int]:
    """The cheapest verifying candidate (cost order; the plan, which the caller has verified, among them) and how
    many were simulated."""
    (name, svc), = s.services.items()
    model = s.models[svc.model]
    variant = (svc.variants or list(model.variants))[0]
    pools = [(site, hw, variant) for site, spec in s.sites.items() for hw, n in spec.capacity.items() if n > 0]
    demand = {d.site: float(d.rate_rps) for d in svc.demand}
    throughput = {}
    for p in pools:
        dist = truth.service_dist(s, name, p[1])  # (kind, mean s, cv, max_batch, max_wait s)
        throughput[p] = dist[3] / dist[1]

    def cost(counts: Mapping[Pool, int], weights: Mapping[Pool, Mapping[str, float]]) -> float:
        return (sum(n * price[p[1]] for p, n in counts.items())
                + sum(3600.0 * demand[site] * f * egress[(site, p[0])]
                      for p, w in weights.items() for site, f in w.items()))

    def stable(counts: Mapping[Pool, int], weights: Mapping[Pool, Mapping[str, float]]) -> bool:
        return all(sum(demand[site] * f for site, f in weights[p].items()) < counts[p] * throughput[p] * (1 - 1e-9)
                   for p, n in counts.items() if n > 0)

    cands: list[Candidate] = [(cost(plan_counts, plan_weights), "plan", plan_counts, plan_weights)]
    ranges = [range(0, s.sites[p[0]].capacity[p[1]] + 1) for p in pools]
    for combo in itertools.product(*ranges):
        if sum(combo) == 0:
            continue
        counts = dict(zip(pools, combo))
        for label, w in _routings(counts, throughput, demand):
            counts_open = {p: n for p, n in counts.items() if n > 0}
            if stable(counts_open, w):
                cands.append((cost(counts_open, w), label, counts_open, w))
    cands.sort(key=lambda c: (c[0], c[1] != "plan"))
    simulated = 0
    for c in cands:
        if c[1] == "plan":
            return c, simulated  # verified by the caller before the search
        simulated += 1
        if _verifies(_deployed(s, name, c[2], c[3]), name):
            return c, simulated
    return None, simulated


@pytest.mark.parametrize(("kind", "seed"), CASES)
def test_plan_costs_at_most_the_cheapest_simulated_deployment(truth: ModuleType, kind: str, seed: int) -> None:
    s = _short(truth.make_instance(seed, kind))
    (name, svc), = s.services.items()
    result = plan(s, PlanOptions(baselines=False))
    plan_counts = {p.key[1:]: p.count for p in result.pools}
    plan_weights = {p.key[1:]: {site: f for site, f in p.weights.items() if f > 0} for p in result.pools}
    price = dict(result.replica_usd_per_hour)
    gb = (s.models[svc.model].input_bytes + s.models[svc.model].output_bytes) / 1e9
    link_usd = s.links[0].cost_per_gb
    egress = {(a, b): 0.0 if a == b else gb * link_usd for a in s.sites for b in s.sites}
    own = (sum(n * price[p[1]] for p, n in plan_counts.items())
           + sum(3600.0 * float(d.rate_rps) * plan_weights[p].get(d.site, 0.0) * egress[(d.site, p[0])]
                 for d in svc.demand for p in plan_counts))
    assert own == pytest.approx(result.usd_per_hour, rel=1e-9)  # the test prices deployments as the planner does

    assert _verifies(_deployed(s, name, plan_counts, plan_weights), name), "the plan misses an SLO in simulation"
    best, simulated = _search(s, truth, plan_counts, plan_weights, price, egress)
    assert best is not None  # the plan verifies, so at least it does
    assert result.usd_per_hour <= best[0] * (1 + SLACK), (
        f"plan {result.usd_per_hour:.4f} $/h, cheapest verifying {best[0]:.4f} $/h ({best[1]}: "
        f"{ {p: n for p, n in best[2].items()} }), {simulated} simulated")


# Instances where the planner's per-route split is dear and the verify loop must settle it by simulation.
VERIFY_CASES = [("batching", 105)]


@pytest.mark.parametrize(("kind", "seed"), VERIFY_CASES)
def test_verified_plan_costs_at_most_the_cheapest_simulated_deployment(truth: ModuleType, kind: str,
                                                                       seed: int) -> None:
    """The verify loop's final deployment (plan, relax, certificate; simulated with the same seed and horizon)
    against the exhaustive search: where the plan alone holds every route to the target, the loop lets the
    simulation judge each demand site's percentile over all its routes."""
    s = _short(truth.make_instance(seed, kind))
    (name, svc), = s.services.items()
    result = plan(s, PlanOptions(baselines=False))
    v = verify(s, PlanOptions(baselines=False), rounds=8, seed=SIM_SEED)
    final = v.final
    assert final.met and v.certificate.complete
    counts = {line.key[1:]: line.count for line in final.lines}
    weights = {line.key[1:]: {site: f for site, f in line.weights.items() if f > 0} for line in final.lines}
    price = dict(result.replica_usd_per_hour)
    gb = (s.models[svc.model].input_bytes + s.models[svc.model].output_bytes) / 1e9
    egress = {(a, b): 0.0 if a == b else gb * s.links[0].cost_per_gb for a in s.sites for b in s.sites}
    assert _verifies(_deployed(s, name, counts, weights), name), "the verified deployment misses in simulation"
    best, simulated = _search(s, truth, counts, weights, price, egress)
    assert best is not None
    assert final.usd_per_hour <= best[0] * (1 + SLACK), (
        f"verified {final.usd_per_hour:.4f} $/h (plan {result.usd_per_hour:.4f}), cheapest verifying "
        f"{best[0]:.4f} $/h ({best[1]}: { {p: n for p, n in best[2].items()} }), {simulated} simulated")
