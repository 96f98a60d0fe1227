"""Infeasible instances, one per reason: each names the service and demand site and says why."""
from __future__ import annotations

import re
from types import MappingProxyType

import pytest

from lepton_sim.planner import Infeasible, PlanOptions, Why, plan

OPTS = PlanOptions(baselines=False)


def _reasons(s, opts: PlanOptions = OPTS) -> list:
    with pytest.raises(Infeasible) as info:
        plan(s, opts)
    assert info.value.exit_code == 1
    return list(info.value.reasons)


def test_no_variant_meets_the_accuracy_floor(scenario) -> None:
    s = scenario(services={"svc": {"model": "mlp", "min_accuracy": 0.99, "slo": {"latency_ms": 50},
                                   "demand": [{"site": "dc", "rate_rps": 10}]}})
    [r] = _reasons(s)
    assert (r.service, r.site, r.why) == ("svc", "dc", Why.ACCURACY)
    assert "0.99" in r.message and "fp16 0.95" in r.message


def test_no_hardware_runs_the_variant(scenario) -> None:
    # the Alveo U55C runs int8 only; the service allows fp16 only
    s = scenario(hardware={"fpga": {"from": "amd-alveo-u55c"}}, sites={"dc": {"capacity": {"fpga": 2}}},
                 services={"svc": {"model": "mlp", "variants": ["fp16"], "slo": {"latency_ms": 50},
                                   "demand": [{"site": "dc", "rate_rps": 10}]}})
    [r] = _reasons(s)
    assert r.why == Why.HARDWARE


def test_no_site_within_the_latency_target_says_the_best_achievable(scenario) -> None:
    # edge has no hardware; the far site is 10 ms away each way: 20 ms + at least the 1 ms service in the pool
    s = scenario(sites={"edge": {"kind": "edge"}, "dc": {"capacity": {"cheap": 2}}},
                 links=[{"between": ["edge", "dc"], "bandwidth_gbps": 10, "latency_ms": 10}],
                 services={"svc": {"model": "mlp", "slo": {"latency_ms": 15},
                                   "service_time": {"dist": "deterministic", "ms": 1},
                                   "demand": [{"site": "edge", "rate_rps": 10}]}})
    [r] = _reasons(s)
    assert (r.site, r.why) == ("edge", Why.LATENCY)
    best = float(re.search(r"best achievable ([\d.]+) ms", r.message).group(1))
    assert 21.0 <= best < 22.0  # 20 ms propagation + the idle pool's 1 ms service + serialisation and link allowance
    # the bound charges an idle pool max(w, T) + T = 2 ms
    [r] = _reasons(s, OPTS.with_(latency_model="bound"))
    best = float(re.search(r"best achievable ([\d.]+) ms", r.message).group(1))
    assert 22.0 <= best < 23.0


def test_capacity_short_by_n_replicas(scenario) -> None:
    # One slot type, 2 slots; B = 1, d = 1 ms, D = 50 ms, q = 0.01 (no links): exact M/D/c capacities
    # cap(1) = 954.1, cap(2) = 1953.6 (worked in scenarios/planner-small.yaml); short by
    # ceil((5000 - 1953.6) / (1953.6 / 2)) = ceil(3.119) = 4. (The bound's 951.7 and 1951.3 give 4 too.)
    s = scenario(hardware={"cheap": {"from": "nvidia-t4"}}, sites={"dc": {"capacity": {"cheap": 2}}},
                 services={"svc": {"model": "mlp", "slo": {"latency_ms": 50},
                                   "service_time": {"dist": "deterministic", "ms": 1},
                                   "demand": [{"site": "dc", "rate_rps": 5000}]}})
    [r] = _reasons(s)
    assert r.why == Why.CAPACITY and "short by 4 replicas" in r.message


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_capacity_shared_by_two_services_is_found_by_the_diagnosis(scenario, solver: str) -> None:
    # each service alone fits the one slot; together they need two: only the MILP can see it. The
    # diagnosis's second pass (least cost at the least shortfall) must not be able to spend its slack
    # on leaving a sliver of the served service unserved (HiGHS 1.16 did: two reasons where one is due)
    one = {"model": "mlp", "slo": {"latency_ms": 50}, "service_time": {"dist": "deterministic", "ms": 1},
           "demand": [{"site": "dc", "rate_rps": 300}]}
    s = scenario(hardware={"cheap": {"from": "nvidia-t4"}}, sites={"dc": {"capacity": {"cheap": 1}}},
                 services={"a": one, "b": one})
    reasons = _reasons(s, OPTS.with_(solver=solver))
    assert len(reasons) == 1 and reasons[0].why == Why.CAPACITY and reasons[0].service in ("a", "b")
    assert "short by 1 replica" in reasons[0].message and "300 of 300 rps" in reasons[0].message


def test_link_bandwidth(scenario) -> None:
    # 100 rps x 1 MB = 0.8 Gbit/s over a 1 Gbit/s link planned at most half busy
    s = scenario(sites={"edge": {"kind": "edge"}, "dc": {"capacity": {"cheap": 2}}},
                 links=[{"between": ["edge", "dc"], "bandwidth_gbps": 1, "latency_ms": 1}],
                 models={"big": {"layers": [{"op": "dense", "in": 64, "out": 64}], "input_bytes": 1_000_000,
                                 "output_bytes": 100}},
                 services={"svc": {"model": "big", "slo": {"latency_ms": 200},
                                   "service_time": {"dist": "deterministic", "ms": 1},
                                   "demand": [{"site": "edge", "rate_rps": 100}]}})
    [r] = _reasons(s)
    assert (r.site, r.why) == ("edge", Why.LINK)
    assert "edge->dc" in r.message and "0.8" in r.message


def test_power_budget(scenario) -> None:
    # the T4 draws 70 W; a 60 W budget at dc leaves no replica
    s = scenario(hardware={"cheap": {"from": "nvidia-t4"}}, sites={"dc": {"capacity": {"cheap": 2}}})
    [r] = _reasons(s, OPTS.with_(power_budget_w=MappingProxyType({"dc": 60.0})))
    assert r.why == Why.POWER and "60 W" in r.message
