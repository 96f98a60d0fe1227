"""Hand-solved instances: the optimum is worked out in a comment and the planner must find exactly it."""
from __future__ import annotations

import pytest

from lepton_sim.planner import PlanOptions, PlanStatus, plan

NO_BASELINES = PlanOptions(baselines=False)


def test_planner_small_is_the_hand_solution(shipped) -> None:
    # Worked in scenarios/planner-small.yaml: vision on the edge orin ($0.10), text on 3 t4 + 1 l4
    # at dc ($1.50 + $0.70) because three replicas carry 2953.5 < 3000 rps (exact M/D/3) and the dc holds 3 t4.
    result = plan(shipped("planner-small.yaml"), NO_BASELINES)
    assert result.solve.status == PlanStatus.OPTIMAL and result.solve.gap == 0.0
    assert {p.id: p.count for p in result.pools} == {
        "vision@edge/orin/fp16": 1, "text@dc/t4/fp16": 3, "text@dc/l4/fp16": 1}
    assert result.usd_per_hour == pytest.approx(2.30)
    assert result.costs.egress == 0.0
    text = result.routing["text"]["dc"]
    assert sum(text.values()) == pytest.approx(1.0, abs=1e-12)
    t4 = next(p for p in result.pools if p.id == "text@dc/t4/fp16")
    assert t4.planned_rps <= t4.capacity_rps == pytest.approx(2953.482, rel=1e-5)


def test_planner_small_under_the_bound(shipped) -> None:
    """The same plan under `--latency-model bound`, whose capacities the yaml comment also lists."""
    result = plan(shipped("planner-small.yaml"), NO_BASELINES.with_(latency_model="bound"))
    assert result.usd_per_hour == pytest.approx(2.30)
    t4 = next(p for p in result.pools if p.id == "text@dc/t4/fp16")
    assert t4.capacity_rps == pytest.approx(2951.199, rel=1e-5)


def _two_sites(cost_per_gb: float) -> dict:
    return dict(
        hardware={"a": {"from": "nvidia-t4", "cost_per_hour": 0.50}, "b": {"from": "nvidia-t4", "cost_per_hour": 0.45}},
        sites={"A": {"capacity": {"a": 1}}, "B": {"capacity": {"b": 1}}},
        links=[{"between": ["A", "B"], "bandwidth_gbps": 10, "latency_ms": 1, "cost_per_gb": cost_per_gb}],
        services={"svc": {"model": "mlp", "slo": {"latency_ms": 50}, "service_time": {"dist": "deterministic", "ms": 1},
                          "demand": [{"site": "A", "rate_rps": 500}]}},
    )


@pytest.mark.parametrize("cost_per_gb,where,usd", [
    # Remote egress: 500 rps x 1100 bytes x 3600 s / 1e9 x $/GB = 1.98 x $/GB per hour.
    (0.1, "A", 0.50),            # 0.198 $/h of egress outweighs B's $0.05 cheaper replica: stay at A
    (0.01, "B", 0.45 + 0.0198),  # 0.0198 $/h does not: go to B and pay the egress
])
def test_egress_against_price(scenario, cost_per_gb: float, where: str, usd: float) -> None:
    result = plan(scenario(**_two_sites(cost_per_gb)), NO_BASELINES)
    assert [p.key[1] for p in result.pools] == [where]
    assert result.usd_per_hour == pytest.approx(usd, rel=1e-9)


def _edge_or_far(slo_ms: float) -> dict:
    return dict(
        hardware={"edgebox": {"from": "nvidia-jetson-agx-orin", "cost_per_hour": 0.30},
                  "cheap": {"from": "nvidia-t4", "cost_per_hour": 0.10}},
        sites={"edge": {"kind": "edge", "capacity": {"edgebox": 1}}, "far": {"capacity": {"cheap": 2}}},
        links=[{"between": ["edge", "far"], "bandwidth_gbps": 10, "latency_ms": 20}],
        services={"svc": {"model": "mlp", "slo": {"latency_ms": slo_ms},
                          "service_time": {"dist": "deterministic", "ms": 1},
                          "demand": [{"site": "edge", "rate_rps": 100}]}},
    )


@pytest.mark.parametrize("slo_ms,where", [
    (40, "edge"),  # the far site's round trip alone is 2 x 20 = 40 ms, plus at least 2 ms in the pool
    (100, "far"),  # within reach: $0.10 beats the edge box's $0.30
])
def test_latency_target_decides_edge_or_far(scenario, slo_ms: float, where: str) -> None:
    result = plan(scenario(**_edge_or_far(slo_ms)), NO_BASELINES)
    assert [(p.key[1], p.count) for p in result.pools] == [(where, 1)]


@pytest.mark.parametrize("floor,variant", [
    (None, "int8"),  # int8 is faster on the L4 (roofline) at the same price: the planner compresses
    (0.76, "fp16"),  # int8's 0.7592 top-1 is below the floor: fp16
])
def test_accuracy_floor_decides_the_compression_level(scenario, floor: float | None, variant: str) -> None:
    svc = {"model": "r", "variants": ["fp16", "int8"], "slo": {"latency_ms": 40},
           "batching": {"max_batch": 8, "max_wait_ms": 2}, "demand": [{"site": "dc", "rate_rps": 200}]}
    if floor is not None:
        svc["min_accuracy"] = floor
    s = scenario(hardware={"l4": {"from": "nvidia-l4"}}, sites={"dc": {"capacity": {"l4": 2}}},
                 models={"r": {"from": "resnet50"}}, services={"svc": svc})
    result = plan(s, NO_BASELINES)
    assert [(p.key[3], p.count) for p in result.pools] == [(variant, 1)]
