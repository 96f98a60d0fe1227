"""Closing the loop: shipped scenarios' plans meet every SLO in simulation; a miss tightens and re-plans."""
from __future__ import annotations

from types import MappingProxyType

import pytest

from lepton_sim.planner import PlanOptions
from lepton_sim.planner.verify import planned_scenario, verify


@pytest.mark.parametrize("name", ["default.yaml", "edge-vision.yaml", "planner-small.yaml", "metro-fleet.yaml"])
def test_shipped_scenarios_verify_with_every_slo_met(shipped, name: str) -> None:
    v = verify(shipped(name), PlanOptions(baselines=False))
    assert v.met and len(v.rounds) == 1
    r = v.final
    for svc, chk in r.services.items():
        assert chk.met and chk.attainment >= r.plan.predicted[svc].percentile / 100
        assert chk.simulated_ms <= chk.predicted_ms  # the prediction is a bound
        for site, by in r.by_site[svc].items():
            assert by.simulated_ms <= by.predicted_ms, site
    assert r.metrics["services"].keys() == r.plan.predicted.keys()


def test_a_miss_tightens_the_service_and_replans(shipped) -> None:
    # Start from an assumption 3x too optimistic for text: the first plan overloads its pools.
    s = shipped("planner-small.yaml")
    v = verify(s, PlanOptions(baselines=False, service_factor=MappingProxyType({"text": 3.0})), rounds=3)
    first, last = v.rounds[0], v.final
    assert not first.services["text"].met and first.services["vision"].met
    assert first.tightened == {"text": pytest.approx(3.0 * 0.25)}  # missed by far: the strongest shrink
    assert v.met and len(v.rounds) == 2
    assert sum(p.count for p in last.plan.pools if p.key[0] == "text") > \
        sum(p.count for p in first.plan.pools if p.key[0] == "text")


def test_rounds_are_bounded(shipped) -> None:
    s = shipped("planner-small.yaml")
    v = verify(s, PlanOptions(baselines=False, service_factor=MappingProxyType({"text": 50.0})), rounds=2)
    assert len(v.rounds) == 2 and not v.met and v.final.tightened == {}


def test_the_planned_scenario_routes_by_the_plans_fractions(shipped) -> None:
    s = shipped("default.yaml")
    r = verify(s, PlanOptions(baselines=False)).final
    dep = planned_scenario(s, r.plan).deployment
    assert dep is not None and dep.routing == "weighted"
    for name, svc in s.services.items():
        for d in svc.demand:
            total = sum((line.weights or {}).get(d.site, 0.0) for line in dep.replicas if line.service == name)
            assert total == pytest.approx(1.0, abs=1e-9)
