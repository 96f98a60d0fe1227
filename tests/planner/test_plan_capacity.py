"""The capacity bound: its algebra (bound and capacity agree, pieces stay below it) and its safety against the simulator."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lepton_sim.metrics import build_metrics
from lepton_sim.planner.capacity import (
    BatchProfile, capacity_rps, capacity_table, curve, g, kingman_theta, sojourn_bound_s,
)
from lepton_sim.scenario import parse_scenario
from lepton_sim.servicetime import batch_times
from lepton_sim.sim import simulate

GRID = [(0.001, 1, 0.0, 0.004), (0.002, 8, 0.002, 0.030), (0.0028, 16, 0.002, 0.008), (0.0005, 4, 0.001, 0.1),
        (0.01, 32, 0.005, 0.05)]  # (T, B, w, D)


def test_g() -> None:
    assert g(0.0) == 1.0 and g(800.0) == 0.0
    for x in (1e-4, 0.3, 2.0, 25.0):
        assert g(x) == pytest.approx(x / math.expm1(x), rel=1e-12)


def test_kingman_root() -> None:
    # load (e^theta - 1) = theta slots, by hand for load 1, slots 2: theta = 1.2564 (e^1.2564 - 1 = 2.5128)
    assert kingman_theta(1.0, 2.0) == pytest.approx(1.25643, rel=1e-4)
    assert kingman_theta(2.0, 2.0) == 0.0 and math.isinf(kingman_theta(0.0, 2.0))


@pytest.mark.parametrize("T,B,w,D", GRID)
def test_capacity_is_the_rate_at_which_the_bound_meets_the_budget(T: float, B: int, w: float, D: float) -> None:
    prof = BatchProfile(T, T / 2, B, w, "test")
    a = curve(prof, D, 0.009)
    assert a is not None
    for c in (1, 2, 5, 20):
        cap = capacity_rps(prof, a, c)
        assert sojourn_bound_s(prof, cap * (1 - 1e-6), c, 0.009) <= D * (1 + 1e-6)
        assert sojourn_bound_s(prof, cap * 1.01, c, 0.009) > D


def test_no_rate_fits_a_budget_of_two_batches() -> None:
    prof = BatchProfile(0.002, 0.001, 8, 0.0, "test")
    assert curve(prof, 0.004, 0.01) is None and curve(prof, 0.0041, 0.01) is not None
    assert curve(BatchProfile(0.001, 0.001, 8, 0.005, "test"), 0.0059, 0.01) is None  # w + T > D


@pytest.mark.parametrize("T,B,w,D", GRID)
def test_the_table_is_the_convex_capacity_or_a_line_within_tolerance(T: float, B: int, w: float, D: float) -> None:
    prof = BatchProfile(T, T / 2, B, w, "test")
    a = curve(prof, D, 0.009)
    assert a is not None
    true = np.array([capacity_rps(prof, a, c) for c in range(0, 65)])
    assert np.all(np.diff(true, 2) >= -1e-9 * true[2:])  # convex in the count: increments grow
    table = capacity_table(prof, a, 64)
    model = np.array([table.at(c) for c in range(1, 65)])
    assert np.all(model <= true[1:] * (1 + 1e-12))
    if table.linear:
        assert model == pytest.approx(np.arange(1, 65) * true[1]) and np.all(model >= 0.98 * true[1:])
    else:
        assert model == pytest.approx(true[1:], rel=1e-12)


def _one_pool(B: int, w_ms: float, c: int, rate: float, duration: float) -> dict:
    return {"name": "cap", "seed": 5, "horizon": {"duration_s": duration, "warmup_s": duration / 10},
            "hardware": {"l4": {"from": "nvidia-l4"}}, "sites": {"s": {"capacity": {"l4": 8}}},
            "models": {"r": {"from": "resnet50"}},
            "services": {"d": {"model": "r", "variants": ["int8"], "slo": {"latency_ms": 100},
                               "batching": {"max_batch": B, "max_wait_ms": w_ms},
                               "demand": [{"site": "s", "rate_rps": rate}]}},
            "deployment": {"replicas": [{"service": "d", "site": "s", "hardware": "l4", "variant": "int8",
                                         "count": c}]}}


@pytest.mark.parametrize("B,w_ms,c,rho", [(1, 0.0, 1, 0.7), (8, 2.0, 2, 0.85), (16, 2.0, 4, 0.93)])
def test_the_bound_is_above_the_simulated_p99(B: int, w_ms: float, c: int, rho: float) -> None:
    """Points of the grid the module docstring describes: the p99 the simulator measures stays below the bound."""
    probe = parse_scenario(_one_pool(B, w_ms, c, 100.0, 10.0))
    model = probe.models["r"]
    T = max(batch_times(model, model.variants["int8"], probe.hardware["l4"], B).times_s)
    rate = rho * c * B / T
    s = parse_scenario(_one_pool(B, w_ms, c, rate, min(150_000 / rate, 40.0)))
    p99 = build_metrics(s, simulate(s))["services"]["d"]["latency_ms"]["p99"]
    bound_ms = sojourn_bound_s(BatchProfile(T, T, B, w_ms / 1e3, "roofline"), rate, c, 0.01) * 1e3
    assert p99 <= bound_ms
    assert p99 >= 0.4 * bound_ms  # and not absurdly loose: the bound is within 2.5x
